/**
 * Loads the `roaring` package without the cost of its binary lookup.
 *
 * roaring finds its native module through `@mapbox/node-pre-gyp`, which
 * loads about seventy modules (semver, nopt, consola, detect-libc, ...) to
 * fill one path template: 25 ms of CPU in a 200 ms command run
 * (`node -e "require('roaring')"` 0.08 CPU s, its `.node` file alone 0.05 s,
 * `node -e 0` 0.05 s; 2026-12-07).
 *
 * So the template from roaring's own package.json (`binary.module_path`,
 * `./native/roaring-{node_abi}-{platform}-{arch}-{libc}`) is filled here,
 * and node-pre-gyp's `find` is answered with the result for the one
 * `require('roaring')` that asks. Anything not plainly that (another
 * placeholder, no such file, both a glibc and a musl build present, a
 * package layout that does not resolve) leaves roaring to find its binary
 * itself, exactly as without this module.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Roaring from 'roaring';

const load = createRequire(import.meta.url);

/** What roaring's package.json says about its binary. */
interface BinaryConfig {
  readonly module_name?: unknown;
  readonly module_path?: unknown;
}

/**
 * The path of roaring's native module for this process, from the template
 * in its package.json; `undefined` when it cannot be told for sure.
 *
 * @example
 * ```ts
 * nativeModulePath('/app/node_modules/roaring/package.json')
 * // '/app/node_modules/roaring/native/roaring-node-v115-linux-x64-glibc/roaring.node' (Node 20 on glibc Linux)
 * ```
 */
export function nativeModulePath(packageJsonPath: string): string | undefined {
  const binary = (JSON.parse(readFileSync(packageJsonPath, 'utf8')) as { binary?: BinaryConfig }).binary;
  const name = binary?.module_name;
  const template = binary?.module_path;
  if (typeof name !== 'string' || typeof template !== 'string') return undefined;
  const libcs = process.platform === 'linux' ? ['glibc', 'musl'] : ['unknown'];
  const found = libcs
    .map((libc) =>
      template
        .replaceAll('{node_abi}', `node-v${process.versions.modules}`)
        .replaceAll('{platform}', process.platform)
        .replaceAll('{arch}', process.arch)
        .replaceAll('{libc}', libc),
    )
    .filter((path) => !path.includes('{'))
    .map((path) => join(dirname(packageJsonPath), path, `${name}.node`))
    .filter((path) => existsSync(path));
  // Two builds for two C libraries: which one this system has is what
  // node-pre-gyp's own lookup (detect-libc) is for.
  return found.length === 1 ? found[0] : undefined;
}

/** `require('roaring')`, with node-pre-gyp's `find` answered by {@link nativeModulePath} when it can be. */
function loadRoaring(): typeof Roaring {
  let stubbed: string | undefined;
  try {
    const packageJsonPath = load.resolve('roaring/package.json');
    const preBinding = load.resolve('@mapbox/node-pre-gyp/lib/pre-binding', { paths: [dirname(packageJsonPath)] });
    const binding = nativeModulePath(packageJsonPath);
    if (binding !== undefined && load.cache[preBinding] === undefined) {
      load.cache[preBinding] = {
        id: preBinding,
        filename: preBinding,
        loaded: true,
        exports: { find: (): string => binding },
      } as unknown as NodeJS.Module;
      stubbed = preBinding;
    }
  } catch {
    // A layout this module does not know: roaring looks for itself.
  }
  try {
    return load('roaring') as typeof Roaring;
  } catch (err) {
    // The one build found would not load (a copy made for another C
    // library, say): roaring's own lookup decides, as without this module.
    if (stubbed === undefined) throw err;
    delete load.cache[stubbed];
    stubbed = undefined;
    return load('roaring') as typeof Roaring;
  } finally {
    // Only roaring's own lookup is answered; anyone else gets node-pre-gyp.
    if (stubbed !== undefined) delete load.cache[stubbed];
  }
}

/**
 * The `roaring` package (its CommonJS exports), loaded once.
 *
 * @example
 * ```ts
 * const bitmap = new roaring.RoaringBitmap32([1, 2, 3]);
 * ```
 */
export const roaring: typeof Roaring = loadRoaring();
