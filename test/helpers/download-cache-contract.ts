/**
 * The `DownloadCache` contract (src/cache/types.ts) as one test suite that
 * any implementation can be run against: the real `LocalDownloadCache`
 * (test/cache-contract.test.ts) and in-memory fakes alike, so a fake used
 * to test the downloaders cannot drift from the real thing.
 *
 * It talks to the cache only through the interface, and checks the stable
 * error codes, never the messages.
 *
 * @example
 * ```ts
 * downloadCacheContract('MemoryCache', async (contentLength, blockSize) => MemoryCache.create(contentLength, blockSize));
 * ```
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DownloadCache } from '../../src/cache/types.js';
import { BlockfetchError } from '../../src/errors.js';
import type { ByteRange } from '../../src/ranges/byte-range.js';
import { seededRandom } from './random.js';
import { firstMisplaced, payload } from './payload.js';

/** Makes a new, empty cache of a file of `contentLength` bytes in blocks of `blockSize`. */
export type MakeCache = (contentLength: number, blockSize: number) => Promise<DownloadCache>;

/** The stable code of what `op` throws or rejects with, or undefined if it succeeds. */
export async function codeOf(op: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof op === 'function' ? op() : op);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return (err as BlockfetchError).code;
  }
}

/** True if `p` has not settled after a few turns of the event loop. */
export async function stillPending(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return !settled;
}

/** Registers the contract suite for the implementation `make` builds. */
export function downloadCacheContract(name: string, make: MakeCache): void {
  describe(`DownloadCache contract: ${name}`, () => {
    const opened: DownloadCache[] = [];
    const fresh = async (contentLength: number, blockSize: number): Promise<DownloadCache> => {
      const cache = await make(contentLength, blockSize);
      opened.push(cache);
      return cache;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((c) => c.close().catch(() => undefined)));
    });

    it('starts empty and lists every block as outstanding, the short last one included', async () => {
      const cache = await fresh(10, 4);
      expect(cache.contentLengthAndBlockSize()).toEqual({ contentLength: 10, blockSize: 4 });
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 0, blocks: 0 });
      expect(cache.complete()).toBe(false);
      expect(collect((s, br) => cache.nextOutstanding(s, br))).toEqual([
        { from: 0, to: 3 },
        { from: 4, to: 7 },
        { from: 8, to: 9 },
      ]);
      expect(cache.nextCached(0, { from: -1, to: -1 })).toBe(-1);
    });

    it('writeAt stores whole blocks (the last one short) that read back at any offset', async () => {
      const cache = await fresh(10_000, 4096);
      expect(await cache.writeAt(payload(0, 4095), 0)).toBe(4096);
      expect(await cache.writeAt(payload(8192, 9999), 8192)).toBe(1808);
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4096 + 1808, blocks: 2 });
      const buf = new Uint8Array(1000);
      expect(await cache.readAt(buf, 3)).toBe(1000);
      expect(Buffer.from(buf).equals(payload(3, 1002))).toBe(true);
      const end = new Uint8Array(9999 - 8200 + 1);
      await cache.readAt(end, 8200);
      expect(Buffer.from(end).equals(payload(8200, 9999))).toBe(true);
      await cache.writeAt(payload(0, 4095), 0); // again: not counted twice
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4096 + 1808, blocks: 2 });
      expect(collect((s, br) => cache.nextCached(s, br))).toEqual([
        { from: 0, to: 4095 },
        { from: 8192, to: 9999 },
      ]);
    });

    it('writeAt rejects misaligned, wrong-length and out-of-file writes with BLOCKFETCH_INVALID_WRITE', async () => {
      const cache = await fresh(10, 4);
      expect(await codeOf(cache.writeAt(payload(2, 5), 2))).toBe('BLOCKFETCH_INVALID_WRITE'); // misaligned
      expect(await codeOf(cache.writeAt(payload(0, 2), 0))).toBe('BLOCKFETCH_INVALID_WRITE'); // 3 bytes, block is 4
      expect(await codeOf(cache.writeAt(payload(0, 4), 0))).toBe('BLOCKFETCH_INVALID_WRITE'); // 5 bytes
      expect(await codeOf(cache.writeAt(payload(8, 11), 8))).toBe('BLOCKFETCH_INVALID_WRITE'); // last block is 2 bytes
      expect(await codeOf(cache.writeAt(payload(12, 13), 12))).toBe('BLOCKFETCH_INVALID_WRITE'); // past the end
      expect(await codeOf(cache.writeAt(payload(0, 3), -4))).toBe('BLOCKFETCH_INVALID_WRITE');
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 0, blocks: 0 });
      expect(await cache.writeAt(payload(8, 9), 8)).toBe(2);
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 2, blocks: 1 });
    });

    it('readAt rejects with BLOCKFETCH_UNCACHED_RANGE if ANY byte asked for is uncached', async () => {
      const cache = await fresh(12, 4);
      await cache.writeAt(payload(0, 3), 0);
      await cache.writeAt(payload(8, 11), 8);
      expect(await codeOf(cache.readAt(new Uint8Array(4), 2))).toBe('BLOCKFETCH_UNCACHED_RANGE'); // cached into uncached
      expect(await codeOf(cache.readAt(new Uint8Array(4), 6))).toBe('BLOCKFETCH_UNCACHED_RANGE'); // uncached into cached
      expect(await codeOf(cache.readAt(new Uint8Array(12), 0))).toBe('BLOCKFETCH_UNCACHED_RANGE'); // a hole in the middle
      expect(await codeOf(cache.readAt(new Uint8Array(1), 7))).toBe('BLOCKFETCH_UNCACHED_RANGE');
      const one = new Uint8Array(1);
      expect(await cache.readAt(one, 11)).toBe(1);
      expect(one[0]).toBe(payload(11, 11)[0]);
      expect(await cache.readAt(new Uint8Array(0), 5)).toBe(0);
    });

    it('writeData + markCached: bytes become readable only once the block is marked', async () => {
      const cache = await fresh(100, 40);
      await cache.writeData(payload(40, 49), 40);
      await cache.writeData(payload(50, 79), 50);
      expect(await codeOf(cache.readAt(new Uint8Array(40), 40))).toBe('BLOCKFETCH_UNCACHED_RANGE');
      expect(cache.nextCached(0, { from: -1, to: -1 })).toBe(-1);
      cache.markCached(1);
      expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 40, blocks: 1 });
      const buf = new Uint8Array(40);
      await cache.readAt(buf, 40);
      expect(firstMisplaced(buf, 40)).toBe(-1);
    });

    it('a 1-byte file; an empty file is complete from the start', async () => {
      const one = await fresh(1, 4);
      expect(await codeOf(one.writeAt(new Uint8Array(4), 0))).toBe('BLOCKFETCH_INVALID_WRITE');
      await one.writeAt(new Uint8Array([42]), 0);
      expect(one.complete()).toBe(true);
      const b = new Uint8Array(1);
      await one.readAt(b, 0);
      expect(b[0]).toBe(42);
      expect(await one.tail()).toEqual({ from: 0, to: 0 });

      const empty = await fresh(0, 4);
      expect(empty.complete()).toBe(true);
      expect(empty.cachedBytesAndBlocks()).toEqual({ bytes: 0, blocks: 0 });
      expect(empty.nextOutstanding(0, { from: -1, to: -1 })).toBe(-1);
      expect(await empty.tail()).toEqual({ from: -1, to: -1 });
      expect(await empty.readAt(new Uint8Array(0), 0)).toBe(0);
    });

    it('tail: at once when the prefix grew, waits when not, skips blocks set out of order, at once when complete', async () => {
      const cache = await fresh(10, 4);
      await cache.writeAt(payload(0, 3), 0);
      expect(await cache.tail()).toEqual({ from: 0, to: 3 });
      const next = cache.tail();
      expect(await stillPending(next)).toBe(true);
      await cache.writeAt(payload(8, 9), 8); // not the prefix: still waiting
      expect(await stillPending(next)).toBe(true);
      await cache.writeAt(payload(4, 7), 4);
      expect(await next).toEqual({ from: 0, to: 9 });
      expect(await cache.tail()).toEqual({ from: 0, to: 9 });
      expect(await cache.tail()).toEqual({ from: 0, to: 9 });
    });

    it('tail returns {-1,-1} when its signal aborts, at once if already aborted', async () => {
      const cache = await fresh(10, 4);
      const ac = new AbortController();
      const waiting = cache.tail(ac.signal);
      expect(await stillPending(waiting)).toBe(true);
      ac.abort();
      expect(await waiting).toEqual({ from: -1, to: -1 });
      expect(await cache.tail(AbortSignal.abort())).toEqual({ from: -1, to: -1 });
    });

    it('tail misses no wake-up: a follower reaches the end while blocks arrive in any order (20 seeded rounds)', async () => {
      for (let round = 0; round < 20; round++) {
        const random = seededRandom(round + 1);
        const numBlocks = 64;
        const last = numBlocks * 16 - 6;
        const cache = await fresh(last + 1, 16);
        const order = Array.from({ length: numBlocks }, (_, i) => i).sort(() => random() - 0.5);
        const seen: number[] = [];
        const follower = (async () => {
          for (;;) {
            const t = await cache.tail();
            seen.push(t.to);
            if (t.to === last) return;
          }
        })();
        await Promise.all(
          order.map(async (i) => {
            if (random() < 0.5) await new Promise((r) => setImmediate(r));
            await cache.writeAt(payload(i * 16, Math.min(i * 16 + 15, last)), i * 16);
          }),
        );
        await follower; // hangs (and times out) on a missed wake-up
        expect(seen).toEqual([...seen].sort((a, b) => a - b));
        expect(new Set(seen).size).toBe(seen.length); // strictly growing
        await cache.close();
      }
    });

    it('records the remote identity', async () => {
      const cache = await fresh(10, 4);
      const identity = { url: 'http://127.0.0.1/f', size: 10, etag: '"e1"' };
      await cache.setRemoteIdentity(identity);
      expect(cache.remoteIdentity()).toEqual(identity);
    });

    it('close is idempotent; afterwards I/O fails with BLOCKFETCH_CACHE_CLOSED', async () => {
      const cache = await fresh(10, 4);
      await cache.writeAt(payload(0, 3), 0);
      await Promise.all([cache.close(), cache.close()]);
      await cache.close();
      expect(await codeOf(cache.writeAt(payload(4, 7), 4))).toBe('BLOCKFETCH_CACHE_CLOSED');
      expect(await codeOf(cache.writeData(payload(4, 7), 4))).toBe('BLOCKFETCH_CACHE_CLOSED');
      expect(await codeOf(cache.readAt(new Uint8Array(4), 0))).toBe('BLOCKFETCH_CACHE_CLOSED');
      expect(await codeOf(cache.flush())).toBe('BLOCKFETCH_CACHE_CLOSED');
      expect(await codeOf(() => cache.markCached(1))).toBe('BLOCKFETCH_CACHE_CLOSED');
    });
  });
}

/** Every range a Go-style iterator (`next(start, out)` → next start or -1) yields. */
function collect(next: (start: number, out: ByteRange) => number): ByteRange[] {
  const out: ByteRange[] = [];
  const br = { from: -1, to: -1 };
  for (let i = next(0, br); i !== -1; i = next(i, br)) out.push({ ...br });
  return out;
}
