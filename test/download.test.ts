/**
 * The CachingDownloader against the in-memory cache and the scripted fake
 * reader: retries, passes, stats, events, rate limiting, digests, aborts.
 * (The tests that must also hold for the real LocalDownloadCache are in
 * download-contract.test.ts.)
 */
import { createHash } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import type { DownloadEvent, DownloadStatus } from '../src/download/caching-options.js';
import { RateLimiter, type RateClock } from '../src/download/rate-limiter.js';
import { BlockfetchError, InvalidArgumentError, RemoteChangedError } from '../src/errors.js';
import { FakeReader, transient, type FakeRequest } from './helpers/fake-reader.js';
import { MemoryCache } from './helpers/memory-cache.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const fast = { baseDelayMs: 1, maxDelayMs: 5, jitter: 0 } as const;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('CachingDownloader basics', () => {
  it('downloads every block into place and reports a sha256', async () => {
    const size = 100_003;
    const cache = MemoryCache.create(size, 4096);
    const reader = new FakeReader({ size, chunkSize: 1000 });
    const dl = new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 0, computeDigest: true });
    const status = await dl.run();
    expect(status.error).toBeUndefined();
    expect(status).toMatchObject({ complete: true, resumable: true });
    expect(firstMisplaced(cache.store.data.subarray(0, size - 3), 0)).toBe(-1);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    expect(status.digest).toEqual({ algorithm: 'sha256', hex: sha256(payload(0, size - 1)), verified: false });
    expect(status.stats).toMatchObject({
      size,
      blocks: 25,
      doneBlocks: 25,
      downloadedBlocks: 25,
      downloadedBytes: size,
      receivedBytes: size,
      requests: 25,
      inFlight: 0,
      retries: 0,
      passes: 1,
    });
    expect(reader.maxOpen).toBeLessThanOrEqual(4);
    expect(cache.store.identity).toMatchObject({ etag: '"v1"', size });
    expect(cache.store.flushes).toBeGreaterThanOrEqual(2);
  });

  it('gathers socket chunks into writes of at most 128 KiB: 8 chunks of 16 KiB, one write', async () => {
    const size = 4 * 1024 * 1024;
    let biggest = 0;
    let writes = 0;
    const cache = MemoryCache.create(size, 1024 * 1024, {
      writeData: (_offset, length) => {
        biggest = Math.max(biggest, length);
        writes++;
        return undefined;
      },
    });
    const status = await new CachingDownloader(new FakeReader({ size, chunkSize: 16 * 1024 }), cache, { concurrency: 4 }).run();
    expect(status.complete).toBe(true);
    expect(biggest).toBe(128 * 1024);
    expect(writes).toBe(size / (128 * 1024));
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
  });

  it('coalesces adjacent blocks into fewer requests but marks each block', async () => {
    const size = 64 * 1024;
    const cache = MemoryCache.create(size, 1024);
    const reader = new FakeReader({ size });
    const status = await new CachingDownloader(reader, cache, { concurrency: 2, maxRequestBytes: 8 * 1024 }).run();
    expect(status.complete).toBe(true);
    expect(reader.requests).toHaveLength(8); // 64 blocks, 8 per request
    expect(cache.marks).toBe(64);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
  });

  it('verifies an expected digest and catches a mismatch', async () => {
    const size = 10_000;
    const good = { algorithm: 'sha256' as const, hex: sha256(payload(0, size - 1)) };
    const ok = await new CachingDownloader(new FakeReader({ size }), MemoryCache.create(size, 1000), { expectedDigest: good }).run();
    expect(ok.complete).toBe(true);
    expect(ok.digest).toMatchObject({ verified: true, hex: good.hex });

    // The reader advertises a digest the bytes do not have.
    const bad = { algorithm: 'sha256' as const, hex: '0'.repeat(64) };
    const cache = MemoryCache.create(size, 1000);
    const status = await new CachingDownloader(new FakeReader({ size, digest: bad }), cache).run();
    expect(status.complete).toBe(false);
    expect(status.resumable).toBe(false);
    expect(status.error?.code).toBe('BLOCKFETCH_DIGEST_MISMATCH');
    expect(status.digest).toMatchObject({ verified: false, expected: bad.hex, hex: good.hex });
    expect(cache.complete()).toBe(true); // the bytes are there; the file is not reported complete
  });

  it('resumes: the digest catches up over the cached prefix from disk', async () => {
    const size = 50_000;
    const cache = MemoryCache.create(size, 1000);
    // First run: blocks 0..19 only (later ones always refused, no waiting).
    const first = new FakeReader({
      size,
      script: ({ from }) => (from >= 20_000 ? { refuse: transient() } : undefined),
    });
    const s1 = await new CachingDownloader(first, cache, { concurrency: 3, maxRequestBytes: 0, retry: { ...fast, attemptsPerBlock: 1 } }).run();
    expect(s1).toMatchObject({ complete: false, resumable: true });
    expect(s1.error?.code).toBe('BLOCKFETCH_RETRIES_EXHAUSTED');
    expect(s1.stats.doneBlocks).toBe(20);
    await cache.close();

    const again = MemoryCache.reopen(cache.store);
    const second = new FakeReader({ size });
    const s2 = await new CachingDownloader(second, again, { expectedDigest: { algorithm: 'sha256', hex: sha256(payload(0, size - 1)) } }).run();
    expect(s2.complete).toBe(true);
    expect(s2.digest?.verified).toBe(true);
    expect(s2.stats).toMatchObject({ doneBlocksAtStart: 20, downloadedBlocks: 30, doneBlocks: 50 });
    expect(second.requests.every((r) => r.from >= 20_000)).toBe(true);
  });

  it('rejects bad options naming them, and a second concurrent run', async () => {
    const cache = MemoryCache.create(10, 5);
    const reader = new FakeReader({ size: 10, delayMs: 20 });
    expect(() => new CachingDownloader(reader, cache, { concurrency: 0 })).toThrow(
      /option concurrency must be a whole number from 1 to 1024, got 0 \(number\)/,
    );
    expect(() => new CachingDownloader(reader, cache, { waitForCompletion: 'yes' as unknown as boolean })).toThrow(InvalidArgumentError);
    expect(() => new CachingDownloader(reader, cache, { expectedDigest: { algorithm: 'sha256', hex: 'xyz' } })).toThrow(
      /expectedDigest.hex must be 64 hex digits/,
    );
    const dl = new CachingDownloader(reader, cache);
    const first = dl.run();
    await expect(dl.run()).rejects.toThrow(/already in progress/);
    expect((await first).complete).toBe(true);
  });
});

describe('retries, passes and stats', () => {
  it('retries cut, short and long bodies and Retry-After refusals; never corrupts the file', async () => {
    const size = 40 * 1000;
    const cache = MemoryCache.create(size, 1000);
    const reader = new FakeReader({
      size,
      chunkSize: 300,
      script: ({ n }) => {
        if (n === 0) return { endAfter: 500 }; // short body, no error
        if (n === 1) return { extraBytes: 10 }; // long body
        if (n === 2) return { endAfter: 700, errorAfterEnd: transient('reset') };
        if (n === 3) return { refuse: transient('busy', 3) }; // Retry-After 3 ms
        return undefined;
      },
    });
    const events: DownloadEvent[] = [];
    const status = await new CachingDownloader(reader, cache, {
      concurrency: 1,
      maxRequestBytes: 0,
      retry: fast,
      onEvent: (e) => void events.push(e),
    }).run();
    expect(status.complete).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries).toHaveLength(4);
    expect(retries.map((e) => (e.type === 'retry' ? e.error.code : ''))).toEqual([
      'BLOCKFETCH_BODY_LENGTH',
      'BLOCKFETCH_BODY_LENGTH',
      'BLOCKFETCH_NETWORK',
      'BLOCKFETCH_NETWORK',
    ]);
    expect(retries[3]).toMatchObject({ delayMs: 3 });
    // A cut body resumes at the first byte not yet written, not at the block start.
    expect(reader.requests[1]).toMatchObject({ from: 500, to: 999 });
    // A long body is not trusted: none of its overflowing chunk is kept and the block is fetched again whole.
    expect(reader.requests[2]).toMatchObject({ from: 0, to: 999 });
    expect(reader.requests[4]).toMatchObject({ from: 700, to: 999 });
    expect(status.stats).toMatchObject({ retries: 4, errors: 4, downloadedBlocks: 40, downloadedBytes: size });
    // 500 (short) + 300 (long, before the overflow) + 700 (cut) + 300 (rest), then 39 whole blocks.
    expect(status.stats.receivedBytes).toBe(size + 800);
    expect(events.at(-1)).toEqual({ type: 'done', outcome: 'complete', status });
    expect(events[0]?.type).toBe('start');
  });

  it('keeps stats right across passes (waitForCompletion)', async () => {
    const size = 20 * 100;
    const cache = MemoryCache.create(size, 100);
    let passTwo = false;
    const reader = new FakeReader({
      size,
      // Blocks 5 and 6 fail every attempt of the first pass.
      script: ({ from }) => (!passTwo && from >= 500 && from < 700 ? { refuse: transient() } : undefined),
    });
    const events: DownloadEvent[] = [];
    const status = await new CachingDownloader(reader, cache, {
      concurrency: 4,
      maxRequestBytes: 0,
      waitForCompletion: true,
      retry: { ...fast, attemptsPerBlock: 3 },
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'pass') passTwo = true;
      },
    }).run();
    expect(status.complete).toBe(true);
    expect(status.stats).toMatchObject({
      passes: 2,
      doneBlocks: 20,
      downloadedBlocks: 20, // each block counted once, not once per pass
      downloadedBytes: size,
      receivedBytes: size,
      errors: 6,
      retries: 4, // 2 per block in pass 1; the third failure ends the block's pass
    });
    expect(events.filter((e) => e.type === 'pass')).toEqual([expect.objectContaining({ pass: 2, outstandingBlocks: 2 })]);
  });

  it('gives up after maxPasses with a resumable RetriesExhausted status', async () => {
    const cache = MemoryCache.create(1000, 100);
    const reader = new FakeReader({ size: 1000, script: ({ from }) => (from === 300 ? { refuse: transient() } : undefined) });
    const status = await new CachingDownloader(reader, cache, {
      waitForCompletion: true,
      maxPasses: 3,
      retry: { ...fast, attemptsPerBlock: 2 },
    }).run();
    expect(status).toMatchObject({ complete: false, resumable: true });
    expect(status.error?.code).toBe('BLOCKFETCH_RETRIES_EXHAUSTED');
    expect(status.error?.message).toMatch(/1 block\(s\) of fake:\/\/payload still missing after 3 pass\(es\)/);
    expect(status.stats).toMatchObject({ passes: 3, doneBlocks: 9, errors: 6 });
    expect(status.digest).toBeUndefined();
  });

  it('always delivers the final done event, with the status run() returns, on failure paths too', async () => {
    const cases: { readonly name: string; readonly run: (onEvent: (e: DownloadEvent) => void) => Promise<DownloadStatus> }[] = [
      {
        name: 'retries exhausted',
        run: (onEvent) =>
          new CachingDownloader(
            new FakeReader({ size: 1000, script: ({ from }) => (from === 300 ? { refuse: transient() } : undefined) }),
            MemoryCache.create(1000, 100),
            { retry: { ...fast, attemptsPerBlock: 2 }, onEvent },
          ).run(),
      },
      {
        name: 'a fatal error',
        run: (onEvent) =>
          new CachingDownloader(
            new FakeReader({ size: 10_000, script: ({ n }) => (n === 2 ? { refuse: new BlockfetchError('BLOCKFETCH_HTTP_STATUS', 'HTTP 404') } : undefined) }),
            MemoryCache.create(10_000, 1000),
            { maxRequestBytes: 0, onEvent },
          ).run(),
      },
      {
        name: 'an abort',
        run: (onEvent) =>
          // 100 one-chunk blocks of 20 ms over 8 connections: about 260 ms, aborted at 50 ms.
          new CachingDownloader(
            new FakeReader({ size: 100_000, chunkSize: 1000, chunkDelayMs: 20 }),
            MemoryCache.create(100_000, 1000),
            { maxRequestBytes: 0, onEvent },
          ).run(AbortSignal.timeout(50)),
      },
    ];
    for (const c of cases) {
      const events: DownloadEvent[] = [];
      const status = await c.run((e) => events.push(e));
      expect(status.complete, c.name).toBe(false);
      expect(status.error, c.name).toBeDefined();
      const last = events.at(-1);
      expect(last?.type, c.name).toBe('done');
      expect(last?.type === 'done' ? last.status : undefined, c.name).toBe(status);
    }
  });

  it('stops the whole run at once on a non-retryable error', async () => {
    const cache = MemoryCache.create(100_000, 1000);
    const reader = new FakeReader({
      size: 100_000,
      delayMs: 5,
      script: ({ n }) => (n === 3 ? { refuse: new BlockfetchError('BLOCKFETCH_HTTP_STATUS', 'HTTP 404') } : undefined),
    });
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 0 }).run();
    expect(status.error?.code).toBe('BLOCKFETCH_HTTP_STATUS');
    expect(status.resumable).toBe(true);
    expect(reader.requests.length).toBeLessThan(20);
    expect(reader.open).toBe(0);
  });

  it('retries the first look and refuses a remote whose identity changed', async () => {
    const cache = MemoryCache.create(1000, 100);
    const reader = new FakeReader({ size: 1000, lookFailures: 2 });
    const s1 = await new CachingDownloader(reader, cache, { retry: fast }).run();
    expect(s1.complete).toBe(true);
    expect(s1.stats.retries).toBe(2);

    const changed = new FakeReader({ size: 1000, identity: { etag: '"v2"' } });
    const s2 = await new CachingDownloader(changed, cache).run();
    expect(s2).toMatchObject({ complete: false, resumable: false });
    expect(s2.error?.code).toBe('BLOCKFETCH_REMOTE_CHANGED');
    expect(s2.error).toMatchObject({ changes: [{ field: 'etag', before: '"v1"', after: '"v2"' }], bytesAtRisk: 1000 });
    expect(changed.requests).toHaveLength(0);

    const resized = await new CachingDownloader(new FakeReader({ size: 999 }), MemoryCache.create(1000, 100)).run();
    expect(resized.error).toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED', changes: [{ field: 'size', before: '1000', after: '999' }] });
  });

  it('a throwing or async-rejecting listener does not break the download', async () => {
    const cache = MemoryCache.create(50_000, 1000);
    let calls = 0;
    const status = await new CachingDownloader(new FakeReader({ size: 50_000, chunkDelayMs: 1 }), cache, {
      progressIntervalMs: 1,
      onEvent: (e) => {
        calls++;
        if (e.type === 'progress') throw new Error('listener bug');
        if (e.type === 'start') return Promise.reject(new Error('async listener bug'));
      },
    }).run();
    expect(status.complete).toBe(true);
    expect(calls).toBeGreaterThan(2);
  });
});

describe('progress, hints and events', () => {
  it('a block that gains real progress on every cut attempt is not given up on (attempts reset on progress)', async () => {
    // Real progress is DEFAULT_PROGRESS_BYTES (1 MiB) beyond the furthest byte reached (issue 11 item 10).
    const MB = 1024 * 1024;
    const size = 4 * MB + 1000;
    const cache = MemoryCache.create(size, size); // one block
    const reader = new FakeReader({
      size,
      chunkSize: 64 * 1024,
      // Every attempt delivers 1 MiB and is cut.
      script: ({ from }) => (size - from > MB ? { endAfter: MB, errorAfterEnd: transient() } : undefined),
    });
    const status = await new CachingDownloader(reader, cache, { retry: { ...fast, attemptsPerBlock: 2 } }).run();
    expect(status.complete).toBe(true);
    expect(reader.requests.map((r) => r.from)).toEqual([0, MB, 2 * MB, 3 * MB, 4 * MB]);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
  });

  it('honours a Retry-After hint but caps it at maxRetryAfterMs', async () => {
    const cache = MemoryCache.create(100, 100);
    const reader = new FakeReader({ size: 100, script: ({ n }) => (n === 0 ? { refuse: transient('busy', 3_600_000) } : undefined) });
    const delays: number[] = [];
    const status = await new CachingDownloader(reader, cache, {
      retry: { ...fast, maxRetryAfterMs: 7 },
      onEvent: (e) => void (e.type === 'retry' && delays.push(e.delayMs)),
    }).run();
    expect(status.complete).toBe(true);
    expect(delays).toEqual([7]);
  });

  it('a remote that changes mid-run stops everything, with the cached bytes at risk', async () => {
    const size = 100 * 1000;
    const cache = MemoryCache.create(size, 1000);
    const changed = new RemoteChangedError('fake://payload', [{ field: 'etag', before: '"v1"', after: '"v2"' }], 0);
    const reader = new FakeReader({ size, delayMs: 2, script: ({ n }) => (n === 30 ? { refuse: changed } : undefined) });
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 0 }).run();
    expect(status).toMatchObject({ complete: false, resumable: false });
    expect(status.error).toBeInstanceOf(RemoteChangedError);
    expect(status.error).toMatchObject({ bytesAtRisk: cache.cachedBytesAndBlocks().bytes, changes: changed.changes });
    expect(cache.cachedBytesAndBlocks().bytes).toBeGreaterThan(0);
    // Promptly: at most the requests already open when it failed were started after it.
    expect(reader.requests.length).toBeLessThanOrEqual(31 + 4);
    expect(reader.open).toBe(0);
  });

  it('emits throttled progress events and publishes on diagnostics_channel', async () => {
    const seen: string[] = [];
    const onDone = (message: unknown): void => void seen.push((message as DownloadEvent).type);
    diagnosticsChannel.subscribe('blockfetch:download:done', onDone);
    try {
      const events: DownloadEvent[] = [];
      const size = 64 * 1024;
      const status = await new CachingDownloader(new FakeReader({ size, chunkSize: 512, chunkDelayMs: 1 }), MemoryCache.create(size, 4096), {
        concurrency: 2,
        progressIntervalMs: 5,
        onEvent: (e) => void events.push(e),
      }).run();
      const progress = events.filter((e) => e.type === 'progress');
      expect(progress.length).toBeGreaterThan(1);
      // Monotonic, and never the same snapshot twice in a row.
      const done = progress.map((e) => (e.type === 'progress' ? e.stats.receivedBytes : 0));
      expect([...done].sort((a, b) => a - b)).toEqual(done);
      expect(events.at(-1)).toEqual({ type: 'done', outcome: 'complete', status });
      expect(seen).toEqual(['done']);
    } finally {
      diagnosticsChannel.unsubscribe('blockfetch:download:done', onDone);
    }
  });

  it('a tail stream created after a complete run yields the file and ends; computeDigest:false skips hashing', async () => {
    const size = 5000;
    const cache = MemoryCache.create(size, 1000);
    const dl = new CachingDownloader(new FakeReader({ size }), cache, { computeDigest: false });
    const status = await dl.run();
    expect(status.complete).toBe(true);
    expect(status.digest).toBeUndefined();
    const parts: Buffer[] = [];
    for await (const chunk of dl.createTailStream({ chunkBytes: 999 })) parts.push(chunk as Buffer);
    expect(Buffer.concat(parts).equals(payload(0, size - 1))).toBe(true);
    expect(() => new CachingDownloader(new FakeReader({ size }), cache, { computeDigest: false, expectedDigest: { algorithm: 'md5', hex: '0'.repeat(32) } })).toThrow(
      /expectedDigest cannot be checked with computeDigest: false/,
    );
  });
});

describe('servers without ranges', () => {
  it('fetches one sequential stream from 0 even when blocks are cached, marking as bytes land', async () => {
    const size = 10_500;
    const cache = MemoryCache.create(size, 1000);
    // Blocks 2 and 7 cached already.
    for (const b of [2, 7]) await cache.writeAt(payload(b * 1000, b * 1000 + 999), b * 1000);
    let n = 0;
    const reader = new FakeReader({
      size,
      rangesSupported: false,
      chunkSize: 333,
      script: () => (n++ === 0 ? { endAfter: 4500, errorAfterEnd: transient() } : undefined),
    });
    const status = await new CachingDownloader(reader, cache, { retry: fast, concurrency: 8 }).run();
    expect(status.complete).toBe(true);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([
      [0, size - 1],
      [0, size - 1],
    ]);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    // Blocks 0, 1, 3 were marked in the cut first attempt; the rest in the second.
    expect(status.stats).toMatchObject({ doneBlocksAtStart: 2, downloadedBlocks: 9, retries: 1 });
    expect(cache.marks).toBe(2 + 9);
  });
});

describe('rate limiting', () => {
  it('bytes written never run ahead of the bucket (stepped clock, counts only)', async () => {
    let now = 0;
    let written = 0;
    const violations: string[] = [];
    const clock: RateClock = {
      now: () => now,
      sleep: async (ms, signal) => {
        signal?.throwIfAborted();
        now += ms;
        await Promise.resolve();
      },
    };
    const size = 200_000;
    const cache = MemoryCache.create(size, 16_384, {
      writeData: (_offset, length) => {
        written += length;
        const allowed = 8192 + (now * 50_000) / 1000;
        if (written > allowed + 1e-6) violations.push(`${written} > ${allowed} at ${now} ms`);
        return undefined;
      },
    });
    const limiter = new RateLimiter({ bytesPerSecond: 50_000, burstBytes: 8192, clock });
    const status = await new CachingDownloader(new FakeReader({ size, chunkSize: 20_000 }), cache, {
      concurrency: 4,
      maxRequestBytes: 0,
      rateLimiter: limiter,
    }).run();
    expect(status.complete).toBe(true);
    expect(violations).toEqual([]);
    expect(written).toBe(size);
    // And it really was limited: 200 000 bytes at 50 000 B/s need ~3.8 s of (stepped) time.
    expect(now).toBeGreaterThanOrEqual(((size - 8192) / 50_000) * 1000 - 1);
  });
});

describe('abort', () => {
  it('an abort during a 10 s backoff returns at once, with no further request', async () => {
    const cache = MemoryCache.create(10_000, 1000);
    const reader = new FakeReader({ size: 10_000, script: ({ n }) => (n === 0 ? { refuse: transient('slow down', 10_000) } : undefined) });
    const ac = new AbortController();
    const events: DownloadEvent[] = [];
    const dl = new CachingDownloader(reader, cache, {
      concurrency: 1,
      maxRequestBytes: 0,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'retry') setTimeout(() => ac.abort(), 20);
      },
    });
    const started = performance.now();
    const status = await dl.run(ac.signal);
    const took = performance.now() - started;
    expect(events.find((e) => e.type === 'retry')).toMatchObject({ delayMs: 10_000 });
    expect(took).toBeLessThan(1000);
    expect(reader.requests).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(reader.requests).toHaveLength(1);
    expect(status).toMatchObject({ complete: false, resumable: true });
    expect(status.error?.code).toBe('BLOCKFETCH_ABORTED');
  });

  it('an abort mid-transfer ends every request promptly and keeps the finished blocks', async () => {
    const size = 1000 * 1000;
    const cache = MemoryCache.create(size, 10_000);
    const reader = new FakeReader({ size, chunkSize: 1000, chunkDelayMs: 2 });
    const ac = new AbortController();
    const dl = new CachingDownloader(reader, cache, { concurrency: 8, maxRequestBytes: 0 });
    const running = dl.run(ac.signal);
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    ac.abort();
    const status = await running;
    expect(reader.open).toBe(0);
    const lastEnd = Math.max(...reader.requests.map((r) => r.endedAt ?? Number.POSITIVE_INFINITY));
    expect(lastEnd - t0).toBeLessThan(100);
    expect(status.error?.code).toBe('BLOCKFETCH_ABORTED');
    expect(status.resumable).toBe(true);
    // Everything marked reached the (flushed) index.
    const reopened = MemoryCache.reopen(cache.store);
    expect(reopened.cachedBytesAndBlocks().blocks).toBe(cache.cachedBytesAndBlocks().blocks);
    expect(status.stats.doneBlocks).toBe(cache.cachedBytesAndBlocks().blocks);
    const br = { from: -1, to: -1 };
    for (let i = reopened.nextCached(0, br); i !== -1; i = reopened.nextCached(i, br)) {
      expect(firstMisplaced(cache.store.data.subarray(br.from, br.to + 1), br.from)).toBe(-1);
    }
  });
});

describe('the tail: a free connection takes over half of a slow request', () => {
  it('a request on a slow route keeps only the block it is receiving; the rest is fetched by the others, byte-exact', async () => {
    const KiB = 1024;
    const size = 64 * 16 * KiB; // 64 blocks of 16 KiB
    // Request 0 (blocks 0-15) crawls: one 4 KiB chunk every 20 ms; the others are instant.
    const reader = new FakeReader({ size, chunkSize: 4 * KiB, script: ({ n }) => (n === 0 ? { chunkDelayMs: 20 } : undefined) });
    const cache = MemoryCache.create(size, 16 * KiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 256 * KiB }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    const slow = reader.requests[0];
    expect(slow).toMatchObject({ from: 0, to: 256 * KiB - 1 });
    // It was cut short: far fewer than its 256 KiB came from it...
    expect(slow?.delivered).toBeLessThan(128 * KiB);
    // ...and later requests asked for bytes inside its original range.
    expect(reader.requests.slice(1).some((r) => r.from > 0 && r.from < 256 * KiB)).toBe(true);
    // Every block was marked once.
    expect(cache.marks).toBe(64);
  });

  it('a slow request gives its blocks ahead by speed: all of them when the others ran far faster', async () => {
    // Request 0 (blocks 0-15 of 16 KiB) crawls at 4 KiB per 20 ms; the others
    // are instant. Split in halves, the first new request would start at
    // block 8; by speed it takes every block after the one being received.
    const KiB = 1024;
    const size = 64 * 16 * KiB;
    const reader = new FakeReader({ size, chunkSize: 4 * KiB, script: ({ n }) => (n === 0 ? { chunkDelayMs: 20 } : undefined) });
    const cache = MemoryCache.create(size, 16 * KiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 256 * KiB }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    const takeover = reader.requests.find((r) => r.from > 0 && r.from < 256 * KiB);
    expect(takeover?.to).toBe(256 * KiB - 1);
    // The slow request was at most a few blocks in when the split came.
    expect(takeover?.from).toBeLessThanOrEqual(4 * 16 * KiB);
    expect(reader.requests[0]?.delivered).toBeLessThanOrEqual(4 * 16 * KiB);
  });

  it('a slow route gives up its blocks ahead while requests are still being planned, a plan-sized piece at a time', async () => {
    const MiB = 1 << 20;
    const size = 48 * MiB;
    // Request 0 (the first 8 MiB) crawls at 64 KiB per 20 ms (3.2 MB/s); the
    // others deliver 64 KiB per ms. The plan still has 20 MiB to hand out
    // when the first fast requests end.
    const reader = new FakeReader({ size, chunkSize: 64 * 1024, chunkDelayMs: 1, script: ({ n }) => (n === 0 ? { chunkDelayMs: 20 } : undefined) });
    const cache = MemoryCache.create(size, MiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 8 * MiB }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    const requests = reader.requests;
    expect(requests[0]).toMatchObject({ from: 0, to: 8 * MiB - 1 });
    const firstTakeover = requests.findIndex((r) => r.from > 0 && r.from < 8 * MiB);
    const lastPlanned = requests.findIndex((r) => r.to === size - 1);
    // Its blocks were taken over before the plan reached the file's end...
    expect(firstTakeover).toBeGreaterThan(0);
    expect(firstTakeover).toBeLessThan(lastPlanned);
    // ...from the top, in a piece no larger than the request the plan made next.
    const piece = requests[firstTakeover] as FakeRequest;
    const nextPlanned = requests.slice(firstTakeover + 1).find((r) => r.from >= 8 * MiB) as FakeRequest;
    expect(piece.to).toBe(8 * MiB - 1);
    expect(piece.to - piece.from).toBeLessThanOrEqual(nextPlanned.to - nextPlanned.from);
    expect(requests[0]?.delivered).toBeLessThan(4 * MiB);
  });

  it('requests that run alike are not split while requests are still being planned, however large', async () => {
    const MiB = 1 << 20;
    const size = 48 * MiB;
    const reader = new FakeReader({ size, chunkSize: 64 * 1024, chunkDelayMs: 1 });
    const cache = MemoryCache.create(size, MiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 16 * MiB }).run();
    expect(status.complete, status.error?.message).toBe(true);
    const lastPlanned = reader.requests.findIndex((r) => r.to === size - 1);
    // Up to the plan's last request, every request starts where the one before it ended.
    reader.requests.slice(1, lastPlanned + 1).forEach((r, i) => expect(r.from).toBe((reader.requests[i] as FakeRequest).to + 1));
  });

  it('a request that will end soon is not split: a free connection waits instead of cutting it', async () => {
    // Two requests of four 64 KiB blocks; the second takes about 8 ms (eight
    // 32 KiB chunks, 1 ms apart) while the first is instant. A split would
    // cut the second with bytes already in flight past the cut, for nothing.
    const KiB = 1024;
    const size = 8 * 64 * KiB;
    const reader = new FakeReader({ size, chunkSize: 32 * KiB, script: ({ n }) => (n === 1 ? { chunkDelayMs: 1 } : undefined) });
    const cache = MemoryCache.create(size, 64 * KiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 2, maxRequestBytes: 256 * KiB }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([
      [0, 256 * KiB - 1],
      [256 * KiB, size - 1],
    ]);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
  });

  it('a process kept busy splits no request in the tail: the bytes ahead already wait in its own socket queues', async () => {
    // As the first test above (request 0 crawls, the others are instant),
    // but something else keeps the event loop busy all the while, as 8
    // connections from a server on loopback do: a split could not be faster.
    const KiB = 1024;
    const size = 16 * 16 * KiB; // 16 blocks of 16 KiB, 4 requests of 64 KiB
    const reader = new FakeReader({ size, chunkSize: 4 * KiB, script: ({ n }) => (n === 0 ? { chunkDelayMs: 10 } : undefined) });
    const cache = MemoryCache.create(size, 16 * KiB);
    let spinning = true;
    const spin = (): void => {
      const end = performance.now() + 2;
      while (performance.now() < end) {
        // busy: the loop never waits in its poll while this runs
      }
      if (spinning) setImmediate(spin);
    };
    spin();
    try {
      const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 64 * KiB }).run();
      expect(status.complete, status.error?.message).toBe(true);
    } finally {
      spinning = false;
    }
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([0, 1, 2, 3].map((i) => [i * 64 * KiB, (i + 1) * 64 * KiB - 1]));
    expect(reader.requests[0]?.delivered).toBe(64 * KiB);
  });

  it('requests are never split below two blocks ahead, and one block per request is never split', async () => {
    const size = 8 * 4096;
    const reader = new FakeReader({ size, chunkSize: 1024, script: ({ n }) => (n === 0 ? { chunkDelayMs: 5 } : undefined) });
    const cache = MemoryCache.create(size, 4096);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 0 }).run();
    expect(status.complete).toBe(true);
    expect(reader.requests).toHaveLength(8); // one per block, none split
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
  });
});

describe('request sizes follow the idle head waits', () => {
  const MiB = 1 << 20;

  it('a server that keeps the process idle before each head gets requests far larger than 4 MiB after the first round', async () => {
    const size = 96 * MiB;
    // 30 ms before every head, with nothing else to do meanwhile; bodies
    // come at once, cut from bytes made beforehand (making them while the
    // other request waits would keep the process busy through its wait,
    // and on a loaded machine through all of it).
    const data = payload(0, size - 1);
    const reader = new FakeReader({ size, chunkSize: MiB, delayMs: 30, content: (from, to) => data.subarray(from, to + 1) });
    const cache = MemoryCache.create(size, MiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 2 }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(Buffer.from(cache.store.data).equals(data)).toBe(true);
    const lengths = reader.requests.map((r) => (r.to - r.from + 1) / MiB);
    // Nothing was measured for the first requests: the 4 MiB floor.
    expect(lengths.slice(0, 2)).toEqual([4, 4]);
    // Then 30 ms of idle wait at a high rate asks for the most a share allows.
    expect(Math.max(...lengths)).toBeGreaterThanOrEqual(32);
    expect(reader.requests.length).toBeLessThan(12);
  });

  it('a first look that idled 10 ms or more for its answer sizes the first round beyond the floor', async () => {
    const size = 96 * MiB;
    const data = payload(0, size - 1);
    const lengthsWith = async (firstAnswerIdleMs: number): Promise<number[]> => {
      const reader = new FakeReader({ size, chunkSize: MiB, delayMs: 30, firstAnswerIdleMs, content: (from, to) => data.subarray(from, to + 1) });
      const cache = MemoryCache.create(size, MiB);
      const status = await new CachingDownloader(reader, cache, { concurrency: 2 }).run();
      expect(status.complete, status.error?.message).toBe(true);
      expect(Buffer.from(cache.store.data).equals(data)).toBe(true);
      return reader.requests.map((r) => (r.to - r.from + 1) / MiB);
    };
    // A remote across a network: the first two requests take their shares
    // of what is left (half of 96 MiB, then half of the other 48).
    expect((await lengthsWith(30)).slice(0, 2)).toEqual([48, 24]);
    // Loopback's first look idles well under 1 ms: the first round stays at the floor.
    expect((await lengthsWith(0.4)).slice(0, 2)).toEqual([4, 4]);
  });

  it('a server whose heads come while the process is busy gets 4 MiB requests (what a kill loses stays small)', async () => {
    const size = 64 * MiB;
    const reader = new FakeReader({ size, chunkSize: MiB });
    const cache = MemoryCache.create(size, MiB);
    const status = await new CachingDownloader(reader, cache, { concurrency: 2 }).run();
    expect(status.complete, status.error?.message).toBe(true);
    expect(reader.requests.every((r) => r.to - r.from + 1 <= 4 * MiB)).toBe(true);
    expect(reader.requests.length).toBeGreaterThanOrEqual(16);
  });
});
