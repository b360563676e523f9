/**
 * The package as a user gets it: packed with `npm pack` (which builds through
 * the prepack script), extracted into a fresh consumer project's
 * node_modules, and used from ESM, CommonJS, TypeScript (nodenext, `.mts`
 * and `.cts`) and the shipped bin, each doing a real download from a
 * loopback server.
 *
 * No network and no `npm install`: the checkout is copied to a temp dir
 * (without node_modules, dist and dot-files, so the build and pack cannot
 * touch the checkout and `files` is judged against a tree that has
 * everything else in it), and the consumer's dependencies are symlinks to
 * this checkout's node_modules (Node resolves a symlinked package from its
 * real path, so their own dependencies are found there too). One build and
 * one pack per file: tsc on a loaded 2-core machine is the slow part.
 */
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUR_MODULES = join(ROOT, 'node_modules');
const TSC = join(OUR_MODULES, 'typescript', 'bin', 'tsc');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
};

/** Top-level entries of the checkout that are not copied to the staging dir. */
const NOT_COPIED = new Set(['node_modules', 'dist']);

/** The modules of src/ that run only from source (`npm start`), never from the package. */
const SOURCE_ONLY = new Set(['cli/demo.ts', 'cli/demo-server.ts']);

/** 300 KiB + 7: several blocks of 64 KiB and a short last one. */
const SIZE = 300 * 1024 + 7;
const CONTENT = payload(0, SIZE - 1);

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; never rejects, so a failure shows its output in the assertion. */
function run(command: string, args: readonly string[], cwd: string, env: Readonly<Record<string, string>> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd,
        env: { ...process.env, NODE_DEBUG: '', npm_config_loglevel: 'error', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...env },
        maxBuffer: 16 * 2 ** 20,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr: err !== null && code === null ? `${err.message}\n${stderr}` : stderr });
      },
    );
  });
}

/** Every file under `dir`, as `/`-separated paths relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'));
}

/** Links `name` (possibly scoped) in `modules` to this checkout's copy. */
function linkOurs(modules: string, name: string): void {
  const link = join(modules, name);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(join(OUR_MODULES, name), link, 'dir');
}

/** What each consumer program does, in its own module syntax: download argv[2] to argv[3], print the result. */
const BODY = `
  const result = await downloadFile(url, target, { concurrency: 3, blockSize: 65536, maxRequestBytes: 65536 });
  console.log(JSON.stringify({ size: result.size, target: result.target, isError: typeof BlockfetchError === 'function' }));
`;

const PROGRAMS: Record<string, string> = {
  'esm.mjs': `import { downloadFile, BlockfetchError } from 'blockfetch';
const [url, target] = process.argv.slice(2);
${BODY}`,
  'cjs.cjs': `'use strict';
const { downloadFile, BlockfetchError } = require('blockfetch');
const [url, target] = process.argv.slice(2);
(async () => {${BODY}})().catch((err) => { console.error(err); process.exitCode = 1; });
`,
  // Types used as a TypeScript user would: the options object and the result typed, an error narrowed.
  'ts-esm.mts': `import { downloadFile, BlockfetchError, type DownloadFileOptions, type DownloadFileResult } from 'blockfetch';
const [url, target] = process.argv.slice(2) as [string, string];
const options: DownloadFileOptions = { concurrency: 3, blockSize: 65536, maxRequestBytes: 65536 };
try {
  const result: DownloadFileResult = await downloadFile(url, target, options);
  console.log(JSON.stringify({ size: result.size, target: result.target, isError: typeof BlockfetchError === 'function' }));
} catch (err) {
  if (err instanceof BlockfetchError) console.error(err.code);
  throw err;
}
`,
  'ts-cjs.cts': `import { downloadFile, BlockfetchError, type DownloadFileOptions, type DownloadFileResult } from 'blockfetch';
const [url, target] = process.argv.slice(2) as [string, string];
const options: DownloadFileOptions = { concurrency: 3, blockSize: 65536, maxRequestBytes: 65536 };
async function main(): Promise<void> {
  const result: DownloadFileResult = await downloadFile(url, target, options);
  console.log(JSON.stringify({ size: result.size, target: result.target, isError: typeof BlockfetchError === 'function' }));
}
main().catch((err: unknown) => {
  if (err instanceof BlockfetchError) console.error(err.code);
  console.error(err);
  process.exitCode = 1;
});
`,
};

/** A consumer's tsconfig: nodenext and strict, as `tsc --init` makes one. */
const CONSUMER_TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    strict: true,
    skipLibCheck: true,
    types: ['node'],
    outDir: 'build',
    rootDir: '.',
  },
  files: ['ts-esm.mts', 'ts-cjs.cts'],
};

let work: string;
let tarball: string;
let shipped: string[];
let consumer: string;
let server: FaultServer;
let packRun: Run;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'blockfetch-package-'));
  const stage = join(work, 'stage');
  cpSync(ROOT, stage, {
    recursive: true,
    filter: (src) => {
      const top = relative(ROOT, src).split(/[\\/]/)[0] ?? '';
      return top === '' || !(NOT_COPIED.has(top) || top.startsWith('.'));
    },
  });
  symlinkSync(OUR_MODULES, join(stage, 'node_modules'), 'dir');

  // As a publisher would: `npm pack` runs prepack (the build) in the staging copy.
  const packs = join(work, 'packs');
  mkdirSync(packs);
  packRun = await run('npm', ['pack', '--json', '--pack-destination', packs], stage);
  if (packRun.code !== 0) throw new Error(`npm pack failed (${String(packRun.code)}):\n${packRun.stderr}\n${packRun.stdout}`);
  const [name] = readdirSync(packs);
  if (name === undefined) throw new Error(`npm pack wrote no tarball:\n${packRun.stdout}`);
  tarball = join(packs, name);

  consumer = join(work, 'consumer');
  const installed = join(consumer, 'node_modules', PKG.name);
  mkdirSync(installed, { recursive: true });
  writeFileSync(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`);
  const untar = await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'], work);
  if (untar.code !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  shipped = filesUnder(installed).sort();

  // What `npm install` would add beside it: the dependencies, @types/node for
  // the consumer's own TypeScript, and the bin link (executable, as npm makes it).
  const modules = join(consumer, 'node_modules');
  for (const dep of [...Object.keys(PKG.dependencies), ...Object.keys(PKG.optionalDependencies ?? {}), '@types/node']) linkOurs(modules, dep);
  mkdirSync(join(modules, '.bin'));
  for (const [bin, path] of Object.entries(PKG.bin)) {
    symlinkSync(join('..', PKG.name, path), join(modules, '.bin', bin));
    chmodSync(join(installed, path), 0o755);
  }
  for (const [file, text] of Object.entries(PROGRAMS)) writeFileSync(join(consumer, file), text);
  writeFileSync(join(consumer, 'tsconfig.json'), `${JSON.stringify(CONSUMER_TSCONFIG, null, 2)}\n`);

  server = await startFaultServer({ content: CONTENT });
}, 180_000); // a build and an npm pack: generous for a 2-core machine running other suites

afterAll(async () => {
  await server?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** The downloaded file is the served one, byte for byte, and the partial files are gone. */
function expectDownloaded(result: Run, target: string): void {
  expect(result.code, result.stderr).toBe(0);
  const printed = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as { size: number; target: string; isError: boolean };
  expect(printed).toEqual({ size: SIZE, target, isError: true });
  const got = readFileSync(target);
  expect(got.length).toBe(SIZE);
  expect(firstMisplaced(got)).toBe(-1);
  expect(readdirSync(dirname(target)).filter((f) => f.startsWith(`${target.slice(dirname(target).length + 1)}.`))).toEqual([]);
}

/** Runs a consumer program with a fresh target; returns the run and the target. */
async function download(program: string, name: string): Promise<{ result: Run; target: string }> {
  const dir = join(consumer, 'downloads', name);
  mkdirSync(dir, { recursive: true });
  const target = join(dir, 'file.bin');
  const result = await run(process.execPath, [program, server.url, target], consumer);
  return { result, target };
}

describe('the packed package', () => {
  it('ships exactly the build of every library module, the LICENSE, the README and package.json', () => {
    const modules = filesUnder(join(ROOT, 'src'))
      .filter((f) => f.endsWith('.ts') && !SOURCE_ONLY.has(f))
      .flatMap((f) => [`dist/${f.slice(0, -3)}.js`, `dist/${f.slice(0, -3)}.d.ts`]);
    // The bin's bundle and its code cache (scripts/bundle-cli.mjs) beside dist/cli/main.js.
    const bundle = ['dist/cli/blockfetch.cjs', 'dist/cli/blockfetch.cjs.v8cache'];
    expect(shipped).toEqual([...modules, ...bundle, 'LICENSE', 'README.md', 'package.json'].sort());
    // No source maps pointing at sources that are not shipped, no demo.
    expect(shipped.filter((f) => f.endsWith('.map') || f.includes('demo') || f.startsWith('src/'))).toEqual([]);
    expect(readFileSync(join(consumer, 'node_modules', PKG.name, 'LICENSE'), 'utf8')).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    // npm's own listing agrees with what is in the tarball.
    const listed = (JSON.parse(packRun.stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path).sort();
    expect(listed).toEqual(shipped);
  });

  it('has no top-level await in the library graph, so require() of it can work', () => {
    // require(esm) throws ERR_REQUIRE_ASYNC_MODULE on a graph with top-level
    // await. Only the bin may await at top level, and the library never imports it.
    const installed = join(consumer, 'node_modules', PKG.name);
    const topLevelAwait = /^(?:await|for await)\b|^(?:const|let|var) [^=]+= await\b/m;
    expect(topLevelAwait.test('const code = await runCli({')).toBe(true); // the regex finds what it is for
    // The bin (dist/cli/main.js, the loader of the bundle) is left out: the library never imports it.
    const library = shipped.filter((f) => f.endsWith('.js') && f !== 'dist/cli/main.js');
    expect(library.filter((f) => topLevelAwait.test(readFileSync(join(installed, f), 'utf8')))).toEqual([]);
    expect(readFileSync(join(installed, 'dist', 'index.js'), 'utf8')).not.toMatch(/cli\/main/);
  });

  it('downloads from ESM (import)', async () => {
    const { result, target } = await download('esm.mjs', 'esm');
    expectDownloaded(result, target);
  });

  it('downloads from CommonJS (require)', async () => {
    const { result, target } = await download('cjs.cjs', 'cjs');
    expect(result.stderr).not.toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED|ERR_REQUIRE_ESM|ERR_REQUIRE_ASYNC_MODULE/);
    expectDownloaded(result, target);
  });

  it('type-checks from TypeScript with --module nodenext (.mts and .cts), and the output runs', async () => {
    const tsc = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], consumer);
    expect(tsc.code, `${tsc.stdout}\n${tsc.stderr}`).toBe(0);
    // The .cts compiles to require('blockfetch'): it must also run, not only type-check.
    expect(readFileSync(join(consumer, 'build', 'ts-cjs.cjs'), 'utf8')).toMatch(/require\("blockfetch"\)/);
    for (const [program, name] of [
      ['build/ts-esm.mjs', 'ts-esm'],
      ['build/ts-cjs.cjs', 'ts-cjs'],
    ] as const) {
      const { result, target } = await download(program, name);
      expectDownloaded(result, target);
    }
  }, 120_000);

  it('runs the shipped bin from node_modules/.bin', async () => {
    const bin = join(consumer, 'node_modules', '.bin', 'blockfetch');
    const version = await run(bin, ['--version'], consumer);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toContain(PKG.version);

    const dir = join(consumer, 'downloads', 'bin');
    mkdirSync(dir, { recursive: true });
    const got = await run(bin, [server.url, '-o', 'file.bin', '-c', '2'], dir);
    expect(got.code, got.stderr).toBe(0);
    const data = readFileSync(join(dir, 'file.bin'));
    expect(data.length).toBe(SIZE);
    expect(firstMisplaced(data)).toBe(-1);
  });

  it('ships the bin bundled, with a code cache this Node takes (scripts/bundle-cli.mjs)', async () => {
    const cli = join(consumer, 'node_modules', PKG.name, 'dist', 'cli');
    const main = readFileSync(join(cli, 'main.js'), 'utf8');
    expect(main.startsWith('#!/usr/bin/env node\n')).toBe(true);
    // The bin imports only the loader, and the bundle no module of ours
    // (a relative import or require would mean the bundle step did not run).
    const relative = (source: string): string[] =>
      [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(|\brequire\s*\()['"](\.{1,2}\/[^'"]*)['"]/g)].map((m) => m[1]!);
    expect(relative(main)).toEqual(['./bundle-loader.js']);
    expect(relative(readFileSync(join(cli, 'blockfetch.cjs'), 'utf8'))).toEqual([]);
    // The cache was made by the Node that runs these tests: it must be taken, not compiled around.
    const probe = `import { loadBundle } from ${JSON.stringify(join(cli, 'bundle-loader.js'))};
      const b = loadBundle(${JSON.stringify(join(cli, 'blockfetch.cjs'))});
      console.log(JSON.stringify({ found: b.cacheFound, rejected: b.cacheRejected }));`;
    const checked = await run(process.execPath, ['--input-type=module', '-e', probe], consumer);
    expect(checked.code, checked.stderr).toBe(0);
    expect(JSON.parse(checked.stdout)).toEqual({ found: true, rejected: false });
  });
});
