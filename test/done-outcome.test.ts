/**
 * The `done` event of both downloaders says how the run ended: `complete`,
 * `failed` or `interrupted` (issue 14: it used to fire on an aborted run
 * too, with nothing but `status` to tell it from a success).
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';

import { CachingDownloader } from '../src/download/caching-downloader.js';
import { outcomeOf, type DownloadEvent } from '../src/download/caching-options.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import type { StreamingEvent } from '../src/download/streaming-options.js';
import { AbortedError, BlockfetchError, RetriesExhaustedError } from '../src/errors.js';
import { FakeReader, transient } from './helpers/fake-reader.js';
import { MemoryCache } from './helpers/memory-cache.js';

const fast = { baseDelayMs: 1, maxDelayMs: 2, jitter: 0 } as const;
const sink = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() });
const doneOf = <E extends { type: string }>(events: E[]): Extract<E, { type: 'done' }> => {
  const done = events.filter((e): e is Extract<E, { type: 'done' }> => e.type === 'done');
  expect(done).toHaveLength(1);
  return done[0] as Extract<E, { type: 'done' }>;
};

describe('outcomeOf', () => {
  it('maps a run to complete, interrupted (an abort) or failed (anything else)', () => {
    expect(outcomeOf(true, undefined)).toBe('complete');
    expect(outcomeOf(false, new AbortedError())).toBe('interrupted');
    expect(outcomeOf(false, new RetriesExhaustedError('block 3 failed', 6))).toBe('failed');
    expect(outcomeOf(false, new BlockfetchError('BLOCKFETCH_NETWORK', 'reset'))).toBe('failed');
    expect(outcomeOf(false, undefined)).toBe('failed');
  });
});

describe('CachingDownloader done outcome', () => {
  it('is complete when every block is there', async () => {
    const events: DownloadEvent[] = [];
    const status = await new CachingDownloader(new FakeReader({ size: 10_000 }), MemoryCache.create(10_000, 1000), {
      onEvent: (e) => void events.push(e),
    }).run();
    expect(doneOf(events)).toEqual({ type: 'done', outcome: 'complete', status });
  });

  it('is failed when the retries run out', async () => {
    const events: DownloadEvent[] = [];
    const reader = new FakeReader({ size: 10_000, script: () => ({ refuse: transient('always down') }) });
    const status = await new CachingDownloader(reader, MemoryCache.create(10_000, 1000), {
      retry: { ...fast, attemptsPerBlock: 2 },
      onEvent: (e) => void events.push(e),
    }).run();
    expect(status.complete).toBe(false);
    expect(doneOf(events)).toMatchObject({ outcome: 'failed', status: { complete: false } });
  });

  it('is interrupted when the caller aborts, not done as if it had finished', async () => {
    const events: DownloadEvent[] = [];
    const controller = new AbortController();
    const reader = new FakeReader({ size: 100_000, delayMs: 5 });
    const status = await new CachingDownloader(reader, MemoryCache.create(100_000, 1000), {
      concurrency: 1,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'start') controller.abort();
      },
    }).run(controller.signal);
    expect(status.error?.code).toBe('BLOCKFETCH_ABORTED');
    expect(doneOf(events)).toMatchObject({ outcome: 'interrupted', status: { complete: false } });
  });
});

describe('StreamingDownloader done outcome', () => {
  it('is complete at the end of the stream', async () => {
    const events: StreamingEvent[] = [];
    const status = await new StreamingDownloader(new FakeReader({ size: 32 * 1024, blockSize: 8 * 1024 }), {
      onEvent: (e) => void events.push(e),
    }).pipeTo(sink());
    expect(doneOf(events)).toEqual({ type: 'done', outcome: 'complete', status });
  });

  it('is failed when a block fails for good', async () => {
    const events: StreamingEvent[] = [];
    const reader = new FakeReader({ size: 32 * 1024, blockSize: 8 * 1024, script: () => ({ refuse: transient('always down') }) });
    const dl = new StreamingDownloader(reader, { retry: { ...fast, attemptsPerBlock: 2 }, onEvent: (e) => void events.push(e) });
    await expect(dl.pipeTo(sink())).rejects.toBeInstanceOf(RetriesExhaustedError);
    expect(doneOf(events)).toMatchObject({ outcome: 'failed', error: expect.any(RetriesExhaustedError) as unknown });
  });

  it('is interrupted when pipeTo is aborted', async () => {
    const events: StreamingEvent[] = [];
    const controller = new AbortController();
    const reader = new FakeReader({ size: 64 * 1024, blockSize: 8 * 1024, delayMs: 5 });
    const dl = new StreamingDownloader(reader, {
      concurrency: 1,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'start') controller.abort();
      },
    });
    await expect(dl.pipeTo(sink(), { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(doneOf(events)).toMatchObject({ outcome: 'interrupted', error: expect.any(AbortedError) as unknown });
  });
});
