import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { nodeFileSystem, NodeCacheFile, type CacheFileSystem } from '../src/cache/file.js';
import { IndexFile } from '../src/cache/index-file.js';
import { LocalDownloadCache, type LocalDownloadCacheOptions } from '../src/cache/local-download-cache.js';
import type { ByteRange } from '../src/ranges/byte-range.js';
import { BlockfetchError } from '../src/errors.js';
import { seededRandom } from './helpers/crash-fs.js';
import { firstMisplaced, payload } from './helpers/payload.js';

let dir: string;
let dataPath: string;
let indexPath: string;
const open: LocalDownloadCache[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-local-'));
  dataPath = join(dir, 'file.bin');
  indexPath = join(dir, 'file.bin.bfindex');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close().catch(() => undefined)));
  await rm(dir, { recursive: true, force: true });
});

async function newCache(contentLength: number, blockSize: number, options: LocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
  await createNewFilesForCache(dataPath, indexPath, contentLength, blockSize);
  const cache = await LocalDownloadCache.open(dataPath, indexPath, options);
  open.push(cache);
  return cache;
}

async function reopen(options: LocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
  const cache = await LocalDownloadCache.open(dataPath, indexPath, options);
  open.push(cache);
  return cache;
}

/** What the index on disk says right now. */
async function onDisk(): Promise<{ cachedBlocks: number; remote: unknown }> {
  return JSON.parse(await readFile(indexPath, 'utf8')) as { cachedBlocks: number; remote: unknown };
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return (err as BlockfetchError).code;
  }
}

/** True if `p` has not settled after a few turns of the event loop. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return !settled;
}

describe('LocalDownloadCache: writes and reads', () => {
  it('writes whole blocks, the short last block included, and reads them back at any offset', async () => {
    const cache = await newCache(10_000, 4096);
    expect(cache.contentLengthAndBlockSize()).toEqual({ contentLength: 10_000, blockSize: 4096 });
    expect(await cache.writeAt(payload(0, 4095), 0)).toBe(4096);
    expect(await cache.writeAt(payload(8192, 9999), 8192)).toBe(1808);
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4096 + 1808, blocks: 2 });
    const buf = new Uint8Array(1000);
    expect(await cache.readAt(buf, 3)).toBe(1000);
    expect(Buffer.from(buf).equals(payload(3, 1002))).toBe(true);
    const tail = new Uint8Array(9999 - 8200 + 1);
    await cache.readAt(tail, 8200);
    expect(Buffer.from(tail).equals(payload(8200, 9999))).toBe(true);
    // Writing a block again does not count it twice.
    await cache.writeAt(payload(0, 4095), 0);
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4096 + 1808, blocks: 2 });
  });

  it('rejects misaligned, wrong-length and out-of-file writes with BLOCKFETCH_INVALID_WRITE', async () => {
    const cache = await newCache(10, 4);
    expect(await codeOf(cache.writeAt(payload(2, 5), 2))).toBe('BLOCKFETCH_INVALID_WRITE'); // misaligned
    expect(await codeOf(cache.writeAt(payload(0, 2), 0))).toBe('BLOCKFETCH_INVALID_WRITE'); // 3 bytes, block is 4
    expect(await codeOf(cache.writeAt(payload(0, 4), 0))).toBe('BLOCKFETCH_INVALID_WRITE'); // 5 bytes
    expect(await codeOf(cache.writeAt(payload(8, 11), 8))).toBe('BLOCKFETCH_INVALID_WRITE'); // last block is 2 bytes
    expect(await codeOf(cache.writeAt(payload(12, 13), 12))).toBe('BLOCKFETCH_INVALID_WRITE'); // past the end
    expect(await codeOf(cache.writeAt(payload(0, 3), -4))).toBe('BLOCKFETCH_INVALID_WRITE');
    expect(await codeOf(cache.writeAt(payload(0, 3), 0.5))).toBe('BLOCKFETCH_INVALID_WRITE');
    expect(await codeOf(cache.writeData(payload(8, 10), 8))).toBe('BLOCKFETCH_INVALID_WRITE'); // one byte too many
    await expect(cache.writeAt(payload(0, 2), 0)).rejects.toThrow(/block 0 of 3 must be exactly 4 bytes, got 3/);
    expect(await cache.writeAt(payload(8, 9), 8)).toBe(2);
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 2, blocks: 1 });
  });

  it('rejects a read if ANY byte asked for is uncached, including one that runs from a cached block into an uncached one', async () => {
    const cache = await newCache(12, 4);
    await cache.writeAt(payload(0, 3), 0);
    await cache.writeAt(payload(8, 11), 8);
    const err = await cache.readAt(new Uint8Array(4), 2).catch((e: unknown) => e); // bytes 2..5: 4 and 5 uncached
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_UNCACHED_RANGE');
    expect((err as BlockfetchError).message).toContain('bytes 4-5 are not cached');
    expect(await codeOf(cache.readAt(new Uint8Array(4), 6))).toBe('BLOCKFETCH_UNCACHED_RANGE'); // uncached into cached
    expect(await codeOf(cache.readAt(new Uint8Array(12), 0))).toBe('BLOCKFETCH_UNCACHED_RANGE'); // a hole in the middle
    expect(await codeOf(cache.readAt(new Uint8Array(1), 7))).toBe('BLOCKFETCH_UNCACHED_RANGE');
    // Out of the file is a bad argument, not "uncached".
    expect(await codeOf(cache.readAt(new Uint8Array(2), 11))).toBe('BLOCKFETCH_INVALID_ARGUMENT');
    expect(await codeOf(cache.readAt(new Uint8Array(1), -1))).toBe('BLOCKFETCH_INVALID_ARGUMENT');
    // Within cached blocks, any offset works; 0 bytes reads nothing.
    const one = new Uint8Array(1);
    expect(await cache.readAt(one, 11)).toBe(1);
    expect(one[0]).toBe(payload(11, 11)[0]);
    expect(await cache.readAt(new Uint8Array(0), 5)).toBe(0);
  });

  it('a 1-byte file and an empty file', async () => {
    const one = await newCache(1, 4);
    expect(await codeOf(one.writeAt(new Uint8Array(4), 0))).toBe('BLOCKFETCH_INVALID_WRITE');
    await one.writeAt(new Uint8Array([42]), 0);
    expect(one.complete()).toBe(true);
    const b = new Uint8Array(1);
    await one.readAt(b, 0);
    expect(b[0]).toBe(42);
    expect(await one.tail()).toEqual({ from: 0, to: 0 });
    await one.close();

    await rm(dataPath);
    await rm(indexPath);
    const empty = await newCache(0, 4);
    expect(empty.complete()).toBe(true);
    expect(empty.cachedBytesAndBlocks()).toEqual({ bytes: 0, blocks: 0 });
    expect(empty.nextOutstanding(0, { from: -1, to: -1 })).toBe(-1);
    expect(await empty.tail()).toEqual({ from: -1, to: -1 });
    expect(await empty.readAt(new Uint8Array(0), 0)).toBe(0);
    expect(await codeOf(empty.writeAt(new Uint8Array(0), 0))).toBe('BLOCKFETCH_INVALID_WRITE');
    expect(() => empty.markCached(0)).toThrow(/markCached index/);
  });

  it('streams a block with writeData and makes it readable only after markCached', async () => {
    const cache = await newCache(100, 40);
    await cache.writeData(payload(40, 49), 40);
    await cache.writeData(payload(50, 79), 50);
    expect(await codeOf(cache.readAt(new Uint8Array(40), 40))).toBe('BLOCKFETCH_UNCACHED_RANGE');
    expect(cache.nextCached(0, { from: -1, to: -1 })).toBe(-1);
    cache.markCached(1);
    const buf = new Uint8Array(40);
    await cache.readAt(buf, 40);
    expect(firstMisplaced(buf, 40)).toBe(-1);
    expect(() => cache.markCached(3)).toThrow(/from 0 to 2, got 3/);
    expect(() => cache.markCached(1.5)).toThrow(/got 1.5 \(number\)/);
  });

  it('iterates outstanding and cached blocks with the Go contract', async () => {
    const cache = await newCache(10, 4);
    await cache.writeAt(payload(4, 7), 4);
    const collect = (next: (s: number, br: ByteRange) => number): ByteRange[] => {
      const out: ByteRange[] = [];
      const br = { from: -1, to: -1 };
      for (let i = next(0, br); i !== -1; i = next(i, br)) out.push({ ...br });
      return out;
    };
    expect(collect((s, br) => cache.nextOutstanding(s, br))).toEqual([
      { from: 0, to: 3 },
      { from: 8, to: 9 },
    ]);
    expect(collect((s, br) => cache.nextCached(s, br))).toEqual([{ from: 4, to: 7 }]);
  });

  it('keeps what was written across close and reopen', async () => {
    const cache = await newCache(64 * 1024, 4096);
    for (const i of [3, 0, 15, 7]) await cache.writeAt(payload(i * 4096, i * 4096 + 4095), i * 4096);
    await cache.close();
    const again = await reopen();
    expect(again.cachedBytesAndBlocks()).toEqual({ bytes: 4 * 4096, blocks: 4 });
    const buf = new Uint8Array(4096);
    await again.readAt(buf, 15 * 4096);
    expect(firstMisplaced(buf, 15 * 4096)).toBe(-1);
  });
});

describe('LocalDownloadCache: flushing', () => {
  it('batches: marks reach the index on flush(), not on every write', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 60_000, flushBytes: 1 << 30 });
    await cache.writeAt(payload(0, 3), 0);
    await cache.writeAt(payload(4, 7), 4);
    expect((await onDisk()).cachedBlocks).toBe(0);
    await cache.flush();
    expect((await onDisk()).cachedBlocks).toBe(2);
  });

  it('flushes in the background once flushBytes were marked', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 60_000, flushBytes: 8 });
    await cache.writeAt(payload(0, 3), 0);
    await new Promise((r) => setTimeout(r, 50));
    expect((await onDisk()).cachedBlocks).toBe(0);
    await cache.writeAt(payload(4, 7), 4);
    for (let i = 0; i < 100 && (await onDisk()).cachedBlocks < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await onDisk()).cachedBlocks).toBe(2);
  });

  it('flushes in the background after flushIntervalMs', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 30, flushBytes: 1 << 30 });
    await cache.writeAt(payload(0, 3), 0);
    for (let i = 0; i < 200 && (await onDisk()).cachedBlocks < 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await onDisk()).cachedBlocks).toBe(1);
  });

  it('coalesces: concurrent flush() calls share one save; an unchanged cache saves nothing', async () => {
    await createNewFilesForCache(dataPath, indexPath, 4096, 16);
    let saves = 0;
    const counting: CacheFileSystem = { ...nodeFileSystem, rename: (a, b) => (saves++, nodeFileSystem.rename(a, b)) };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, counting), {
      flushIntervalMs: 60_000,
      flushBytes: 1 << 30,
    });
    open.push(cache);
    const write = (i: number): Promise<number> => cache.writeAt(payload(i * 16, i * 16 + 15), i * 16);
    for (let i = 0; i < 128; i++) await write(i);
    await Promise.all(Array.from({ length: 50 }, () => cache.flush()));
    expect(saves).toBe(1);
    expect((await onDisk()).cachedBlocks).toBe(128);

    // While one flush is in flight, new marks and many requests join ONE queued flush.
    for (let i = 128; i < 192; i++) await write(i);
    const inFlight = cache.flush();
    await new Promise((r) => setImmediate(r));
    for (let i = 192; i < 256; i++) await write(i);
    await Promise.all([inFlight, ...Array.from({ length: 50 }, () => cache.flush())]);
    expect(saves).toBeLessThanOrEqual(3);
    expect((await onDisk()).cachedBlocks).toBe(256);

    const after = saves;
    await write(0); // already cached: no change
    await Promise.all([cache.flush(), cache.flush(), cache.flush()]);
    expect(saves).toBe(after);
  });

  it('with flushIntervalMs 0 every mark asks for a flush, but the requests coalesce', async () => {
    await createNewFilesForCache(dataPath, indexPath, 4096, 16);
    let saves = 0;
    const counting: CacheFileSystem = { ...nodeFileSystem, rename: (a, b) => (saves++, nodeFileSystem.rename(a, b)) };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, counting), {
      flushIntervalMs: 0,
    });
    open.push(cache);
    await Promise.all(Array.from({ length: 256 }, (_, i) => cache.writeAt(payload(i * 16, i * 16 + 15), i * 16)));
    await cache.flush();
    expect((await onDisk()).cachedBlocks).toBe(256);
    expect(saves).toBeLessThan(256);
  });

  it('a flush failure in the background is reported by the next operation, and the next flush retries', async () => {
    await createNewFilesForCache(dataPath, indexPath, 40, 4);
    let failNext = false;
    const flaky: CacheFileSystem = {
      ...nodeFileSystem,
      syncDir: async (d) => {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
        await nodeFileSystem.syncDir(d);
      },
    };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, flaky), {
      flushIntervalMs: 0,
      flushTimeBudget: 1,
    });
    open.push(cache);
    failNext = true;
    await cache.writeAt(payload(0, 3), 0);
    await new Promise((r) => setTimeout(r, 50));
    const err = await cache.writeAt(payload(4, 7), 4).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_DISK_WRITE');
    expect((err as BlockfetchError).message).toMatch(/EIO/);
    await cache.writeAt(payload(4, 7), 4);
    await cache.flush();
    expect((await onDisk()).cachedBlocks).toBe(2);
  });

  it('flushTimeBudget: after a slow flush, background flushes wait; an explicit flush() does not', async () => {
    await createNewFilesForCache(dataPath, indexPath, 40, 4);
    let saves = 0;
    const slow: CacheFileSystem = {
      ...nodeFileSystem,
      syncDir: async (d) => {
        saves++;
        await new Promise((r) => setTimeout(r, 30)); // a slow disk: the index work takes >= 30 ms
        await nodeFileSystem.syncDir(d);
      },
    };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, slow), {
      flushIntervalMs: 0,
      flushTimeBudget: 0.01, // >= 30 ms of work buys a pause of >= 2.97 s
    });
    open.push(cache);
    await cache.writeAt(payload(0, 3), 0);
    for (let i = 0; i < 100 && (await onDisk()).cachedBlocks < 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(saves).toBe(1);
    await cache.writeAt(payload(4, 7), 4);
    await new Promise((r) => setTimeout(r, 300));
    expect(saves).toBe(1); // still inside the pause
    await cache.flush();
    expect(saves).toBe(2);
    expect((await onDisk()).cachedBlocks).toBe(2);
  });

  it('a failing disk is retried in the background after a pause, not in a loop', async () => {
    await createNewFilesForCache(dataPath, indexPath, 40, 4);
    let attempts = 0;
    const broken: CacheFileSystem = {
      ...nodeFileSystem,
      syncDir: async () => {
        attempts++;
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      },
    };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, broken), {
      flushIntervalMs: 0,
      flushTimeBudget: 1,
    });
    await cache.writeAt(payload(0, 3), 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(attempts).toBe(1);
    await expect(cache.close()).rejects.toMatchObject({ code: 'BLOCKFETCH_DISK_WRITE' });
    expect(attempts).toBe(2); // close tried once more, then still closed the file
  });

  it('setRemoteIdentity is on disk when it resolves, and survives reopening', async () => {
    const cache = await newCache(10, 4, { flushIntervalMs: 60_000 });
    expect(cache.remoteIdentity()).toBeUndefined();
    const identity = { url: 'http://127.0.0.1/f', size: 10, etag: '"e1"', lastModified: 'Sat, 21 Nov 2026 10:00:00 GMT' };
    await cache.setRemoteIdentity(identity);
    expect((await onDisk()).remote).toEqual(identity);
    expect(cache.remoteIdentity()).toEqual(identity);
    await expect(cache.setRemoteIdentity({ url: 'x', size: 11 })).rejects.toThrow(/identity.size 11 differs/);
    await cache.close();
    expect((await reopen()).remoteIdentity()).toEqual(identity);
  });
});

describe('LocalDownloadCache: tail', () => {
  it('returns the prefix at once when it grew, waits when it has not, and skips over blocks set out of order', async () => {
    const cache = await newCache(10, 4);
    await cache.writeAt(payload(0, 3), 0);
    expect(await cache.tail()).toEqual({ from: 0, to: 3 });
    const next = cache.tail();
    expect(await pending(next)).toBe(true);
    await cache.writeAt(payload(8, 9), 8); // not the prefix: still waiting
    expect(await pending(next)).toBe(true);
    await cache.writeAt(payload(4, 7), 4);
    expect(await next).toEqual({ from: 0, to: 9 });
    // Complete: returns at once, every time.
    expect(await cache.tail()).toEqual({ from: 0, to: 9 });
    expect(await cache.tail()).toEqual({ from: 0, to: 9 });
  });

  it('returns {-1,-1} when the signal aborts, at once if already aborted', async () => {
    const cache = await newCache(10, 4);
    const ac = new AbortController();
    const waiting = cache.tail(ac.signal);
    expect(await pending(waiting)).toBe(true);
    ac.abort();
    expect(await waiting).toEqual({ from: -1, to: -1 });
    expect(await cache.tail(AbortSignal.abort())).toEqual({ from: -1, to: -1 });
  });

  it('misses no wake-up: a reader following the tail sees it reach the end while blocks arrive in any order', async () => {
    for (let round = 0; round < 20; round++) {
      const random = seededRandom(round + 1);
      const numBlocks = 64;
      const cache = await newCache(numBlocks * 16 - 5, 16, { flushIntervalMs: 60_000 });
      const order = Array.from({ length: numBlocks }, (_, i) => i).sort(() => random() - 0.5);
      const seen: number[] = [];
      const reader = (async () => {
        for (;;) {
          const t = await cache.tail();
          seen.push(t.to);
          if (t.to === numBlocks * 16 - 6) return;
        }
      })();
      await Promise.all(
        order.map(async (i) => {
          if (random() < 0.5) await new Promise((r) => setImmediate(r));
          const to = Math.min(i * 16 + 15, numBlocks * 16 - 6);
          await cache.writeAt(payload(i * 16, to), i * 16);
        }),
      );
      await reader; // would hang (and time out) on a missed wake-up
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(new Set(seen).size).toBe(seen.length); // strictly growing
      await cache.close();
      await rm(dataPath);
      await rm(indexPath);
    }
  });

  it('close wakes a waiting tail with {-1,-1}; tail after close is BLOCKFETCH_CACHE_CLOSED', async () => {
    const cache = await newCache(10, 4);
    const waiting = cache.tail();
    expect(await pending(waiting)).toBe(true);
    await cache.close();
    expect(await waiting).toEqual({ from: -1, to: -1 });
    expect(await codeOf(cache.tail())).toBe('BLOCKFETCH_CACHE_CLOSED');
  });
});

describe('LocalDownloadCache: close', () => {
  it('is idempotent; afterwards operations fail with BLOCKFETCH_CACHE_CLOSED, queries still answer', async () => {
    const cache = await newCache(10, 4);
    await cache.writeAt(payload(0, 3), 0);
    const a = cache.close();
    const b = cache.close();
    expect(a).toBe(b);
    await a;
    await cache.close();
    expect(await codeOf(cache.writeAt(payload(4, 7), 4))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(cache.writeData(payload(4, 7), 4))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(cache.readAt(new Uint8Array(4), 0))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(cache.flush())).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(cache.setRemoteIdentity({ url: 'u', size: 10 }))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(() => cache.markCached(1))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(() => cache.nextOutstanding(0, { from: -1, to: -1 }))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(await codeOf(() => cache.nextCached(0, { from: -1, to: -1 }))).toBe('BLOCKFETCH_CACHE_CLOSED');
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4, blocks: 1 });
    expect(cache.complete()).toBe(false);
    // The lock was released, and the mark was flushed.
    expect((await reopen()).cachedBytesAndBlocks()).toEqual({ bytes: 4, blocks: 1 });
  });

  it('waits for writes in flight and records them', async () => {
    const cache = await newCache(4096 * 8, 4096, { flushIntervalMs: 60_000 });
    const writes = Array.from({ length: 8 }, (_, i) => cache.writeAt(payload(i * 4096, i * 4096 + 4095), i * 4096));
    await cache.close();
    await Promise.all(writes);
    const again = await reopen();
    expect(again.complete()).toBe(true);
  });

  it('rejects bad options naming them', async () => {
    await createNewFilesForCache(dataPath, indexPath, 10, 4);
    await expect(LocalDownloadCache.open(dataPath, indexPath, { flushIntervalMs: -1 })).rejects.toThrow(/flushIntervalMs .* got -1 \(number\)/);
    await expect(LocalDownloadCache.open(dataPath, indexPath, { flushTimeBudget: 0 })).rejects.toThrow(/flushTimeBudget .* got 0 \(number\)/);
    // @ts-expect-error a string where a number belongs
    await expect(LocalDownloadCache.open(dataPath, indexPath, { flushBytes: '1' })).rejects.toThrow(/flushBytes .* got 1 \(string\)/);
    // @ts-expect-error not a lock mode
    await expect(LocalDownloadCache.open(dataPath, indexPath, { lock: 'yes' })).rejects.toThrow(/lock must be 'fail', 'wait', false or a CacheLock, got yes \(string\)/);
  });
});
