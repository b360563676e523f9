/**
 * Properties of LocalDownloadCache checked with fast-check on random shapes,
 * over the in-memory fake filesystem (test/helpers/crash-fs.ts) so each run
 * costs microseconds, not file creations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexFile } from '../src/cache/index-file.js';
import { indexFromRanges } from '../src/cache/index-format.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { BlockfetchError } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { CrashFs } from './helpers/crash-fs.js';
import { firstMisplaced, payload } from './helpers/payload.js';

async function cacheOn(fs: CrashFs, contentLength: number, blockSize: number): Promise<LocalDownloadCache> {
  const data = await fs.create('/c/data');
  await data.truncate(contentLength);
  const empty = new ByteRanges(contentLength, blockSize);
  const index = new IndexFile('/c/index', fs);
  await index.save(indexFromRanges(empty, undefined, new Date(0)));
  return LocalDownloadCache.fromFiles(data, index, { flushIntervalMs: 60_000, flushBytes: Number.MAX_SAFE_INTEGER });
}

/** A file shape, a set of cached blocks, and a read (offset, length) inside the file. */
const scenario = fc
  .record({ blocks: fc.integer({ min: 1, max: 40 }), blockQuarters: fc.integer({ min: 1, max: 64 }), shortBy: fc.nat() })
  .chain(({ blocks, blockQuarters, shortBy }) => {
    const blockSize = blockQuarters * 4;
    const contentLength = blocks * blockSize - (shortBy % blockSize);
    const numBlocks = Math.ceil(contentLength / blockSize);
    return fc.record({
      blockSize: fc.constant(blockSize),
      contentLength: fc.constant(contentLength),
      cached: fc.uniqueArray(fc.integer({ min: 0, max: numBlocks - 1 }), { maxLength: numBlocks }),
      read: fc
        .integer({ min: 0, max: contentLength - 1 })
        .chain((offset) => fc.tuple(fc.constant(offset), fc.integer({ min: 1, max: contentLength - offset }))),
    });
  });

describe('LocalDownloadCache properties', () => {
  it('readAt succeeds exactly when every block it touches is cached, and then returns the right bytes', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ blockSize, contentLength, cached, read: [offset, length] }) => {
        const cache = await cacheOn(new CrashFs(), contentLength, blockSize);
        for (const i of cached) {
          const from = i * blockSize;
          await cache.writeAt(payload(from, Math.min(from + blockSize, contentLength) - 1), from);
        }
        const first = Math.floor(offset / blockSize);
        const last = Math.floor((offset + length - 1) / blockSize);
        let allCached = true;
        for (let b = first; b <= last; b++) if (!cached.includes(b)) allCached = false;
        const buf = new Uint8Array(length);
        const outcome = await cache.readAt(buf, offset).then(
          () => 'read',
          (err: unknown) => (err instanceof BlockfetchError ? err.code : String(err)),
        );
        expect(outcome).toBe(allCached ? 'read' : 'BLOCKFETCH_UNCACHED_RANGE');
        // firstMisplaced wants a word-aligned start: check from the next multiple of 4.
        const skip = (4 - (offset % 4)) % 4;
        if (allCached && skip < length) expect(firstMisplaced(buf.subarray(skip), offset + skip)).toBe(-1);
        expect(cache.cachedBytesAndBlocks().blocks).toBe(cached.length);
        await cache.close();
      }),
      { numRuns: 300, seed: 20261121 },
    );
  });

  it('nextOutstanding and nextCached partition the file into its blocks, in order', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ blockSize, contentLength, cached }) => {
        const cache = await cacheOn(new CrashFs(), contentLength, blockSize);
        for (const i of cached) {
          const from = i * blockSize;
          await cache.writeAt(payload(from, Math.min(from + blockSize, contentLength) - 1), from);
        }
        const seen: Array<[number, number, boolean]> = [];
        const br = { from: -1, to: -1 };
        for (let i = cache.nextOutstanding(0, br); i !== -1; i = cache.nextOutstanding(i, br)) seen.push([br.from, br.to, false]);
        for (let i = cache.nextCached(0, br); i !== -1; i = cache.nextCached(i, br)) seen.push([br.from, br.to, true]);
        seen.sort((a, b) => a[0] - b[0]);
        let expectFrom = 0;
        for (const [from, to, isCached] of seen) {
          expect(from).toBe(expectFrom);
          expect(to).toBe(Math.min(from + blockSize, contentLength) - 1);
          expect(isCached).toBe(cached.includes(from / blockSize));
          expectFrom = to + 1;
        }
        expect(expectFrom).toBe(contentLength);
        await cache.close();
      }),
      { numRuns: 200, seed: 20261122 },
    );
  });
});
