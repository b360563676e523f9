import { describe, expect, it } from 'vitest';
import { FlushScheduler } from '../src/cache/flush-scheduler.js';

/** A flush function whose calls the test completes by hand. */
function manualFlush(indexWorkMs = 0): { fn: () => Promise<number>; calls: number; finish: (err?: Error) => void } {
  const pending: Array<{ resolve: (ms: number) => void; reject: (err: Error) => void }> = [];
  const state = {
    calls: 0,
    fn: () =>
      new Promise<number>((resolve, reject) => {
        state.calls++;
        pending.push({ resolve, reject });
      }),
    finish: (err?: Error) => {
      const p = pending.shift();
      if (p === undefined) throw new Error('no flush is running');
      if (err) p.reject(err);
      else p.resolve(indexWorkMs);
    },
  };
  return state;
}

const turns = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('FlushScheduler', () => {
  it('runs one flush at a time; changes made meanwhile are covered by exactly one more', async () => {
    const flush = manualFlush();
    const s = new FlushScheduler({ flushIntervalMs: 0, flushTimeBudget: 1 }, flush.fn);
    s.changed(10);
    await turns();
    expect(flush.calls).toBe(1);
    for (let i = 0; i < 20; i++) s.changed(10); // while the first one runs
    await turns();
    expect(flush.calls).toBe(1);
    flush.finish();
    await turns();
    expect(flush.calls).toBe(2);
    flush.finish();
    await turns();
    expect(flush.calls).toBe(2);
    expect(s.dirty).toBe(false);
  });

  it('flushNow joins the queued flush; with nothing changed it calls nothing', async () => {
    const flush = manualFlush();
    const s = new FlushScheduler({ flushIntervalMs: 60_000 }, flush.fn);
    await s.flushNow();
    expect(flush.calls).toBe(0);
    s.changed(1);
    const all = Promise.all([s.flushNow(), s.flushNow(), s.flushNow()]);
    await turns();
    expect(flush.calls).toBe(1);
    flush.finish();
    await all;
    expect(flush.calls).toBe(1);
  });

  it('waits for flushBytes or flushIntervalMs, not for each change', async () => {
    const flush = manualFlush();
    const s = new FlushScheduler({ flushIntervalMs: 60_000, flushBytes: 100, flushTimeBudget: 1 }, flush.fn);
    s.changed(60);
    await turns();
    expect(flush.calls).toBe(0);
    s.changed(40); // 100 bytes: at once
    await turns();
    expect(flush.calls).toBe(1);
    flush.finish();
    s.stop();
  });

  it('the time budget spaces background flushes; flushNow is not held back', async () => {
    const flush = manualFlush(50); // each flush "took" 50 ms of index work
    const s = new FlushScheduler({ flushIntervalMs: 0, flushTimeBudget: 0.01 }, flush.fn);
    s.changed(1);
    await turns();
    flush.finish();
    await turns();
    s.changed(1); // budget: the next background flush waits 50 * 99 ms
    await new Promise((r) => setTimeout(r, 100));
    expect(flush.calls).toBe(1);
    const now = s.flushNow();
    await turns();
    expect(flush.calls).toBe(2);
    flush.finish();
    await now;
    s.stop();
  });

  it('a background failure is reported once and retried after a pause; stop() ends background flushing', async () => {
    const flush = manualFlush();
    const s = new FlushScheduler({ flushIntervalMs: 0, flushTimeBudget: 1 }, flush.fn);
    s.changed(1);
    await turns();
    flush.finish(new Error('EIO'));
    await turns();
    const err = s.takeBackgroundError();
    expect(err?.code).toBe('BLOCKFETCH_DISK_WRITE');
    expect(err?.message).toMatch(/EIO/);
    expect(s.takeBackgroundError()).toBeUndefined();
    s.changed(1);
    await turns();
    expect(flush.calls).toBe(1); // not retried at once...
    await new Promise((r) => setTimeout(r, 1200));
    expect(flush.calls).toBe(2); // ...but after RETRY_FAILED_FLUSH_MS
    flush.finish();
    await turns();
    expect(s.dirty).toBe(false);
    s.stop();
    s.changed(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(flush.calls).toBe(2); // stopped: no background flush
    expect(s.dirty).toBe(true);
  });

  it('rejects a bad policy naming the option', () => {
    expect(() => new FlushScheduler({ flushBytes: -1 }, async () => 0)).toThrow(/flushBytes .* got -1 \(number\)/);
    expect(() => new FlushScheduler({ flushTimeBudget: 2 }, async () => 0)).toThrow(/flushTimeBudget .* got 2 \(number\)/);
  });
});
