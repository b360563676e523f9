/**
 * How long one index save takes, for 1 M and 16 M blocks and three bitmap
 * shapes, split into its steps: serialize the roaring bitmap, encode the
 * JSON (base64 + sha256 checksum), and save it durably (temp file, fsync,
 * rename, fsync dir) on the filesystem holding os.tmpdir().
 *
 *   npx tsx bench/index-save.bench.ts [repeats=7]
 *
 * Shapes: `prefix` (first half done: what an in-order download looks like;
 * runs compress to a few bytes), `window` (a done prefix plus every other
 * block of the next 1 %: many blocks in flight), `alternating` (every other
 * block: roaring's worst case, a full bitset container per 65536 blocks).
 * Prints one JSON line per case with median milliseconds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { IndexFile } from '../src/cache/index-file.js';
import { encodeIndex } from '../src/cache/index-format.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

const repeats = Number(process.argv[2] ?? 7);
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
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
