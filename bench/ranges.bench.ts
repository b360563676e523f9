/**
 * How fast the block bitmaps are, for 1 M and 16 M blocks (64 GiB and 1 TiB
 * at 64 KiB blocks).
 *
 *   npx tsx bench/ranges.bench.ts [sizes=1M,16M] [repeats=3]
 *
 * A plain script (not vitest). Each row is the median of `repeats` runs and
 * prints ns per operation (or ms for whole-bitmap operations) and sizes:
 *
 * - `setBlock` sequential, and in a random permutation, on `ByteRanges` (with
 *   its prefix tracking) and on `ByteRangesTracker` (without): the difference
 *   is what tail maintenance costs.
 * - `setBlock` "windowed": blocks finish out of order inside a sliding window
 *   of 64 (what a downloader with 64 requests in flight produces); the prefix
 *   advances in small jumps.
 * - one `setBlock(0)` that joins a prefix to everything else (N - 1 blocks
 *   already set): the longest possible prefix jump, done by galloping search.
 * - walking every clear block with `nextClear` (and merging them with
 *   `clearRuns`) on a bitmap with a random half set, and on one made of a
 *   few runs.
 * - `serialize` / `deserialize` (deserialize includes the value-by-value
 *   validation) and the serialized size, for four shapes.
 * - one durable index save (`encodeIndex` + `IndexFile.replace`: temp file,
 *   fsync, rename, fsync dir under os.tmpdir()) of that bitmap.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeIndex } from '../src/cache/index-format.js';
import { IndexFile } from '../src/cache/index-file.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { ByteRangesTracker } from '../src/ranges/byte-ranges-tracker.js';

const BLOCK = 64 * 1024;
const sizes = (process.argv[2] ?? '1M,16M').split(',').map(parseSize);
const repeats = Number(process.argv[3] ?? 3);

function parseSize(text: string): number {
  const m = /^(\d+)([KM]?)$/.exec(text.trim());
  if (!m) throw new Error(`size must look like 1M or 65536, got ${text}`);
  return Number(m[1]) * (m[2] === 'M' ? 2 ** 20 : m[2] === 'K' ? 2 ** 10 : 1);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Median milliseconds of `repeats` runs of `fn`, each given a fresh `setup()`. */
function time<T>(setup: () => T, fn: (state: T) => void): number {
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const state = setup();
    const t = performance.now();
    fn(state);
    ms.push(performance.now() - t);
  }
  return median(ms);
}

/** A deterministic permutation of 0..n-1 (xorshift-driven Fisher-Yates). */
function permutation(n: number, seed = 0x9e3779b9): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  let x = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p;
}

/** Blocks in order of completion with 64 in flight: each window of 64 finishes shuffled. */
function windowed(n: number): Uint32Array {
  const order = new Uint32Array(n);
  const shuffle = permutation(64, 12345);
  for (let base = 0; base < n; base += 64) {
    const len = Math.min(64, n - base);
    let k = 0;
    for (let i = 0; i < 64; i++) {
      const s = shuffle[i] as number;
      if (s < len) order[base + k++] = base + s;
    }
  }
  return order;
}

type Shape = 'half prefix' | 'few runs' | 'random half' | 'alternating';

function build(n: number, shape: Shape, random: Uint32Array): ByteRanges {
  const r = new ByteRanges(n * BLOCK, BLOCK);
  if (shape === 'half prefix') for (let i = 0; i < n / 2; i++) r.setBlock(i);
  if (shape === 'few runs') {
    // A resumed download: a prefix, two islands, the last block.
    for (let i = 0; i < 1000; i++) r.setBlock(i);
    for (let i = Math.floor(n / 3); i < Math.floor(n / 3) + 500; i++) r.setBlock(i);
    for (let i = Math.floor(n / 2); i < Math.floor(n / 2) + 64; i += 2) r.setBlock(i);
    r.setBlock(n - 1);
  }
  if (shape === 'random half') for (let i = 0; i < n / 2; i++) r.setBlock(random[i] as number);
  if (shape === 'alternating') for (let i = 0; i < n; i += 2) r.setBlock(i);
  return r;
}

const fmtNs = (ms: number, ops: number): string => `${((ms * 1e6) / ops).toFixed(0)} ns/op`;
const fmtMs = (ms: number): string => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`;
const fmtBytes = (b: number): string => (b < 1024 ? `${b} B` : b < 2 ** 20 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 2 ** 20).toFixed(2)} MiB`);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-bench-ranges-'));
  const index = new IndexFile(join(dir, 'bench.bfindex'));
  const rows: string[][] = [];
  const row = (n: number, what: string, result: string): void => {
    rows.push([`${n / 2 ** 20} M`, what, result]);
    console.log(`${n / 2 ** 20} M\t${what}\t${result}`);
  };
  try {
    for (const n of sizes) {
      const cl = n * BLOCK;
      const random = permutation(n);
      const win = windowed(n);

      const setAll = (order: Uint32Array | undefined, make: () => ByteRanges | ByteRangesTracker) =>
        time(make, (r) => {
          if (order === undefined) for (let i = 0; i < n; i++) r.setBlock(i);
          else for (let i = 0; i < n; i++) r.setBlock(order[i] as number);
        });
      const ranges = () => new ByteRanges(cl, BLOCK);
      const tracker = () => new ByteRangesTracker(cl, BLOCK);
      row(n, 'setBlock sequential, ByteRanges', fmtNs(setAll(undefined, ranges), n));
      row(n, 'setBlock sequential, Tracker', fmtNs(setAll(undefined, tracker), n));
      row(n, 'setBlock windowed (64), ByteRanges', fmtNs(setAll(win, ranges), n));
      row(n, 'setBlock windowed (64), Tracker', fmtNs(setAll(win, tracker), n));
      row(n, 'setBlock random order, ByteRanges', fmtNs(setAll(random, ranges), n));
      row(n, 'setBlock random order, Tracker', fmtNs(setAll(random, tracker), n));

      const joinMs = time(
        () => {
          const t = new ByteRangesTracker(cl, BLOCK);
          for (let i = 1; i < n; i++) t.setBlock(i);
          return ByteRanges.deserialize(t.serialize(), cl, BLOCK);
        },
        (r) => {
          r.setBlock(0);
          if (r.tail().to !== cl - 1) throw new Error('prefix did not reach the end');
        },
      );
      row(n, `setBlock(0) joining ${n - 1} set blocks (tail jump)`, `${(joinMs * 1000).toFixed(1)} µs`);

      for (const shape of ['random half', 'few runs'] as const) {
        const r = build(n, shape, random);
        const clear = n - r.setCount;
        const br = { from: -1, to: -1 };
        const walkMs = time(
          () => r,
          (x) => {
            let count = 0;
            for (let i = x.nextClear(0, br); i !== -1; i = x.nextClear(i, br)) count++;
            if (count !== clear) throw new Error(`walk found ${count}, expected ${clear}`);
          },
        );
        row(n, `nextClear walk, ${shape} (${clear} clear)`, fmtNs(walkMs, clear));
        let runs = 0;
        const runsMs = time(
          () => r,
          (x) => {
            runs = 0;
            for (const _ of x.clearRuns()) runs++;
          },
        );
        row(n, `clearRuns, ${shape} (${runs} runs)`, `${fmtMs(runsMs)} total, ${fmtNs(runsMs, runs)}`);
      }

      for (const shape of ['half prefix', 'few runs', 'random half', 'alternating'] as const) {
        const r = build(n, shape, random);
        let bytes: Uint8Array = new Uint8Array(0);
        const serMs = time(
          () => r,
          (x) => {
            bytes = x.serialize();
          },
        );
        const deMs = time(
          () => bytes,
          (b) => {
            ByteRanges.deserialize(b, cl, BLOCK);
          },
        );
        const encoded = encodeIndex({
          contentLength: cl,
          blockSize: BLOCK,
          numBlocks: n,
          cachedBlocks: r.setCount,
          cachedBytes: r.setBytes,
          remote: { url: 'http://127.0.0.1/f', size: cl, etag: '"bench"' },
          bitmap: bytes,
          updatedAt: new Date().toISOString(),
        });
        const saves: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const t = performance.now();
          await index.replace(encoded);
          saves.push(performance.now() - t);
        }
        row(
          n,
          `serialize / deserialize / index save, ${shape}`,
          `${fmtBytes(bytes.length)} (index ${fmtBytes(encoded.length)}); ${fmtMs(serMs)} / ${fmtMs(deMs)} / ${fmtMs(median(saves))}`,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log('\n| blocks | operation | result |\n| --- | --- | --- |');
  for (const [n, what, result] of rows) console.log(`| ${n} | ${what} | ${result} |`);
}

await main();
