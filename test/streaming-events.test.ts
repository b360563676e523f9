/**
 * StreamingDownloader events: `start`, `progress`, `retry` and `done`, with
 * the CachingDownloader's shapes, on `onEvent` and on diagnostics_channel;
 * `done` is delivered on failure and abort too, before `run()` settles.
 * Also its options: resolved through validate.ts, concurrency from the
 * shared default.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONCURRENCY } from '../src/defaults.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import type { StreamingEvent } from '../src/download/streaming-options.js';
import { resolveStreamingOptions } from '../src/download/streaming-options.js';
import { AbortedError, RetriesExhaustedError } from '../src/errors.js';
import { FakeReader, transient } from './helpers/fake-reader.js';

const sink = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() });

describe('StreamingDownloader events', () => {
  it('delivers start, progress, retry and done, in that order where it matters', async () => {
    const events: StreamingEvent[] = [];
    // Block 2's first request is refused; every body waits a little so the
    // 1 ms progress timer has a chance to fire while the stream runs.
    const reader = new FakeReader({
      size: 64 * 1024,
      blockSize: 8 * 1024,
      delayMs: 5,
      script: ({ from, n }) => (from === 16 * 1024 && n < 4 ? { refuse: transient('refused once') } : undefined),
    });
    let refusedOnce = false;
    const dl = new StreamingDownloader(reader, {
      concurrency: 2,
      retry: { baseDelayMs: 1, jitter: 0 },
      progressIntervalMs: 1,
      onEvent: (e) => {
        if (e.type === 'retry') refusedOnce = true;
        events.push(e);
      },
    });
    const status = await dl.pipeTo(sink());
    expect(status.complete).toBe(true);
    expect(refusedOnce).toBe(true);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('start');
    expect(types.at(-1)).toBe('done');
    expect(types.filter((t) => t === 'done')).toHaveLength(1);
    expect(types).toContain('progress');

    const start = events[0] as Extract<StreamingEvent, { type: 'start' }>;
    expect(start.info.contentLength).toBe(64 * 1024);
    expect(start.stats).toMatchObject({ mode: 'windowed', size: 64 * 1024, blockSize: 8 * 1024, concurrency: 2 });

    const retry = events.find((e) => e.type === 'retry') as Extract<StreamingEvent, { type: 'retry' }>;
    expect(retry).toMatchObject({
      range: { from: 16 * 1024, to: 24 * 1024 - 1 },
      attempt: 1,
      delayMs: 1,
      error: { code: 'BLOCKFETCH_NETWORK', message: 'refused once' },
    });
    expect(retry.stats.retries).toBe(1);

    const done = events.at(-1) as Extract<StreamingEvent, { type: 'done' }>;
    expect(done.error).toBeUndefined();
    expect(done.status).toEqual(status);
  });

  it('delivers done with the error when the stream fails, before run() rejects', async () => {
    const order: string[] = [];
    const reader = new FakeReader({ size: 32 * 1024, blockSize: 8 * 1024, script: () => ({ refuse: transient('always down') }) });
    const dl = new StreamingDownloader(reader, {
      concurrency: 2,
      retry: { attemptsPerBlock: 2, baseDelayMs: 1 },
      onEvent: (e) => {
        if (e.type === 'done') order.push(`done ${e.error?.constructor.name ?? 'none'} complete=${e.status.complete}`);
      },
    });
    const running = dl.run().catch((err: unknown) => {
      order.push(`run rejected ${(err as Error).constructor.name}`);
    });
    await expect(dl.pipeTo(sink())).rejects.toBeInstanceOf(RetriesExhaustedError);
    await running;
    expect(order).toEqual(['done RetriesExhaustedError complete=false', 'run rejected RetriesExhaustedError']);
  });

  it('delivers done on abort, and publishes on blockfetch:stream:<type>', async () => {
    const published: string[] = [];
    const onDone = (message: unknown): void => {
      published.push((message as StreamingEvent).type);
    };
    diagnosticsChannel.subscribe('blockfetch:stream:done', onDone);
    try {
      const controller = new AbortController();
      const reader = new FakeReader({ size: 32 * 1024, blockSize: 8 * 1024, delayMs: 60_000 });
      let done: Extract<StreamingEvent, { type: 'done' }> | undefined;
      const dl = new StreamingDownloader(reader, {
        concurrency: 2,
        signal: controller.signal,
        onEvent: (e) => {
          // Abort once fetching began: a signal, not a timer.
          if (e.type === 'start') controller.abort();
          if (e.type === 'done') done = e;
        },
      });
      await expect(dl.pipeTo(sink())).rejects.toBeInstanceOf(AbortedError);
      await dl.run().catch(() => undefined);
      expect(done?.error).toBeInstanceOf(AbortedError);
      expect(published).toEqual(['done']);
    } finally {
      diagnosticsChannel.unsubscribe('blockfetch:stream:done', onDone);
    }
  });

  it('a listener that throws does not hurt the stream', async () => {
    const reader = new FakeReader({ size: 16 * 1024, blockSize: 4 * 1024 });
    const dl = new StreamingDownloader(reader, {
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    await expect(dl.pipeTo(sink())).resolves.toMatchObject({ complete: true });
  });
});

describe('StreamingDownloader options', () => {
  it('default concurrency is the shared DEFAULT_CONCURRENCY, and window twice that', () => {
    const resolved = resolveStreamingOptions({});
    expect(resolved.concurrency).toBe(DEFAULT_CONCURRENCY);
    expect(resolved.window).toBe(2 * DEFAULT_CONCURRENCY);
  });

  it('names the owner, the option, the value and what is allowed', () => {
    expect(() => resolveStreamingOptions({ blockSize: 0 })).toThrow(
      'StreamingDownloader option blockSize must be a whole number of bytes >= 1, got 0 (number)',
    );
    expect(() => resolveStreamingOptions({ computeDigest: 'yes' as unknown as boolean })).toThrow(
      'StreamingDownloader option computeDigest must be true or false, got "yes" (string)',
    );
    expect(() => resolveStreamingOptions({ progressIntervalMs: 0 })).toThrow(/StreamingDownloader option progressIntervalMs must be a whole number of ms from 1/);
    expect(() => resolveStreamingOptions({ onEvent: 3 as unknown as () => void })).toThrow(
      'StreamingDownloader option onEvent must be a function, got 3 (number)',
    );
    expect(() => resolveStreamingOptions({ retry: { jitter: 2 } })).toThrow('retry option jitter must be a number from 0 to 1, got 2 (number)');
  });
});
