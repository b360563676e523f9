/**
 * The CachingDownloader's key guarantees, run against EVERY DownloadCache:
 * the in-memory test cache and the real LocalDownloadCache on disk.
 * Restart rounds, sizes x concurrency, the tail stream, digest mismatch,
 * a failing disk, and abort + resume.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNewFilesForCache, openCacheFiles } from '../src/cache/cache-files.js';
import type { CacheFileReadWriter } from '../src/cache/file.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import type { DownloadCache } from '../src/cache/types.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { FakeReader } from './helpers/fake-reader.js';
import { seededRandom } from './helpers/random.js';
import { MemoryCache, type MemoryStore } from './helpers/memory-cache.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const fast = { baseDelayMs: 1, maxDelayMs: 4, jitter: 0 } as const;

/** A cache under test, and how to reopen it, read its data file and break its writes. */
interface Subject {
  cache: DownloadCache;
  /** Closes the cache and opens it again over the same "disk". */
  reopen(): Promise<DownloadCache>;
  /** The data file's bytes. */
  data(): Promise<Buffer>;
}

interface CacheKind {
  readonly name: string;
  /** A new cache; `failWriteAt`: writes at or past this offset fail with EIO. */
  create(size: number, blockSize: number, failWriteAt?: number): Promise<Subject>;
}

function eio(): NodeJS.ErrnoException {
  return Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO', errno: -5 });
}

const memoryKind: CacheKind = {
  name: 'MemoryCache',
  async create(size, blockSize, failWriteAt) {
    const faults = failWriteAt === undefined ? {} : { writeData: (offset: number) => (offset >= failWriteAt ? eio() : undefined) };
    let cache = MemoryCache.create(size, blockSize, faults);
    const store: MemoryStore = cache.store;
    return {
      get cache() {
        return cache;
      },
      async reopen() {
        await cache.close();
        cache = MemoryCache.reopen(store);
        return cache;
      },
      data: async () => Buffer.from(store.data),
    };
  },
};

let dir: string;
let serial = 0;
const open: DownloadCache[] = [];

const localKind: CacheKind = {
  name: 'LocalDownloadCache',
  async create(size, blockSize, failWriteAt) {
    const base = join(dir, `c${serial++}`);
    const dataPath = `${base}.data`;
    const indexPath = `${base}.bfindex`;
    await createNewFilesForCache(dataPath, indexPath, size, blockSize);
    const openIt = async (): Promise<LocalDownloadCache> => {
      if (failWriteAt === undefined) return LocalDownloadCache.open(dataPath, indexPath, { flushIntervalMs: 20 });
      const files = await openCacheFiles(dataPath, indexPath);
      const failing: CacheFileReadWriter = {
        name: files.data.name,
        read: (b, p) => files.data.read(b, p),
        write: (d, p) => (p >= failWriteAt ? Promise.reject(eio()) : files.data.write(d, p)),
        sync: () => files.data.sync(),
        truncate: (l) => files.data.truncate(l),
        size: () => files.data.size(),
        close: () => files.data.close(),
      };
      return LocalDownloadCache.fromFiles(failing, files.index, { flushIntervalMs: 20 });
    };
    let cache: LocalDownloadCache = await openIt();
    open.push(cache);
    return {
      get cache() {
        return cache;
      },
      async reopen() {
        await cache.close();
        cache = await LocalDownloadCache.open(dataPath, indexPath, { flushIntervalMs: 20 });
        open.push(cache);
        return cache;
      },
      data: () => readFile(dataPath),
    };
  },
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-download-contract-'));
});
afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await rm(dir, { recursive: true, force: true });
});

/** The indices of the cached blocks. */
function cachedBlocks(cache: DownloadCache): Set<number> {
  const set = new Set<number>();
  const br = { from: -1, to: -1 };
  for (let i = cache.nextCached(0, br); i !== -1; i = cache.nextCached(i, br)) set.add(i - 1);
  return set;
}

/** Every cached block's bytes hold their own offsets. */
async function expectCachedBlocksCorrect(cache: DownloadCache): Promise<void> {
  const br = { from: -1, to: -1 };
  for (let i = cache.nextCached(0, br); i !== -1; i = cache.nextCached(i, br)) {
    const buf = Buffer.alloc(br.to - br.from + 1);
    await cache.readAt(buf, br.from);
    expect(buf.equals(payload(br.from, br.to)), `block ${i - 1}`).toBe(true);
  }
}

describe.each([memoryKind, localKind])('CachingDownloader on $name', (kind) => {
  it('restart rounds at 90 %, 40 %, 0 % failures: cached blocks only grow, the file ends identical', async () => {
    const size = 1024 * 1024 + 3;
    const blockSize = 8192;
    const subject = await kind.create(size, blockSize);
    let cache = subject.cache;
    let before = new Set<number>();
    const history: number[] = [];
    for (const [round, ratio] of [0.9, 0.4, 0].entries()) {
      const reader = new FakeReader({ size, seed: 7 + round, failureRatio: ratio, chunkSize: 3000 });
      const status = await new CachingDownloader(reader, cache, {
        concurrency: 8,
        maxRequestBytes: 0,
        retry: { ...fast, attemptsPerBlock: 2, totalRetries: 100_000 },
        random: seededRandom(round),
      }).run();
      expect(status.resumable).toBe(true);
      if (ratio === 0) expect(status.complete).toBe(true);
      else expect(status.error?.code).toBe('BLOCKFETCH_RETRIES_EXHAUSTED');
      cache = await subject.reopen();
      const after = cachedBlocks(cache);
      for (const b of before) expect(after.has(b), `block ${b} was lost`).toBe(true);
      expect(status.stats.doneBlocks).toBe(after.size);
      await expectCachedBlocksCorrect(cache);
      history.push(after.size);
      before = after;
    }
    expect(history[0]).toBeGreaterThan(0);
    expect(history[0]).toBeLessThan(129);
    expect(history[2]).toBe(129);
    expect((await subject.data()).equals(payload(0, size - 1))).toBe(true);
  });

  const blockSize = 1024;
  const sizes = [0, 1, blockSize - 1, blockSize, blockSize + 1, 40 * blockSize + 1];
  it.each(sizes)('size %i at concurrency 1, 2, 16, 64 is byte-identical with the right sha256', async (size) => {
    for (const concurrency of [1, 2, 16, 64]) {
      const subject = await kind.create(size, blockSize);
      const reader = new FakeReader({ size, chunkSize: 700, script: ({ n }) => ({ delayMs: n % 3 }) });
      const status = await new CachingDownloader(reader, subject.cache, { concurrency, maxRequestBytes: 0, computeDigest: true }).run();
      expect(status.error).toBeUndefined();
      expect(status.complete).toBe(true);
      expect(status.stats).toMatchObject({ doneBytes: size, downloadedBytes: size, blocks: Math.ceil(size / blockSize) });
      expect(status.digest?.hex).toBe(createHash('sha256').update(payload(0, size - 1)).digest('hex'));
      expect(reader.maxOpen).toBeLessThanOrEqual(concurrency);
      const cache = await subject.reopen();
      expect(cache.complete()).toBe(true);
      expect((await subject.data()).equals(payload(0, size - 1))).toBe(true);
    }
  });

  it('a tail consumer reading while 16 workers finish blocks out of order gets exactly the file', async () => {
    const size = 300 * 1024 + 5;
    const subject = await kind.create(size, 4096);
    const random = seededRandom(3);
    // Random delays make blocks land out of order.
    const reader = new FakeReader({ size, chunkSize: 1500, script: () => ({ delayMs: Math.floor(random() * 8) }) });
    const dl = new CachingDownloader(reader, subject.cache, { concurrency: 16, maxRequestBytes: 0 });
    const tail = dl.createTailStream({ chunkBytes: 10_000, highWaterMark: 16_384 });
    const received: Buffer[] = [];
    const consumed = (async () => {
      for await (const chunk of tail) received.push(chunk as Buffer);
    })();
    const status = await dl.run();
    await consumed;
    expect(status.complete).toBe(true);
    expect(Buffer.concat(received).equals(payload(0, size - 1))).toBe(true);
    expect(received.length).toBeGreaterThan(1);
  });

  it('a slow tail consumer does not stall the download', async () => {
    const size = 200 * 1024;
    const subject = await kind.create(size, 4096);
    const dl = new CachingDownloader(new FakeReader({ size }), subject.cache, { concurrency: 16 });
    const tail = dl.createTailStream({ chunkBytes: 1024, highWaterMark: 1024 });
    let read = 0;
    let readWhenDone = -1;
    const consumed = (async () => {
      for await (const chunk of tail) {
        read += (chunk as Buffer).length;
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const status = await dl.run();
    readWhenDone = read;
    await consumed;
    expect(status.complete).toBe(true);
    // The download finished while the consumer had most of the file still to read...
    expect(readWhenDone).toBeLessThan(size / 2);
    // ...and the consumer still got every byte.
    expect(read).toBe(size);
  });

  it('catches a digest mismatch: not complete, not resumable, the tail stream errors', async () => {
    const size = 20_000;
    const subject = await kind.create(size, 1000);
    const dl = new CachingDownloader(new FakeReader({ size }), subject.cache, {
      expectedDigest: { algorithm: 'sha256', hex: 'f'.repeat(64) },
    });
    const tail = dl.createTailStream();
    const consumed = (async () => {
      for await (const _ of tail) void _;
    })();
    const status = await dl.run();
    expect(status).toMatchObject({ complete: false, resumable: false });
    expect(status.error?.code).toBe('BLOCKFETCH_DIGEST_MISMATCH');
    await expect(consumed).rejects.toMatchObject({ code: 'BLOCKFETCH_DIGEST_MISMATCH' });
  });

  it('a disk write failing with EIO ends the run with resumable:false and a clear error; landed blocks survive', async () => {
    const size = 64 * 1024;
    const blockSize = 4096;
    const subject = await kind.create(size, blockSize, 10 * blockSize);
    const reader = new FakeReader({ size, chunkSize: 1024 });
    const dl = new CachingDownloader(reader, subject.cache, { concurrency: 1, maxRequestBytes: 0, retry: fast });
    const tail = dl.createTailStream();
    const tailDone = (async () => {
      for await (const _ of tail) void _;
    })();
    const status = await dl.run();
    expect(status).toMatchObject({ complete: false, resumable: false });
    expect(status.error?.code).toBe('BLOCKFETCH_DISK_WRITE');
    expect(status.error?.message).toMatch(/EIO/);
    // Not retried: a failing disk is not a flaky network.
    expect(status.stats.retries).toBe(0);
    await expect(tailDone).rejects.toMatchObject({ code: 'BLOCKFETCH_DISK_WRITE' });
    const cache = await subject.reopen();
    expect(cachedBlocks(cache)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    await expectCachedBlocksCorrect(cache);
  });

  it('abort stops within 100 ms, flushes the index, and the next run resumes to an identical file', async () => {
    const size = 2 * 1024 * 1024;
    const subject = await kind.create(size, 16 * 1024);
    // 1024 chunks of 5 ms over 8 connections: about 640 ms, so the abort at 200 ms lands mid-way.
    const slow = new FakeReader({ size, chunkSize: 2048, chunkDelayMs: 5 });
    const ac = new AbortController();
    const dl = new CachingDownloader(slow, subject.cache, { concurrency: 8, maxRequestBytes: 0 });
    const running = dl.run(ac.signal);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    ac.abort();
    const status = await running;
    // Every request ended within 100 ms of the abort (run() itself also flushed the index).
    expect(slow.open).toBe(0);
    const lastEnd = Math.max(...slow.requests.map((r) => r.endedAt ?? Number.POSITIVE_INFINITY));
    expect(lastEnd - t0).toBeLessThan(100);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(status, String(status.error?.message)).toMatchObject({ complete: false, resumable: true });
    expect(status.error?.code).toBe('BLOCKFETCH_ABORTED');
    const done = status.stats.doneBlocks;
    expect(done).toBeGreaterThan(0);

    const cache = await subject.reopen();
    expect(cachedBlocks(cache).size).toBe(done); // nothing finished was lost
    const again = new FakeReader({ size });
    const resumed = await new CachingDownloader(again, cache, { concurrency: 8 }).run();
    expect(resumed.complete).toBe(true);
    expect(resumed.stats.doneBlocksAtStart).toBe(done);
    expect((await subject.data()).equals(payload(0, size - 1))).toBe(true);
    expect(firstMisplaced(await subject.data(), 0)).toBe(-1);
  });
});
