import { describe, expect, it } from 'vitest';
import { backoffDelay, RetryBudget, sleep, resolveRetryOptions } from '../src/download/backoff.js';
import { InvalidArgumentError } from '../src/errors.js';

describe('backoffDelay (pure, no timers)', () => {
  it('doubles from the base and stops at the cap', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, o))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('replaces the jitter fraction with a random share', () => {
    const o = { baseDelayMs: 1000, maxDelayMs: 10_000, jitter: 0.5 };
    expect(backoffDelay(1, o, undefined, () => 0)).toBe(500);
    expect(backoffDelay(1, o, undefined, () => 0.999999)).toBe(1000);
    expect(backoffDelay(2, o, undefined, () => 0.5)).toBe(1500);
  });
  it('honours a server-given delay, capped, without jitter', () => {
    expect(backoffDelay(1, { maxRetryAfterMs: 5000 }, 3000, () => 0)).toBe(3000);
    expect(backoffDelay(9, { maxRetryAfterMs: 5000 }, 60_000, () => 0)).toBe(5000);
    expect(backoffDelay(1, { maxRetryAfterMs: 5000, jitter: 0, baseDelayMs: 7 }, Number.NaN)).toBe(7);
  });
  it('does not overflow for huge attempt numbers', () => {
    expect(backoffDelay(10_000, { maxDelayMs: 30_000, jitter: 0 })).toBe(30_000);
  });
});

describe('RetryBudget', () => {
  it('limits attempts per block and resets them on progress', () => {
    const b = new RetryBudget({ attemptsPerBlock: 3, jitter: 0, baseDelayMs: 10 }, () => 0);
    expect(b.onFailure(7, true)).toEqual({ retry: true, delayMs: 10, attempt: 1 });
    expect(b.onFailure(7, true)).toEqual({ retry: true, delayMs: 20, attempt: 2 });
    expect(b.onFailure(7, true)).toMatchObject({ retry: false, reason: 'block-attempts' });
    b.onProgress(7);
    expect(b.onFailure(7, true)).toMatchObject({ retry: true, attempt: 1 });
  });
  it('never retries what is not retryable', () => {
    const b = new RetryBudget();
    expect(b.onFailure(0, false)).toMatchObject({ retry: false, reason: 'not-retryable' });
    expect(b.retries).toBe(0);
  });
  it('has a total limit across blocks', () => {
    const b = new RetryBudget({ totalRetries: 2, attemptsPerBlock: 10 });
    expect(b.onFailure(1, true).retry).toBe(true);
    expect(b.onFailure(2, true).retry).toBe(true);
    expect(b.onFailure(3, true)).toMatchObject({ retry: false, reason: 'total-retries' });
  });
  it('rejects bad options with a message naming them', () => {
    expect(() => resolveRetryOptions({ attemptsPerBlock: 0 })).toThrow(InvalidArgumentError);
    expect(() => resolveRetryOptions({ baseDelayMs: -1 })).toThrow(/baseDelayMs/);
    expect(() => resolveRetryOptions({ jitter: 2 })).toThrow(/jitter/);
  });
});

describe('sleep', () => {
  it('ends at once when the signal aborts, with its reason', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = sleep(10_000, ac.signal);
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await expect(p).rejects.toThrow('stop');
    expect(Date.now() - started).toBeLessThan(1000);
  });
  it('rejects at once for an already aborted signal', async () => {
    await expect(sleep(10_000, AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
  it('resolves after the delay', async () => {
    await expect(sleep(5)).resolves.toBeUndefined();
  });
});
