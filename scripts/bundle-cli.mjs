/**
 * Bundles the `blockfetch` command (after `tsc`): dist/cli/main.js becomes
 * the command's entry, holding it and the packages it imports, so a run no
 * longer resolves and reads some sixty modules one by one. Measured on
 * 512 MiB from nginx at c8 (5 alternating runs, 2026-12-07): 1.18 against
 * 1.32 CPU s, 1.19 against 1.23 s. The library (dist/index.js and the rest
 * of dist/) stays as tsc wrote it.
 *
 * The parts a command reaches through a dynamic `import()` (the S3 and Hub
 * sources with the AWS signer and XML parser, `inspect`, `verify`, the set
 * command) are split into chunks beside it (dist/cli/main-*.js: the same
 * directory, so `import.meta.url`-relative paths such as
 * src/http/version.ts's `../../package.json` still hold), loaded when used:
 * `--version` starts in 111 instead of 151 ms (median of 15, 2026-12-07);
 * a download loads most of them and starts no faster for the split.
 * Whitespace is dropped and non-ASCII escaped: V8 then reads the source as
 * one-byte text (UTF-8 decoding took 11 ms of a `--version` profile, 4
 * after).
 * Names are kept, so a stack trace still names its functions.
 *
 * Left outside the bundle, loaded from node_modules as before: the native
 * packages (roaring, fs-ext), and undici, which src/http/undici.ts loads
 * module by module through createRequire (esbuild leaves those calls alone).
 *
 *   node scripts/bundle-cli.mjs
 */
import { readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry a hash of their content: drop the last build's.
for (const name of readdirSync('dist/cli')) if (/^main-.+\.js$/.test(name)) rmSync(`dist/cli/${name}`);
await build({
  entryPoints: [{ in: 'dist/cli/main.js', out: 'main' }],
  outdir: 'dist/cli',
  chunkNames: 'main-[name]-[hash]',
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['roaring', 'fs-ext', 'undici'],
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  legalComments: 'none',
  // CommonJS packages inside an ES module bundle call `require`: give them Node's.
  banner: { js: "import { createRequire as __blockfetchRequire } from 'node:module'; const require = __blockfetchRequire(import.meta.url);" },
  logLevel: 'warning',
});
