/**
 * Runs the `blockfetch` command's bundle (dist/cli/blockfetch.cjs, made by
 * scripts/bundle-cli.mjs: the command and the packages it imports as one
 * CommonJS module, written as the function expression Node wraps a
 * module's body in, `(function (exports, require, module, __filename,
 * __dirname) { ... })`, so it compiles as read) with V8's code cache for
 * it, made at build time by a training download
 * (scripts/train-code-cache.mjs): the functions a download runs are then
 * read as bytecode instead of being parsed and compiled in every run.
 * Node 20 has no compile cache of its own for a command (Node 22's
 * `module.enableCompileCache` writes one in a directory at run time; a
 * download must write nothing but its target's files), so the cache ships
 * beside the bundle and is only ever read. A 1 MiB download from nginx on
 * loopback (2026-12-08, 10 runs each, alternating): 0.17 CPU s with the
 * cache (median), 0.20 for the ES module chunks before; an experimental
 * loader of the same bundle without a cache took 0.20.
 *
 * V8 checks the cache against its own version and flags, and the source
 * only by its length: under another Node, or with flags that change code
 * generation, it rejects the cache, but it would take the cache of another
 * source of the same length and run the wrong code. So the cache file
 * starts with the SHA-256 of the source it was made from (1.7-2.4 ms for
 * the bundle's 840 KiB, the first hash of a process), and a cache of any
 * other source is not used. Either way the bundle then compiles as usual.
 *
 * @example
 * ```ts
 * // dist/cli/main.js, the package's bin (written by scripts/bundle-cli.mjs):
 * import { loadBundle } from './bundle-loader.js';
 * loadBundle(new URL('./blockfetch.cjs', import.meta.url)).run();
 * ```
 * @module
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** The bundle, compiled and ready to run. */
export interface LoadedBundle {
  /** True when a cache was found and V8 did not take it (another Node, other flags, another build). */
  readonly cacheRejected: boolean;
  /** Whether a cache file was found at all. */
  readonly cacheFound: boolean;
  /** Runs the bundle as the CommonJS module it is, once. */
  run(): void;
  /** The contents of a cache file for the bundle, holding every function compiled so far (made after a run). */
  createCodeCache(): Buffer;
}

/** Bytes of the source digest a cache file starts with. */
const DIGEST_BYTES = 32;

/** Where the code cache of `bundle` is kept: beside it, `.v8cache` added. */
export function codeCachePath(bundle: string | URL): string {
  return `${typeof bundle === 'string' ? bundle : fileURLToPath(bundle)}.v8cache`;
}

/**
 * Compiles `bundle` (a CommonJS module's body in its wrapper function
 * expression, ASCII) with its code cache (see
 * {@link codeCachePath}) when there is one and `useCache` is not false.
 *
 * @example
 * ```ts
 * const bundle = loadBundle('/opt/blockfetch/dist/cli/blockfetch.cjs');
 * if (bundle.cacheRejected) console.error('compiling without the code cache');
 * bundle.run();
 * ```
 */
export function loadBundle(bundle: string | URL, useCache = true): LoadedBundle {
  const file = typeof bundle === 'string' ? bundle : fileURLToPath(bundle);
  const bytes = readFileSync(file);
  // The bundle is ASCII (esbuild's `charset: 'ascii'`): read as one-byte text, as V8 keeps it.
  const source = bytes.toString('latin1');
  let cacheFile: Buffer | undefined;
  if (useCache) {
    try {
      cacheFile = readFileSync(codeCachePath(file));
    } catch {
      cacheFile = undefined; // no cache: compile as usual
    }
  }
  const digest = createHash('sha256').update(bytes).digest();
  const madeFromThis = cacheFile !== undefined && cacheFile.length > DIGEST_BYTES && cacheFile.subarray(0, DIGEST_BYTES).equals(digest);
  const cachedData = madeFromThis ? cacheFile?.subarray(DIGEST_BYTES) : undefined;
  const script = new Script(source, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
  return {
    cacheFound: cacheFile !== undefined,
    cacheRejected: cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true),
    createCodeCache: () => Buffer.concat([digest, script.createCachedData()]),
    run(): void {
      const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void;
      const module = { exports: {}, filename: file, id: file, loaded: false };
      wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
      module.loaded = true;
    },
  };
}
