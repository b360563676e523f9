/**
 * How long one index save takes, for 1 M and 16 M blocks and three bitmap
 * shapes, split into its steps: serialize the roaring bitmap, encode the
 * JSON (base64 + sha256 checksum), and save it durably (temp file, fsync,
 * rename, fsync dir) on the filesystem holding os.tmpdir().
 *
 *   npx tsx bench/index-save.bench.ts [repeats=7] [writeMiB=400] [rateMiBps=50]
 *
 * Shapes: `prefix` (first half done: what an in-order download looks like;
 * runs compress to a few bytes), `window` (a done prefix plus every other
 * block of the next 1 %: many blocks in flight), `alternating` (every other
 * block: roaring's worst case, a full bitset container per 65536 blocks).
 * Prints one JSON line per case with median milliseconds.
 *
 * Then it writes `writeMiB` of 64 KiB blocks through a LocalDownloadCache
 * with the default batching, 8 writes in flight, paced at `rateMiBps` (a
 * download's speed, not the disk's), and reports how much of the wall time
 * went into index saves and into data fsyncs: the real cost of durability.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { NodeCacheFile, nodeFileSystem, type CacheFileReadWriter, type CacheFileSystem } from '../src/cache/file.js';
import { IndexFile } from '../src/cache/index-file.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { encodeIndex } from '../src/cache/index-format.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

const repeats = Number(process.argv[2] ?? 7);
const writeMiB = Number(process.argv[3] ?? 400);
const rateMiBps = Number(process.argv[4] ?? 50);
const BLOCK = 4096;

type Shape = 'prefix' | 'window' | 'alternating';

function build(numBlocks: number, shape: Shape): ByteRanges {
  const ranges = new ByteRanges(numBlocks * BLOCK, BLOCK);
  const half = Math.floor(numBlocks / 2);
  if (shape === 'alternating') {
    for (let i = 0; i < numBlocks; i += 2) ranges.setBlock(i);
    return ranges;
  }
  for (let i = 0; i < half; i++) ranges.setBlock(i);
  if (shape === 'window') {
    const end = half + Math.floor(numBlocks / 100);
    for (let i = half + 1; i < end; i += 2) ranges.setBlock(i);
  }
  return ranges;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-bench-index-'));
  try {
    const index = new IndexFile(join(dir, 'bench.bfindex'));
    for (const numBlocks of [1 << 20, 1 << 24]) {
      for (const shape of ['prefix', 'window', 'alternating'] as const) {
        const ranges = build(numBlocks, shape);
        const serializeMs: number[] = [];
        const encodeMs: number[] = [];
        const saveMs: number[] = [];
        let bytes = 0;
        let bitmapBytes = 0;
        for (let r = 0; r < repeats; r++) {
          let t = performance.now();
          const bitmap = ranges.serialize();
          serializeMs.push(performance.now() - t);
          bitmapBytes = bitmap.length;
          const contents = {
            contentLength: ranges.contentLength,
            blockSize: BLOCK,
            numBlocks,
            cachedBlocks: ranges.setCount,
            cachedBytes: ranges.setBytes,
            remote: { url: 'http://127.0.0.1/f', size: ranges.contentLength, etag: '"bench"' },
            bitmap,
            updatedAt: new Date().toISOString(),
          };
          t = performance.now();
          const encoded = encodeIndex(contents);
          encodeMs.push(performance.now() - t);
          bytes = encoded.length;
          t = performance.now();
          await index.replace(encoded);
          saveMs.push(performance.now() - t);
        }
        const total = median(serializeMs) + median(encodeMs) + median(saveMs);
        console.log(
          JSON.stringify({
            numBlocks,
            shape,
            bitmapBytes,
            indexBytes: bytes,
            serializeMs: +median(serializeMs).toFixed(2),
            encodeMs: +median(encodeMs).toFixed(2),
            saveMs: +median(saveMs).toFixed(2),
            totalMs: +total.toFixed(2),
            // Share of wall time spent saving at the default batching (one save per second).
            dutyAt1s: `${((total / 1000) * 100).toFixed(2)}%`,
          }),
        );
      }
    }
    await flushShare(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes `writeMiB` through a cache with default batching, timing index saves and data fsyncs. */
async function flushShare(dir: string): Promise<void> {
  const block = 64 * 1024;
  const size = writeMiB * 1024 * 1024;
  const dataPath = join(dir, 'share.bin');
  const indexPath = join(dir, 'share.bin.bfindex');
  await createNewFilesForCache(dataPath, indexPath, size, block);
  let saves = 0;
  let indexMs = 0;
  let saveStarted = 0;
  const timedFs: CacheFileSystem = {
    ...nodeFileSystem,
    create: (path) => {
      saveStarted = performance.now();
      return nodeFileSystem.create(path);
    },
    syncDir: async (d) => {
      await nodeFileSystem.syncDir(d);
      saves++;
      indexMs += performance.now() - saveStarted;
    },
  };
  const file = await NodeCacheFile.open(dataPath);
  let dataSyncs = 0;
  let dataSyncMs = 0;
  const timedData: CacheFileReadWriter = {
    name: file.name,
    read: (b, p) => file.read(b, p),
    write: (d, p) => file.write(d, p),
    truncate: (l) => file.truncate(l),
    size: () => file.size(),
    close: () => file.close(),
    sync: async () => {
      const t = performance.now();
      await file.sync();
      dataSyncs++;
      dataSyncMs += performance.now() - t;
    },
  };
  const cache = await LocalDownloadCache.fromFiles(timedData, new IndexFile(indexPath, timedFs));
  const chunk = Buffer.alloc(block, 0x5a);
  const numBlocks = size / block;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < numBlocks) {
        const i = next++;
        // Pace like a download of rateMiBps: block i is due at i * block / rate.
        const due = started + ((i * block) / (rateMiBps * 1024 * 1024)) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await cache.writeAt(chunk, i * block);
      }
    }),
  );
  await cache.close();
  const wallMs = performance.now() - started;
  console.log(
    JSON.stringify({
      writeMiB,
      rateMiBps,
      blockKiB: block / 1024,
      wallMs: Math.round(wallMs),
      MiBps: Math.round(writeMiB / (wallMs / 1000)),
      indexSaves: saves,
      indexMs: +indexMs.toFixed(1),
      indexShare: `${((indexMs / wallMs) * 100).toFixed(2)}%`,
      dataFsyncs: dataSyncs,
      dataFsyncMs: Math.round(dataSyncMs),
    }),
  );
}

await main();
