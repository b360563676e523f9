import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentBootId } from '../src/cache/boot-id.js';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { inspectDownload } from '../src/cli/inspect.js';
import { nodeFileSystem, NodeCacheFile, type CacheFileReadWriter, type CacheFileSystem } from '../src/cache/file.js';
import { IndexFile } from '../src/cache/index-file.js';
import { decodeIndex } from '../src/cache/index-format.js';
import { readLiveIndex } from '../src/cache/live-index.js';
import { LocalDownloadCache, type LocalDownloadCacheOptions, type OpenLocalDownloadCacheOptions } from '../src/cache/local-download-cache.js';
import { BlockfetchError } from '../src/errors.js';
import { codeOf, stillPending } from './helpers/download-cache-contract.js';
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

/** The most blocks any valid save in the live file at `path` records as written (0 when there is none). */
async function liveWrittenBlocks(path: string): Promise<number> {
  const saves = await readLiveIndex(path);
  return Math.max(0, ...saves.map((contents) => contents.written?.cachedBlocks ?? 0));
}

async function newCache(contentLength: number, blockSize: number, options: LocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
  await createNewFilesForCache(dataPath, indexPath, contentLength, blockSize);
  const cache = await LocalDownloadCache.open(dataPath, indexPath, options);
  open.push(cache);
  return cache;
}

async function reopen(options: OpenLocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
  const cache = await LocalDownloadCache.open(dataPath, indexPath, options);
  open.push(cache);
  return cache;
}

/** What the index on disk says right now. */
async function onDisk(): Promise<{ cachedBlocks: number; remote: unknown }> {
  return JSON.parse(await readFile(indexPath, 'utf8')) as { cachedBlocks: number; remote: unknown };
}

/** The same, with the blocks recorded as written on this boot but not yet fsynced. */
async function onDiskRaw(): Promise<{ cachedBlocks: number; written?: { cachedBlocks: number } }> {
  return JSON.parse(await readFile(indexPath, 'utf8')) as { cachedBlocks: number; written?: { cachedBlocks: number } };
}

describe('LocalDownloadCache: beyond the contract (test/cache-contract.test.ts)', () => {
  it('writeDataParts writes adjacent parts as one write, byte for byte, and refuses what does not fit', async () => {
    const cache = await newCache(100, 10);
    // Parts of uneven sizes, as socket chunks come, one of them empty.
    const parts = [payload(5, 7), payload(8, 8), new Uint8Array(0), payload(9, 40)];
    await cache.writeDataParts(parts, 5);
    for (let i = 1; i <= 3; i++) cache.markCached(i);
    const back = new Uint8Array(30);
    await cache.readAt(back, 10);
    expect(Buffer.from(back).equals(Buffer.from(payload(10, 39)))).toBe(true);
    expect(await codeOf(cache.writeDataParts([payload(90, 99), payload(100, 100)], 90))).toBe('BLOCKFETCH_INVALID_WRITE');
    await cache.close();
    expect(await codeOf(cache.writeDataParts([payload(0, 1)], 0))).toBe('BLOCKFETCH_CACHE_CLOSED');
  });

  it('writeDataNow is done with its data when it returns: bytes overwritten right after are not what lands', async () => {
    const cache = await newCache(100, 10);
    const data = Buffer.from(payload(20, 59));
    const written = cache.writeDataNow(data, 20);
    data.fill(0xee); // the caller reuses its memory at once
    await written;
    for (let i = 2; i <= 5; i++) cache.markCached(i);
    const back = new Uint8Array(40);
    await cache.readAt(back, 20);
    expect(Buffer.from(back).equals(Buffer.from(payload(20, 59)))).toBe(true);
    expect(await codeOf(cache.writeDataNow(payload(95, 100), 95))).toBe('BLOCKFETCH_INVALID_WRITE');
    await cache.close();
    expect(await codeOf(cache.writeDataNow(payload(0, 1), 0))).toBe('BLOCKFETCH_CACHE_CLOSED');
  });

  it('invalid writes: messages name the block, the lengths and the bad value', async () => {
    const cache = await newCache(10, 4);
    await expect(cache.writeAt(payload(0, 2), 0)).rejects.toThrow(/block 0 of 3 must be exactly 4 bytes, got 3/);
    await expect(cache.writeAt(payload(0, 3), 0.5)).rejects.toThrow(/multiple of the block size 4 below 10, got 0.5 \(number\)/);
    expect(await codeOf(cache.writeData(payload(8, 10), 8))).toBe('BLOCKFETCH_INVALID_WRITE'); // one byte too many
    expect(() => cache.markCached(3)).toThrow(/from 0 to 2, got 3/);
    expect(() => cache.markCached(1.5)).toThrow(/got 1.5 \(number\)/);
    expect(await codeOf(cache.writeAt(new Uint8Array(0), 12))).toBe('BLOCKFETCH_INVALID_WRITE');
  });

  it('an uncached read names the missing bytes; a read past the end is a bad argument', async () => {
    const cache = await newCache(12, 4);
    await cache.writeAt(payload(0, 3), 0);
    await cache.writeAt(payload(8, 11), 8);
    const err = await cache.readAt(new Uint8Array(4), 2).catch((e: unknown) => e); // bytes 2..5: 4 and 5 uncached
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_UNCACHED_RANGE');
    expect((err as BlockfetchError).message).toContain('cannot read bytes 2-5: bytes 4-5 are not cached yet');
    expect(await codeOf(cache.readAt(new Uint8Array(2), 11))).toBe('BLOCKFETCH_INVALID_ARGUMENT');
    expect(await codeOf(cache.readAt(new Uint8Array(1), -1))).toBe('BLOCKFETCH_INVALID_ARGUMENT');
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
    // Saves of the index itself (the live index is written in place, and its creation renames once).
    const counting: CacheFileSystem = { ...nodeFileSystem, rename: (a, b) => (b === indexPath && saves++, nodeFileSystem.rename(a, b)) };
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
    // Saves of the index itself (the live index is written in place, and its creation renames once).
    const counting: CacheFileSystem = { ...nodeFileSystem, rename: (a, b) => (b === indexPath && saves++, nodeFileSystem.rename(a, b)) };
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

  it('flushTimeBudget counts main-thread work only: a slow disk does not pause the next background save', async () => {
    // Before issue 10 the budget counted the fsync waits too, so one save
    // queued behind a slow disk paused the next for seconds, and a kill -9
    // in that pause lost everything since. The waits hold nothing else up.
    await createNewFilesForCache(dataPath, indexPath, 40, 4);
    let saves = 0;
    const slow: CacheFileSystem = {
      ...nodeFileSystem,
      syncDir: async (d) => {
        await new Promise((r) => setTimeout(r, 30)); // a slow disk: 30 ms of waiting per save
        await nodeFileSystem.syncDir(d);
        saves++;
      },
    };
    const cache = await LocalDownloadCache.fromFiles(await NodeCacheFile.open(dataPath), new IndexFile(indexPath, slow), {
      flushIntervalMs: 0,
      flushTimeBudget: 0.01, // had the 30 ms counted, the pause would be >= 2.97 s
      bootId: 'boot-1',
    });
    open.push(cache);
    await cache.writeAt(payload(0, 3), 0);
    while (saves < 1) await new Promise((r) => setTimeout(r, 5));
    await cache.writeAt(payload(4, 7), 4);
    // The second block is recorded (written this boot, or already fsynced) by a background save, no flush() called.
    // The live index (saved without fsync) counts: it is where background saves go between data syncs.
    const recorded = async (): Promise<number> => {
      const index = await onDiskRaw();
      const live = await readFile(`${indexPath}.live`, 'utf8')
        .then((text) => JSON.parse(text) as { written?: { cachedBlocks: number } })
        .catch(() => undefined);
      return Math.max(index.cachedBlocks, index.written?.cachedBlocks ?? 0, live?.written?.cachedBlocks ?? 0);
    };
    while ((await recorded()) < 2) await new Promise((r) => setTimeout(r, 5));
    await cache.flush();
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
  it('close wakes a waiting tail with {-1,-1}; tail after close is BLOCKFETCH_CACHE_CLOSED', async () => {
    const cache = await newCache(10, 4);
    const waiting = cache.tail();
    expect(await stillPending(waiting)).toBe(true);
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
    await expect(LocalDownloadCache.open(dataPath, indexPath, { flushBytes: '1' })).rejects.toThrow(/flushBytes .* got "1" \(string\)/);
    // @ts-expect-error not a lock mode
    await expect(LocalDownloadCache.open(dataPath, indexPath, { lock: 'yes' })).rejects.toThrow(/lock must be 'fail', 'wait', false or a CacheLock, got yes \(string\)/);
  });
});

describe('LocalDownloadCache: the live index (saved without fsync, trusted on its own boot)', () => {
  const livePath = (): string => `${indexPath}.live`;
  const liveBlocks = (): Promise<number> => liveWrittenBlocks(livePath());
  /** The live file read synchronously: no timer runs while a test holds the thread. */
  const liveBlocksNow = (): number => {
    const bytes = readFileSync(livePath());
    const half = bytes.length / 2;
    return Math.max(
      ...[bytes.subarray(0, half), bytes.subarray(half)].map((slot) => decodeIndex(Buffer.from(slot.toString('latin1').trimEnd(), 'latin1'), livePath()).written?.cachedBlocks ?? 0),
    );
  };

  it('background saves between data syncs go to the live index; a reopen on the same boot trusts it, on another boot not', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 0, bootId: 'boot-1' });
    await cache.writeAt(payload(0, 3), 0);
    // The first save starts a data sync; the one after it saves the index durably.
    while ((await onDisk()).cachedBlocks < 1) await new Promise((r) => setTimeout(r, 5));
    for (let b = 1; b < 6; b++) await cache.writeAt(payload(b * 4, b * 4 + 3), b * 4);
    while ((await liveBlocks()) < 6) await new Promise((r) => setTimeout(r, 5));
    // The durable index is behind (one data sync a second at most): what a kill -9 finds.
    expect((await onDisk()).cachedBlocks).toBeLessThan(6);
    const sameBoot = await reopen({ lock: false, bootId: 'boot-1' });
    expect(sameBoot.cachedBytesAndBlocks().blocks).toBe(6);
    const back = new Uint8Array(24);
    await sameBoot.readAt(back, 0);
    expect(firstMisplaced(back)).toBe(-1);
    const otherBoot = await reopen({ lock: false, bootId: 'boot-2' });
    expect(otherBoot.cachedBytesAndBlocks().blocks).toBe((await onDisk()).cachedBlocks);
    await otherBoot.close();
    await sameBoot.close();
  });

  it('the live index is made when the cache opens, before any block is written; a complete cache makes none', async () => {
    const cache = await newCache(40, 4, { bootId: 'boot-1' });
    // No write yet: the file appears on its own (in the background, so waited for).
    while (!existsSync(livePath())) await new Promise((r) => setTimeout(r, 5));
    expect(await liveBlocks()).toBe(0);
    for (let b = 0; b < 10; b++) await cache.writeAt(payload(b * 4, b * 4 + 3), b * 4);
    await cache.close();
    expect(existsSync(livePath())).toBe(false);
    const complete = await reopen({ bootId: 'boot-1' });
    await new Promise((r) => setTimeout(r, 50)); // time enough for a creation to show, had one started
    expect(existsSync(livePath())).toBe(false);
    await complete.close();
  });

  it('a mark saves the live index once the save interval is over, even while a timer for it waits on the event loop', async () => {
    // Node runs timers only between I/O phases, and at full speed one phase
    // read and wrote for 100-150 ms: the marks made in it waited for a timer
    // that could not fire, and a kill -9 then lost 100-500 MiB (1 GiB, c8).
    const cache = await newCache(40, 4, { bootId: 'boot-1' });
    const write = async (block: number): Promise<void> => {
      await cache.writeDataNow(payload(block * 4, block * 4 + 3), block * 4);
      cache.markCached(block);
    };
    await write(0);
    while ((await liveBlocks()) < 1) await new Promise((r) => setTimeout(r, 5));
    const spin = (ms: number): void => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    // From here on the thread is never given back to the event loop (only
    // promise callbacks run). Block 1 is saved at once (the interval since
    // the last save is long over); block 2, right behind it, arms a timer.
    spin(25);
    await write(1);
    await write(2);
    for (let b = 3; b < 6; b++) {
      spin(25); // more than the least time between two live saves
      await write(b);
    }
    expect(liveBlocksNow()).toBe(6);
    await cache.close();
  });

  it('every 4 MiB of marks saves the live index, however soon after the last save', async () => {
    // Within one long event-loop turn the socket queues are drained at
    // memory speed: 20 ms of marks was up to 39 MiB of whole blocks on disk
    // that no index named when a kill -9 came (1 GiB from nginx, c8).
    const mib = 1024 * 1024;
    // No time budget between saves: only the interval and the bytes decide.
    const cache = await newCache(16 * mib, mib, { bootId: 'boot-1', flushTimeBudget: 1 });
    const block = Buffer.alloc(mib, 7);
    const write = async (index: number): Promise<void> => {
      await cache.writeDataNow(block, index * mib);
      cache.markCached(index);
    };
    await write(0);
    while ((await liveBlocks()) < 1) await new Promise((r) => setTimeout(r, 5));
    // Eight blocks right behind the first save, the thread never given back
    // to the event loop: whichever mark saved last, fewer than 4 MiB of marks
    // follow it. (Before: 1 of 9, the next save waiting for the 20 ms timer.)
    for (let b = 1; b <= 8; b++) await write(b);
    expect(liveBlocksNow()).toBeGreaterThanOrEqual(6);
    await cache.close();
  });

  it('close() saves the marks to the live index before its final data sync: a kill during that sync loses none', async () => {
    // The final sync of a large download takes a second or more under
    // writeback; the last marks used to wait for the durable save after it.
    await createNewFilesForCache(dataPath, indexPath, 40, 4);
    const file = await NodeCacheFile.open(dataPath);
    let syncStarted = (): void => undefined;
    const syncing = new Promise<void>((resolve) => (syncStarted = resolve));
    let releaseSync = (): void => undefined;
    const held = new Promise<void>((resolve) => (releaseSync = resolve));
    const slowSync: CacheFileReadWriter = {
      name: file.name,
      read: (buffer, position) => file.read(buffer, position),
      write: (data, position) => file.write(data, position),
      writeNow: (data, position) => file.writeNow(data, position),
      sync: async () => {
        syncStarted();
        await held;
        await file.sync();
      },
      truncate: (length) => file.truncate(length),
      size: () => file.size(),
      close: () => file.close(),
    };
    const cache = await LocalDownloadCache.fromFiles(slowSync, new IndexFile(indexPath), { bootId: 'boot-1' });
    open.push(cache);
    while (!existsSync(livePath())) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30)); // past the least time between live saves
    for (let b = 0; b < 4; b++) {
      await cache.writeDataNow(payload(b * 4, b * 4 + 3), b * 4);
      cache.markCached(b); // the first saves at once; the rest fall within the interval
    }
    const closing = cache.close();
    try {
      await syncing; // the final sync has started and does not end: a kill now
      expect(await liveBlocks()).toBe(4);
    } finally {
      releaseSync();
      await closing;
    }
  });

  it('close() saves the index durably and removes the live index', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 0, bootId: 'boot-1' });
    await cache.writeAt(payload(0, 3), 0);
    while ((await onDisk()).cachedBlocks < 1) await new Promise((r) => setTimeout(r, 5));
    await cache.writeAt(payload(4, 7), 4);
    while ((await liveBlocks()) < 2) await new Promise((r) => setTimeout(r, 5));
    await cache.close();
    expect((await onDisk()).cachedBlocks).toBe(2);
    expect(existsSync(livePath())).toBe(false);
  });

  it('a live index of another download, or torn, is ignored; a new cache removes a leftover one', async () => {
    const cache = await newCache(40, 4, { flushIntervalMs: 0, bootId: 'boot-1' });
    await cache.setRemoteIdentity({ url: 'http://h/a', size: 40, etag: '"a"' });
    for (let b = 0; b < 4; b++) await cache.writeAt(payload(b * 4, b * 4 + 3), b * 4);
    // A live save with at least one block (a durable save may cover the later marks, and then the live index has nothing to add).
    while ((await liveBlocks()) < 1) await new Promise((r) => setTimeout(r, 5));
    const live = await readFile(livePath());
    await cache.close();
    // Planted back after close: the same download's, so trusted again on this boot.
    await writeFile(livePath(), live);
    const again = await reopen({ lock: false, bootId: 'boot-1' });
    expect(again.cachedBytesAndBlocks().blocks).toBe(4);
    await again.close();
    // Torn: ignored, no error.
    await writeFile(livePath(), live.subarray(0, 40));
    const torn = await reopen({ lock: false, bootId: 'boot-1' });
    expect(torn.cachedBytesAndBlocks().blocks).toBe(4); // the durable index has them all since close()
    await torn.close();
    // A new cache at these paths must not inherit the old live index.
    await writeFile(livePath(), live);
    await createNewFilesForCache(dataPath, indexPath, 40, 4, { overwrite: true, identity: { url: 'http://h/a', size: 40, etag: '"a"' } });
    expect(existsSync(livePath())).toBe(false);
    const fresh = await reopen({ lock: false, bootId: 'boot-1' });
    expect(fresh.cachedBytesAndBlocks().blocks).toBe(0);
    await fresh.close();
  });
});

describe('blockfetch inspect counts what a resume on this boot keeps', () => {
  it('the blocks only the live index (or written) records are counted, as LocalDownloadCache.open counts them', async () => {
    const boot = currentBootId();
    if (boot === null) return; // no boot id here: every save is durable, nothing to show
    const target = join(dir, 'big.bin');
    const data = `${target}.blockfetch`;
    const index = `${target}.blockfetch.json`;
    await createNewFilesForCache(data, index, 40, 4);
    const cache = await LocalDownloadCache.open(data, index, { flushIntervalMs: 0 });
    open.push(cache);
    await cache.writeAt(payload(0, 3), 0);
    while ((JSON.parse(await readFile(index, 'utf8')) as { cachedBlocks: number }).cachedBlocks < 1) await new Promise((r) => setTimeout(r, 5));
    for (let b = 1; b < 5; b++) await cache.writeAt(payload(b * 4, b * 4 + 3), b * 4);
    const live = (): Promise<number> => liveWrittenBlocks(`${target}.blockfetch.live`);
    while ((await live()) < 5) await new Promise((r) => setTimeout(r, 5));
    const report = await inspectDownload(target);
    expect(report).toMatchObject({ state: 'partial', doneBlocks: 5, doneBytes: 20, percentDone: 50 });
    expect(report.outstanding).toEqual([{ from: 20, to: 39 }]);
  });
});
