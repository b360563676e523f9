/**
 * Makes V8's code cache for the command's bundle (called by
 * scripts/bundle-cli.mjs; see src/cli/bundle-loader.ts): runs the bundle,
 * without a cache, in a child process on a download from the bench's
 * generating server (bench/gen-server.mjs) on 127.0.0.1 with the command's
 * defaults (several ranged requests, the progress lines), and when that
 * child exits it writes the code cache, which holds every function the run
 * compiled, to BUNDLE.v8cache (`LoadedBundle.createCodeCache`). Build time
 * only; nothing here ships.
 *
 *   node scripts/train-code-cache.mjs dist/cli/blockfetch.cjs
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { byteRangeViews, startGenServer } from '../bench/gen-server.mjs';

/** Bytes of the training download: four 1 MiB blocks and a short one. */
const SIZE = 4 * 1024 * 1024 + 123;

/** Runs the training download and writes `bundle`'s code cache; rejects when the download fails or differs. */
export async function trainCodeCache(bundle) {
  const { url, server } = await startGenServer({ size: SIZE });
  const dir = mkdtempSync(join(tmpdir(), 'blockfetch-training-'));
  try {
    const target = join(dir, 'training.bin');
    let output = '';
    const code = await new Promise((done, fail) => {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--run', bundle, `${url}training.bin`, '-o', target], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      child.on('error', fail);
      child.on('exit', (exitCode, signal) => done(exitCode ?? signal));
    });
    if (code !== 0) throw new Error(`the training download exited with ${code}:\n${output}`);
    if (!readFileSync(target).equals(Buffer.concat([...byteRangeViews(0, SIZE - 1)]))) {
      throw new Error('the training download does not match what was served');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.close();
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === '--run') {
  // The child: the bundle as the bin runs it, then the cache at exit.
  const [bundle, ...argv] = rest;
  const { loadBundle, codeCachePath } = await import(new URL('../dist/cli/bundle-loader.js', import.meta.url).href);
  const loaded = loadBundle(resolve(bundle), false);
  process.on('exit', (code) => {
    if (code === 0) writeFileSync(codeCachePath(resolve(bundle)), loaded.createCodeCache());
  });
  process.argv = [process.argv[0], resolve(bundle), ...argv];
  loaded.run();
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (mode === undefined) throw new Error('usage: node scripts/train-code-cache.mjs BUNDLE');
  await trainCodeCache(mode);
}
