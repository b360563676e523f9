/**
 * What the CachingDownloader does differently now that its attempts go
 * through the shared engine: a body that fails after its last byte keeps
 * its bytes, the look, the blocks and the revalidation share one retry
 * budget, and the request size defaults to the shared DEFAULT_MAX_REQUEST_BYTES.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_REQUEST_BYTES } from '../src/defaults.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { defaultCachingDownloaderOptions, type DownloadEvent } from '../src/download/caching-options.js';
import { FakeReader, transient } from './helpers/fake-reader.js';
import { MemoryCache } from './helpers/memory-cache.js';
import { payload } from './helpers/payload.js';

const fast = { baseDelayMs: 1, maxDelayMs: 5, jitter: 0 } as const;

describe('CachingDownloader through the attempt engine', () => {
  it('keeps a body that fails after its last byte: the error is counted, the range is not asked again', async () => {
    const size = 64 * 1024;
    const cache = MemoryCache.create(size, 16 * 1024);
    // The first request's body delivers all its bytes, then resets.
    const reader = new FakeReader({
      size,
      script: ({ n, from, to }) => (n === 0 ? { endAfter: to - from + 1, errorAfterEnd: transient('reset after the last byte') } : undefined),
    });
    const dl = new CachingDownloader(reader, cache, { concurrency: 1, maxRequestBytes: 16 * 1024, retry: fast });
    const status = await dl.run();
    expect(status.complete).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    expect(status.stats).toMatchObject({ errors: 1, retries: 0, requests: 4 });
    expect(reader.requests.map((r) => r.from)).toEqual([0, 16 * 1024, 32 * 1024, 48 * 1024]);
  });

  it('emits retry events for the look keyed as the look, and counts them in the run', async () => {
    const size = 8 * 1024;
    const events: DownloadEvent[] = [];
    const reader = new FakeReader({ size, lookFailures: 2 });
    const dl = new CachingDownloader(reader, MemoryCache.create(size, 4096), { retry: fast, onEvent: (e) => void events.push(e) });
    const status = await dl.run();
    expect(status.complete).toBe(true);
    const retries = events.filter((e): e is Extract<DownloadEvent, { type: 'retry' }> => e.type === 'retry');
    expect(retries.map((e) => [e.range, e.attempt])).toEqual([
      [{ from: -1, to: -1 }, 1],
      [{ from: -1, to: -1 }, 2],
    ]);
    expect(status.stats).toMatchObject({ errors: 2, retries: 2 });
  });

  it('asks for up to DEFAULT_MAX_REQUEST_BYTES per request when told to, and sizes requests from 4 MiB when not', async () => {
    expect(defaultCachingDownloaderOptions.maxRequestBytes).toBe(DEFAULT_MAX_REQUEST_BYTES);
    const size = 2 * DEFAULT_MAX_REQUEST_BYTES;
    const given = new FakeReader({ size, chunkSize: 1024 * 1024 });
    const status = await new CachingDownloader(given, MemoryCache.create(size, 1024 * 1024), { concurrency: 1, maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES }).run();
    expect(status.complete).toBe(true);
    expect(given.requests.map((r) => r.to - r.from + 1)).toEqual([DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_BYTES]);
    // Left out: the first request is 4 MiB (nothing measured yet), and none is over the default cap.
    const sized = new FakeReader({ size, chunkSize: 1024 * 1024 });
    expect((await new CachingDownloader(sized, MemoryCache.create(size, 1024 * 1024), { concurrency: 1 }).run()).complete).toBe(true);
    expect(sized.requests[0]).toMatchObject({ from: 0, to: 4 * 1024 * 1024 - 1 });
    expect(sized.requests.every((r) => r.to - r.from + 1 <= DEFAULT_MAX_REQUEST_BYTES)).toBe(true);
  });
});
