/**
 * src/ranges/roaring.ts: the path it fills from roaring's template is the
 * one node-pre-gyp's own lookup finds, and anything it cannot be sure of is
 * left to that lookup.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { nativeModulePath, roaring } from '../src/ranges/roaring.js';

const load = createRequire(import.meta.url);
let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A package.json with `binary`, and the files named in `present`, in a temp dir. */
async function fakePackage(binary: object, present: string[]): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'bf-roaring-'));
  for (const file of present) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), '');
  }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'fake', binary }));
  return join(dir, 'package.json');
}

describe('roaring loader', () => {
  it("fills roaring's template to the file node-pre-gyp's lookup finds", () => {
    const packageJsonPath = load.resolve('roaring/package.json');
    const preBinding = load(load.resolve('@mapbox/node-pre-gyp/lib/pre-binding', { paths: [dirname(packageJsonPath)] })) as {
      find(path: string): string;
    };
    expect(nativeModulePath(packageJsonPath)).toBe(preBinding.find(packageJsonPath));
  });

  it('loads a working roaring, and leaves no stand-in for node-pre-gyp behind', () => {
    expect(new roaring.RoaringBitmap32([1, 5, 9]).size).toBe(3);
    const preBinding = load.resolve('@mapbox/node-pre-gyp/lib/pre-binding', { paths: [dirname(load.resolve('roaring/package.json'))] });
    // Absent, or node-pre-gyp's real module (which has `validate`; the stand-in had only `find`).
    const cached = load.cache[preBinding];
    expect(cached === undefined || typeof (cached.exports as { validate?: unknown }).validate === 'function').toBe(true);
  });

  it('says undefined when it cannot be sure: another placeholder, no file, or a glibc and a musl build', async () => {
    const abi = `node-v${process.versions.modules}`;
    const base = `native/x-${abi}-${process.platform}-${process.arch}`;
    const libc = process.platform === 'linux' ? 'glibc' : 'unknown';
    expect(nativeModulePath(await fakePackage({ module_name: 'x', module_path: './native/x-{node_abi}-{platform}-{arch}-{libc}' }, [`${base}-${libc}/x.node`]))).toBe(
      join(dir as string, `${base}-${libc}/x.node`),
    );
    await rm(dir as string, { recursive: true });
    expect(nativeModulePath(await fakePackage({ module_name: 'x', module_path: './native/{napi_build_version}/x' }, []))).toBeUndefined();
    await rm(dir as string, { recursive: true });
    expect(nativeModulePath(await fakePackage({ module_name: 'x', module_path: './native/x-{node_abi}-{platform}-{arch}-{libc}' }, []))).toBeUndefined();
    if (process.platform === 'linux') {
      await rm(dir as string, { recursive: true });
      const both = await fakePackage({ module_name: 'x', module_path: './native/x-{node_abi}-{platform}-{arch}-{libc}' }, [`${base}-glibc/x.node`, `${base}-musl/x.node`]);
      expect(nativeModulePath(both)).toBeUndefined();
    }
  });
});
