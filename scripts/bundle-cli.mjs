/**
 * Bundles the `blockfetch` command (after `tsc`) into one CommonJS file,
 * dist/cli/blockfetch.cjs, holding the command and the packages it
 * imports, and makes V8's code cache for it (scripts/train-code-cache.mjs:
 * a training download from a loopback server). dist/cli/main.js, the
 * package's bin, becomes a loader that runs the bundle with its cache
 * (src/cli/bundle-loader.ts): a run reads the functions a download needs
 * as bytecode instead of parsing and compiling them. A 1 MiB download from
 * nginx on loopback took 0.17 CPU s this way (median of 10), against 0.20
 * as the ES module chunks this script made before (alternating,
 * 2026-12-08); the same bundle without its cache took 0.20.
 *
 * One file, not chunks: a code cache belongs to one script, and the parts
 * a download never reaches (the S3 and Hub sources, `inspect`, `verify`,
 * the set command) are not run unless asked for: esbuild wraps every
 * module a dynamic `import()` reaches in a function called on that import.
 * Whitespace is dropped and non-ASCII escaped (V8 reads the source as
 * one-byte text); names are kept, so a stack trace still names its
 * functions.
 *
 * Left outside the bundle, loaded from node_modules as before: the native
 * packages (roaring, fs-ext), and undici, which src/http/undici.ts loads
 * module by module through createRequire (esbuild leaves those calls alone).
 *
 *   node scripts/bundle-cli.mjs
 */
import { rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { trainCodeCache } from './train-code-cache.mjs';

const BUNDLE = 'dist/cli/blockfetch.cjs';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['roaring', 'fs-ext', 'undici'],
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  legalComments: 'none',
  // The modules find package.json and node_modules from their own URL;
  // in the bundle that is the bundle's (dist/cli/, where main.js was).
  define: { 'import.meta.url': '__blockfetchBundleUrl' },
  // The file is the module wrapper's function expression itself: the loader
  // compiles it as read, with no wrapped copy of 840 KiB made at each start.
  banner: { js: "(function (exports, require, module, __filename, __dirname) { var __blockfetchBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  footer: { js: '})' },
  logLevel: 'warning',
});

// tsc's main.js is bundled above; the bin is now the loader.
writeFileSync(
  'dist/cli/main.js',
  [
    '#!/usr/bin/env node',
    '// The blockfetch command: runs the bundle beside it (blockfetch.cjs) with its code cache (see bundle-loader.js).',
    "import { loadBundle } from './bundle-loader.js';",
    "loadBundle(new URL('./blockfetch.cjs', import.meta.url)).run();",
    '',
  ].join('\n'),
  { mode: 0o755 },
);

// The code cache, from a run of the bundle itself.
rmSync(`${BUNDLE}.v8cache`, { force: true });
await trainCodeCache(BUNDLE);
