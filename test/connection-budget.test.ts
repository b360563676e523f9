/**
 * The ConnectionBudget a set shares: never more slots out than its limit,
 * a free slot goes to the holder with the fewest (so a started download
 * always gets one), and a wait can be aborted.
 */
import { describe, expect, it } from 'vitest';

import { ConnectionBudget } from '../src/download/connection-budget.js';
import { mostSevereExitCode } from '../src/cli/exit-codes.js';

describe('ConnectionBudget', () => {
  it('hands out at most `limit` slots; a released slot goes to a waiter', async () => {
    const budget = new ConnectionBudget(2);
    const a = {};
    const r1 = await budget.acquire(a);
    const r2 = await budget.acquire(a);
    expect(budget.inUse).toBe(2);
    let third = false;
    const p3 = budget.acquire(a).then((release) => {
      third = true;
      return release;
    });
    await Promise.resolve();
    expect(third).toBe(false);
    expect(budget.waiting).toBe(1);
    r1();
    r1(); // a second release of the same slot does nothing
    const r3 = await p3;
    expect(third).toBe(true);
    expect(budget.inUse).toBe(2);
    r2();
    r3();
    expect(budget.inUse).toBe(0);
  });

  it('gives a free slot to the holder that has none before one that has some', async () => {
    const budget = new ConnectionBudget(2);
    const big = {};
    const small = {};
    const bigSlots = [await budget.acquire(big), await budget.acquire(big)];
    const order: string[] = [];
    // The big download asks first, the small one after: the small one still gets the next slot.
    const bigWait = budget.acquire(big).then((r) => (order.push('big'), r));
    const smallWait = budget.acquire(small).then((r) => (order.push('small'), r));
    bigSlots[0]?.();
    const smallSlot = await smallWait;
    expect(order).toEqual(['small']);
    // When the small one finishes, its slot goes straight to the waiting big one.
    smallSlot();
    const bigSlot = await bigWait;
    expect(order).toEqual(['small', 'big']);
    bigSlot();
    bigSlots[1]?.();
    expect(budget.inUse).toBe(0);
  });

  it('a joined holder whose next request already waits gets its own released slot: no deadlock when every slot is a last one', async () => {
    // Two files at a limit of 2: each holds its last slot, and each asks for
    // its next one BEFORE releasing that slot (a request is planned before it
    // waits). Parking the released slots would leave both waiting forever.
    const budget = new ConnectionBudget(2);
    const a = {};
    const b = {};
    budget.join(a);
    budget.join(b);
    const ra = await budget.acquire(a);
    const rb = await budget.acquire(b);
    const nextA = budget.acquire(a);
    const nextB = budget.acquire(b);
    expect(budget.waiting).toBe(2);
    ra();
    rb();
    const [ra2, rb2] = await Promise.all([nextA, nextB]);
    expect(budget.inUse).toBe(2);
    expect(budget.waiting).toBe(0);
    ra2();
    rb2();
    // Both parked their last slot; leaving gives them back.
    budget.leave(a);
    budget.leave(b);
    expect(budget.inUse).toBe(0);
  });

  it('run() releases the slot however the work ends', async () => {
    const budget = new ConnectionBudget(1);
    await expect(budget.run({}, undefined, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(budget.inUse).toBe(0);
    expect(await budget.run({}, undefined, () => Promise.resolve(42))).toBe(42);
    expect(budget.inUse).toBe(0);
  });

  it('an aborted wait rejects, holds nothing, and leaves the queue', async () => {
    const budget = new ConnectionBudget(1);
    const held = await budget.acquire({});
    const controller = new AbortController();
    const waiting = budget.acquire({}, controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toMatchObject({ code: 'BLOCKFETCH_ABORTED' });
    expect(budget.waiting).toBe(0);
    held();
    expect(budget.inUse).toBe(0);
    await expect(budget.acquire({}, controller.signal)).rejects.toMatchObject({ code: 'BLOCKFETCH_ABORTED' });
  });

  it('a joined holder keeps its last slot between requests until it leaves', async () => {
    const budget = new ConnectionBudget(1);
    const file = {};
    budget.join(file);
    const first = await budget.acquire(file);
    first();
    // Parked: still counted, so another holder waits ...
    expect(budget.inUse).toBe(1);
    let otherGot = false;
    const other = budget.acquire({}).then((r) => ((otherGot = true), r));
    // ... while the file's next request takes it back at once.
    const again = await budget.acquire(file);
    again();
    expect(otherGot).toBe(false);
    budget.leave(file);
    (await other)();
    expect(otherGot).toBe(true);
    expect(budget.inUse).toBe(0);
  });

  it('refuses a limit out of range', () => {
    expect(() => new ConnectionBudget(0)).toThrow(/limit must be a whole number from 1 to 1024, got 0/);
  });
});

describe('mostSevereExitCode', () => {
  it('ranks by the documented order; 3 (resumable) is the least severe', () => {
    expect(mostSevereExitCode([])).toBe(0);
    expect(mostSevereExitCode([0, 0])).toBe(0);
    expect(mostSevereExitCode([3, 1, 3])).toBe(1);
    expect(mostSevereExitCode([3, 3])).toBe(3);
    expect(mostSevereExitCode([1, 5, 2])).toBe(5);
    expect(mostSevereExitCode([5, 6])).toBe(6);
    expect(mostSevereExitCode([8, 6])).toBe(6);
    expect(mostSevereExitCode([4, 7])).toBe(4);
    expect(mostSevereExitCode([6, 130])).toBe(130);
  });
});
