/**
 * A child process for the cross-process lock test (test/cache-process.test.ts).
 *
 * Usage: node --import tsx cache-holder.ts <data> <index> <fail|wait> <staleMs> [hold]
 *
 * Opens the cache with the given lock mode and stale time, then prints one
 * JSON line: `{"event":"opened","blocks":N,"ms":T}` or
 * `{"event":"error","code":"BLOCKFETCH_...","ms":T}` (T: ms spent opening).
 * With `hold`, it then writes block 0, flushes, prints `{"event":"holding"}`
 * and keeps the cache (and its lock) open until it is killed. Otherwise it
 * closes the cache and exits (code 0 when opened, 2 on error).
 */
import { LocalDownloadCache } from '../../src/cache/local-download-cache.js';
import { BlockfetchError } from '../../src/errors.js';

const [dataPath, indexPath, mode, staleText, hold] = process.argv.slice(2);
if (dataPath === undefined || indexPath === undefined || (mode !== 'fail' && mode !== 'wait') || staleText === undefined) {
  console.error('usage: cache-holder.ts <data> <index> <fail|wait> <staleMs> [hold]');
  process.exit(64);
}
const staleMs = Number(staleText);
const started = Date.now();
const say = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...message, ms: Date.now() - started })}\n`);
};

try {
  const cache = await LocalDownloadCache.open(dataPath, indexPath, {
    lock: mode,
    lockOptions: { staleMs, updateMs: Math.min(1000, Math.floor(staleMs / 2)), waitTimeoutMs: 20_000, pollMs: 100 },
  });
  say({ event: 'opened', blocks: cache.cachedBytesAndBlocks().blocks });
  if (hold === 'hold') {
    const { blockSize, contentLength } = cache.contentLengthAndBlockSize();
    await cache.writeAt(new Uint8Array(Math.min(blockSize, contentLength)).fill(7), 0);
    await cache.flush();
    say({ event: 'holding' });
    setInterval(() => undefined, 60_000); // stay alive until killed
  } else {
    await cache.close();
  }
} catch (err) {
  say({ event: 'error', code: err instanceof BlockfetchError ? err.code : String(err) });
  process.exitCode = 2;
}
