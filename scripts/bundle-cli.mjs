/**
 * Bundles the `blockfetch` command (after `tsc`): dist/cli/main.js becomes
 * one file holding the command and the packages it imports, so a run no
 * longer resolves and reads some sixty modules one by one. Measured on
 * 512 MiB from nginx at c8 (5 alternating runs, 2026-12-07): 1.18 against
 * 1.32 CPU s, 1.19 against 1.23 s. The library (dist/index.js and the rest
 * of dist/) stays as tsc wrote it.
 *
 * Left outside the bundle, loaded from node_modules as before: the native
 * packages (roaring, fs-ext), and undici, which src/http/undici.ts loads
 * module by module through createRequire (esbuild leaves those calls alone).
 *
 *   node scripts/bundle-cli.mjs
 */
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/cli/main.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['roaring', 'fs-ext', 'undici'],
  // CommonJS packages inside an ES module bundle call `require`: give them Node's.
  banner: { js: "import { createRequire as __blockfetchRequire } from 'node:module'; const require = __blockfetchRequire(import.meta.url);" },
  logLevel: 'warning',
});
