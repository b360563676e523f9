/**
 * The bin's loader (src/cli/bundle-loader.ts): runs a CommonJS bundle with
 * V8's code cache beside it, and without it when there is none or V8
 * rejects it. The shipped bundle and cache are checked in package.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { codeCachePath, loadBundle } from '../src/cli/bundle-loader.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'blockfetch-bundle-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small bundle that records how it was run in a global, under `key`. */
function writeBundle(name: string, key: string): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      '(function (exports, require, module, __filename, __dirname) {',
      `const { basename } = require('node:path');`,
      `function twice(n) { return n * 2; }`,
      `module.exports.answer = twice(21);`,
      `globalThis[${JSON.stringify(key)}] = { file: basename(__filename), dir: __dirname, answer: module.exports.answer, self: this === module.exports };`,
      '})',
    ].join('\n'),
  );
  return file;
}

/** Checks that the bundle `name` ran as a CommonJS module and recorded so under `key`. */
function expectRan(key: string, name: string): void {
  expect((globalThis as Record<string, unknown>)[key]).toEqual({ file: name, dir, answer: 42, self: true });
}

/** Makes `file`'s code cache in another process (test/helpers/make-code-cache.ts). */
async function makeCodeCache(file: string): Promise<void> {
  const helper = fileURLToPath(new URL('./helpers/make-code-cache.ts', import.meta.url));
  await run(process.execPath, ['--import', 'tsx', helper, file]);
}

describe('loadBundle', () => {
  it('runs a bundle (a module body in its wrapper) without a cache as a CommonJS module: require, __filename, __dirname, module.exports, this', () => {
    const file = writeBundle('plain.cjs', 'bundlePlain');
    const bundle = loadBundle(file);
    expect(bundle.cacheFound).toBe(false);
    expect(bundle.cacheRejected).toBe(false);
    bundle.run();
    expectRan('bundlePlain', 'plain.cjs');
  });

  it('takes the cache a run of the same bundle made', async () => {
    const file = writeBundle('cached.cjs', 'bundleCached');
    await makeCodeCache(file);
    const bundle = loadBundle(file);
    expect(bundle.cacheFound).toBe(true);
    expect(bundle.cacheRejected).toBe(false);
    bundle.run();
    expectRan('bundleCached', 'cached.cjs');
    expect(loadBundle(file, false).cacheFound).toBe(false); // asked not to read it
  });

  it('does not take the cache of another source of the same length, which V8 alone would, and runs', () => {
    const file = writeBundle('stale.cjs', 'bundleStale');
    const other = writeBundle('other.cjs', 'bundleOther');
    const made = loadBundle(other);
    made.run();
    // The cache of another source of the same length, which V8 alone would take.
    writeFileSync(codeCachePath(file), made.createCodeCache());
    const bundle = loadBundle(file);
    expect(bundle.cacheFound).toBe(true);
    expect(bundle.cacheRejected).toBe(true);
    bundle.run();
    expectRan('bundleStale', 'stale.cjs');
  });

  it('does not take a cache V8 rejects (another Node, other flags), and runs', async () => {
    const file = writeBundle('foreign.cjs', 'bundleForeign');
    await makeCodeCache(file);
    const cache = readFileSync(codeCachePath(file));
    cache[36] = (cache[36] ?? 0) ^ 0xff; // V8's version hash, in its own header after the digest
    writeFileSync(codeCachePath(file), cache);
    const bundle = loadBundle(file);
    expect(bundle.cacheRejected).toBe(true);
    bundle.run();
    expectRan('bundleForeign', 'foreign.cjs');
  });

  it('keeps its cache beside the bundle', () => {
    expect(codeCachePath('/opt/x/blockfetch.cjs')).toBe('/opt/x/blockfetch.cjs.v8cache');
    expect(codeCachePath(new URL('file:///opt/x/blockfetch.cjs'))).toBe('/opt/x/blockfetch.cjs.v8cache');
  });
});
