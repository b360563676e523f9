/**
 * Runs a bundle through the bin's loader and writes its code cache, in a
 * process of its own: V8 keeps what a process compiled, so a cache read
 * back in the process that made it is never checked.
 *
 *   node --import tsx test/helpers/make-code-cache.ts BUNDLE
 */
import { writeFileSync } from 'node:fs';
import { codeCachePath, loadBundle } from '../../src/cli/bundle-loader.js';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: make-code-cache.ts BUNDLE');
const bundle = loadBundle(file, false);
bundle.run();
writeFileSync(codeCachePath(file), bundle.createCodeCache());
