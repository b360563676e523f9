/**
 * CachingDownloader memory and throughput: copies a generated file with a
 * FileReader into a LocalDownloadCache and samples the process RSS while it
 * runs. The point is that memory does NOT grow with the block size: bodies
 * are streamed chunk by chunk into place, never buffered per block.
 *
 *   npx tsx bench/downloader.bench.ts [sizeMiB=1024] [blockMiB=64] [concurrency=16] [nodigest]
 *
 * Prints one JSON line per run. Uses a temp dir under os.tmpdir(), removed at the end.
 */
import { createHash } from 'node:crypto';
import { open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { FileReader } from '../src/download/file-reader.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const blockMiB = Number(process.argv[3] ?? 64);
const concurrency = Number(process.argv[4] ?? 16);
/** Pass `nodigest` to skip the in-order sha256 (and its reads of the data file). */
const computeDigest = process.argv[5] !== 'nodigest';

/** Writes a file whose every 4-byte LE word holds its own offset; returns its sha256. */
async function generate(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  const chunk = Buffer.allocUnsafe(4 * MiB);
  try {
    for (let pos = 0; pos < size; pos += chunk.length) {
      const n = Math.min(chunk.length, size - pos);
      // Uint32Array stores wrap modulo 2^32, and x86/ARM are little-endian.
      const words = new Uint32Array(chunk.buffer, chunk.byteOffset, Math.floor(n / 4));
      for (let i = 0; i < words.length; i++) words[i] = pos + i * 4;
      const view = chunk.subarray(0, n);
      hash.update(view);
      await file.write(view, 0, n, pos);
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-bench-dl-'));
  try {
    const size = sizeMiB * MiB;
    const source = join(dir, 'source.bin');
    const sha256 = await generate(source, size);
    const dataPath = join(dir, 'copy.bin');
    const indexPath = join(dir, 'copy.bin.bfindex');
    await createNewFilesForCache(dataPath, indexPath, size, blockMiB * MiB);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    const reader = new FileReader(source, { blockSize: blockMiB * MiB });
    const dl = new CachingDownloader(reader, cache, {
      concurrency,
      maxRequestBytes: 0,
      computeDigest,
      ...(computeDigest ? { expectedDigest: { algorithm: 'sha256' as const, hex: sha256 } } : {}),
    });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    let peakInFlight = 0;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      peakInFlight = Math.max(peakInFlight, dl.stats()?.inFlight ?? 0);
    }, 20);
    const started = performance.now();
    const status = await dl.run();
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    await cache.close();
    console.log(
      JSON.stringify({
        sizeMiB,
        blockMiB,
        concurrency,
        complete: status.complete,
        computeDigest,
        digestVerified: status.digest?.verified ?? false,
        error: status.error?.message,
        seconds: Number(seconds.toFixed(2)),
        MiBps: Number((sizeMiB / seconds).toFixed(1)),
        rssBeforeMiB: Math.round(rssBefore / MiB),
        peakRssMiB: Math.round(peakRss / MiB),
        peakInFlight,
        requests: status.stats.requests,
      }),
    );
    if (!status.complete) process.exitCode = 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
