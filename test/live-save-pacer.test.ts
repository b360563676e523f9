import { describe, expect, it } from 'vitest';
import { LIVE_SAVE_BYTES, LIVE_SAVE_INTERVAL_MS, LiveSavePacer } from '../src/cache/live-save-pacer.js';

const MiB = 1024 * 1024;

describe('LiveSavePacer: when the live index is next due', () => {
  it('the first save is due at once', () => {
    expect(new LiveSavePacer(0.05).dueAt()).toBe(0);
  });

  it('fewer than 4 MiB of marks wait for the interval; 4 MiB only for the time budget', () => {
    const pacer = new LiveSavePacer(0.05);
    pacer.saved(0.2, 1000); // budget gap 0.2 * 19 = 3.8 ms
    pacer.marked(LIVE_SAVE_BYTES - MiB);
    expect(pacer.dueAt()).toBe(1000 + LIVE_SAVE_INTERVAL_MS);
    pacer.marked(MiB);
    expect(pacer.dueAt()).toBeCloseTo(1003.8, 6);
    // A save starts the count again.
    pacer.saved(0.2, 1010);
    pacer.marked(MiB);
    expect(pacer.dueAt()).toBe(1010 + LIVE_SAVE_INTERVAL_MS);
  });

  it('one slow encoding among fast ones does not hold the next save back', () => {
    // A collection during one encoding (2 ms against 0.2): by the last one
    // alone the next save would wait 38 ms.
    const pacer = new LiveSavePacer(0.05);
    for (const [i, workMs] of [0.2, 0.2, 0.2, 2].entries()) pacer.saved(workMs, 1000 + i * 5);
    pacer.marked(LIVE_SAVE_BYTES);
    expect(pacer.dueAt()).toBeCloseTo(1015 + 3.8, 6);
  });

  it('an index slow to encode every time still keeps saves within the budget, bytes or not', () => {
    const pacer = new LiveSavePacer(0.05);
    for (let i = 0; i < 4; i++) pacer.saved(5, 1000 + i * 100);
    pacer.marked(LIVE_SAVE_BYTES);
    expect(pacer.dueAt()).toBeCloseTo(1300 + 95, 6);
    pacer.saved(5, 1400);
    pacer.marked(MiB);
    expect(pacer.dueAt()).toBeCloseTo(1400 + 95, 6); // the budget, longer than the interval
  });
});
