/**
 * IdleShare: the share of recent wall time the event loop spent idle, which
 * the downloader's tail reads before it splits a request.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { IdleShare } from '../src/download/idle-time.js';

/** Keeps the thread busy (the event loop runs nothing meanwhile) for `ms`. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

describe('IdleShare', () => {
  it('has no share before a reading older than now', () => {
    const now = performance.now();
    expect(new IdleShare(100).share(now)).toBeUndefined();
  });

  it('is near 0 while the thread is busy and near 1 while it waits', async () => {
    const busy = new IdleShare(100);
    busy.sample(performance.now());
    spin(40);
    expect(busy.share(performance.now())).toBeLessThan(0.2);

    const waiting = new IdleShare(100);
    waiting.sample(performance.now());
    await sleep(40);
    expect(waiting.share(performance.now())).toBeGreaterThan(0.5);
  });

  it('looks back only to the newest reading a window old: an idle start is forgotten', async () => {
    const recent = new IdleShare(100);
    recent.sample(performance.now());
    await sleep(100); // idle...
    recent.sample(performance.now());
    spin(150); // ...then busy for longer than the window
    // Over the whole time the loop was idle 40 % or more; over the window, hardly at all.
    expect(recent.share(performance.now())).toBeLessThan(0.2);
  });
});
