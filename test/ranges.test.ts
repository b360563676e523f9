import { describe, expect, it } from 'vitest';
import { BlockfetchError, InvalidArgumentError } from '../src/errors.js';
import type { ByteRange } from '../src/ranges/byte-range.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { ByteRangesTracker } from '../src/ranges/byte-ranges-tracker.js';

/** Every (index, range) the Go-style nextClear/nextSet loop visits. */
function walk(next: (start: number, out: ByteRange) => number, start = 0): Array<[number, ByteRange]> {
  const out: Array<[number, ByteRange]> = [];
  const br = { from: -1, to: -1 };
  for (let i = next(start, br); i !== -1; i = next(i, br)) out.push([i, { ...br }]);
  return out;
}

function expectInvalid(fn: () => unknown, mention: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  expect((caught as BlockfetchError).code).toBe('BLOCKFETCH_INVALID_ARGUMENT');
  expect((caught as Error).message).toMatch(mention);
}

describe.each([
  ['ByteRanges', (cl: number, bs: number) => new ByteRanges(cl, bs)],
  ['ByteRangesTracker', (cl: number, bs: number) => new ByteRangesTracker(cl, bs)],
] as const)('%s: shared block API', (_name, make) => {
  it('rejects bad sizes with a typed error naming the value', () => {
    expectInvalid(() => make(100, 0), /blockSize.*got 0 \(number\)/);
    expectInvalid(() => make(100, -4), /blockSize.*got -4/);
    expectInvalid(() => make(100, 1.5), /blockSize.*got 1\.5/);
    expectInvalid(() => make(100, Number.MAX_SAFE_INTEGER + 1), /blockSize.*got 9007199254740992/);
    expectInvalid(() => make(100, Number.NaN), /blockSize.*got NaN/);
    expectInvalid(() => make(-1, 10), /contentLength.*got -1/);
    expectInvalid(() => make(Number.NaN, 10), /contentLength.*got NaN/);
    expectInvalid(() => make(Number.POSITIVE_INFINITY, 10), /contentLength.*got Infinity/);
    expectInvalid(() => make('10' as unknown as number, 10), /contentLength.*\(string\)/);
    // 2^32 blocks of one byte: one more than a 32-bit bitmap can index.
    expectInvalid(() => make(2 ** 32, 1), /4294967296 blocks/);
  });

  it('accepts the largest block count, 2^32 - 1', () => {
    const r = make(2 ** 32 - 1, 1);
    expect(r.numBlocks).toBe(2 ** 32 - 1);
    r.setBlock(2 ** 32 - 2);
    expect(r.isBlockSet(2 ** 32 - 2)).toBe(true);
    expect(r.isSet(2 ** 32 - 2)).toBe(true);
    expect(r.setBytes).toBe(1);
    const br = { from: -1, to: -1 };
    expect(r.nextSet(0, br)).toBe(2 ** 32 - 1);
    expect(br).toEqual({ from: 2 ** 32 - 2, to: 2 ** 32 - 2 });
    expect(r.nextClear(2 ** 32 - 2, br)).toBe(-1);
    expect([...r.setRuns()]).toEqual([{ from: 2 ** 32 - 2, to: 2 ** 32 - 2 }]);
  });

  it('content length 0: no blocks, complete, every position out of bounds', () => {
    const r = make(0, 4096);
    expect(r.numBlocks).toBe(0);
    expect(r.complete).toBe(true);
    expect(r.setCount).toBe(0);
    expect(r.setBytes).toBe(0);
    expect(r.block(0)).toBe(-1);
    r.set(0);
    r.setBlock(0);
    expect(r.setCount).toBe(0);
    expect(r.isSet(0)).toBe(false);
    expect(r.isClear(0)).toBe(false);
    const br = { from: 7, to: 7 };
    expect(r.nextClear(0, br)).toBe(-1);
    expect(r.nextSet(0, br)).toBe(-1);
    expect(br).toEqual({ from: 7, to: 7 });
    expect([...r.allClear()]).toEqual([]);
    expect([...r.clearRuns()]).toEqual([]);
    expect([...r.setRuns()]).toEqual([]);
  });

  it('one byte: one block of one byte', () => {
    const r = make(1, 65536);
    expect(r.numBlocks).toBe(1);
    expect(r.block(0)).toBe(0);
    expect(r.block(1)).toBe(-1);
    expect(r.isClear(0)).toBe(true);
    expect(walk((s, o) => r.nextClear(s, o))).toEqual([[1, { from: 0, to: 0 }]]);
    r.set(0);
    expect(r.complete).toBe(true);
    expect(r.setBytes).toBe(1);
    expect(walk((s, o) => r.nextSet(s, o))).toEqual([[1, { from: 0, to: 0 }]]);
    expect(walk((s, o) => r.nextClear(s, o))).toEqual([]);
  });

  it('block size larger than the file: one short block', () => {
    const r = make(1000, 4096);
    expect(r.numBlocks).toBe(1);
    expect(r.block(999)).toBe(0);
    expect(r.blockRange(0)).toEqual({ from: 0, to: 999 });
    r.set(500);
    expect(r.setBytes).toBe(1000);
    expect([...r.setRuns()]).toEqual([{ from: 0, to: 999 }]);
  });

  it('a last block of one byte is counted exactly', () => {
    const r = make(4097, 4096);
    expect(r.numBlocks).toBe(2);
    expect(r.block(4096)).toBe(1);
    expect(r.blockRange(1)).toEqual({ from: 4096, to: 4096 });
    r.set(4096);
    expect(r.setCount).toBe(1);
    expect(r.setBytes).toBe(1);
    expect(r.isSet(4096)).toBe(true);
    expect(r.isClear(4095)).toBe(true);
    r.setBlock(0);
    expect(r.setBytes).toBe(4097);
    expect(r.complete).toBe(true);
  });

  it('ignores out-of-bounds and non-integer positions and indices', () => {
    const r = make(100, 10);
    for (const pos of [-1, 100, 1e15, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(r.block(pos)).toBe(-1);
      r.set(pos);
      expect(r.isSet(pos)).toBe(false);
      expect(r.isClear(pos)).toBe(false);
    }
    for (const index of [-1, 10, 2.5, Number.NaN]) {
      r.setBlock(index);
      expect(r.isBlockSet(index)).toBe(false);
      const br = { from: 3, to: 4 };
      expect(r.nextClear(index, br)).toBe(-1);
      expect(r.nextSet(index, br)).toBe(-1);
      expect(br).toEqual({ from: 3, to: 4 });
      expect(r.blockRange(index)).toEqual({ from: -1, to: -1 });
    }
    expect(r.setCount).toBe(0);
  });

  it('maps byte positions to blocks at the boundaries', () => {
    const r = make(100, 10);
    expect(r.block(0)).toBe(0);
    expect(r.block(9)).toBe(0);
    expect(r.block(10)).toBe(1);
    expect(r.block(99)).toBe(9);
    r.set(19);
    expect(r.isBlockSet(1)).toBe(true);
    expect(r.isSet(10)).toBe(true);
    expect(r.isSet(9)).toBe(false);
    expect(r.isSet(20)).toBe(false);
  });

  it('maps positions exactly near 2^53', () => {
    // 2^53 - 1 bytes at a block size that does not divide it, checked against
    // BigInt division.
    const bs = 2 ** 21 + 1;
    const cl = Number.MAX_SAFE_INTEGER;
    const r = make(cl, bs);
    expect(r.numBlocks).toBe(Number((BigInt(cl) + BigInt(bs) - 1n) / BigInt(bs)));
    for (const pos of [cl - 1, cl - 2, bs * (r.numBlocks - 1) - 1, bs * (r.numBlocks - 1)]) {
      expect(r.block(pos)).toBe(Number(BigInt(pos) / BigInt(bs)));
    }
    const last = r.blockRange(r.numBlocks - 1);
    expect(last.to).toBe(cl - 1);
    expect((last.to - last.from + 1) % bs).toBe(cl % bs);
  });

  it('walks clear and set blocks with the Go iteration contract', () => {
    const r = make(95, 10); // 10 blocks, the last 5 bytes
    for (const i of [0, 1, 4, 7, 9]) r.setBlock(i);
    expect(walk((s, o) => r.nextSet(s, o))).toEqual([
      [1, { from: 0, to: 9 }],
      [2, { from: 10, to: 19 }],
      [5, { from: 40, to: 49 }],
      [8, { from: 70, to: 79 }],
      [10, { from: 90, to: 94 }],
    ]);
    expect(walk((s, o) => r.nextClear(s, o))).toEqual([
      [3, { from: 20, to: 29 }],
      [4, { from: 30, to: 39 }],
      [6, { from: 50, to: 59 }],
      [7, { from: 60, to: 69 }],
      [9, { from: 80, to: 89 }],
    ]);
    expect(walk((s, o) => r.nextClear(s, o), 7)).toEqual([[9, { from: 80, to: 89 }]]);
    expect([...r.allClear(7)]).toEqual([{ from: 80, to: 89 }]);
    expect([...r.allSet()].map((b) => b.from)).toEqual([0, 10, 40, 70, 90]);
    expect([...r.setRuns()]).toEqual([
      { from: 0, to: 19 },
      { from: 40, to: 49 },
      { from: 70, to: 79 },
      { from: 90, to: 94 },
    ]);
    expect([...r.clearRuns()]).toEqual([
      { from: 20, to: 39 },
      { from: 50, to: 69 },
      { from: 80, to: 89 },
    ]);
    // Starting inside a run yields its remainder.
    expect([...r.clearRuns(6)]).toEqual([
      { from: 60, to: 69 },
      { from: 80, to: 89 },
    ]);
    expect([...r.setRuns(1)][0]).toEqual({ from: 10, to: 19 });
    expect(r.setCount).toBe(5);
    expect(r.setBytes).toBe(45);
  });

  it('sees blocks set while a generator is being consumed', () => {
    const r = make(50, 10);
    const seen: number[] = [];
    for (const br of r.allClear()) {
      seen.push(br.from);
      r.setBlock(2); // set ahead of the iteration: it must be skipped
    }
    expect(seen).toEqual([0, 10, 30, 40]);
  });

  it('serializes and reads back, rejecting garbage and bits past the end', () => {
    const r = make(1000, 10);
    for (const i of [0, 1, 2, 50, 99]) r.setBlock(i);
    const bytes = r.serialize();
    expect(bytes).toBeInstanceOf(Uint8Array);
    const Ctor = r instanceof ByteRanges ? ByteRanges : ByteRangesTracker;
    const back = Ctor.deserialize(bytes, 1000, 10);
    expect([...back.allSet()]).toEqual([...r.allSet()]);
    expect(back.setBytes).toBe(r.setBytes);

    // Same bits, a file too short for block 99.
    expectInvalid(() => Ctor.deserialize(bytes, 990, 10), /sets block 99 .* only 99 blocks/);
    // Not a bitmap at all, empty, truncated, or with trailing bytes.
    expectInvalid(() => Ctor.deserialize(new TextEncoder().encode('{"not":"roaring"}'), 1000, 10), /not a roaring portable bitmap/);
    expectInvalid(() => Ctor.deserialize(new Uint8Array(0), 1000, 10), /0 bytes/);
    expectInvalid(() => Ctor.deserialize(bytes.subarray(0, bytes.length - 1), 1000, 10), /roaring|truncated/);
    const longer = new Uint8Array(bytes.length + 3);
    longer.set(bytes);
    expectInvalid(() => Ctor.deserialize(longer, 1000, 10), /trailing/);
    expectInvalid(() => Ctor.deserialize('abc' as unknown as Uint8Array, 1000, 10), /Uint8Array, got string/);
    // Bad sizes are named before the bytes are looked at.
    expectInvalid(() => Ctor.deserialize(bytes, 1000, 0), /blockSize/);
  });

  it('rejects a well-framed bitmap whose values are out of order (found by fuzzing: it made searches loop)', () => {
    const r = make(100, 10);
    r.setBlock(1);
    r.setBlock(5);
    const bytes = Uint8Array.from(r.serialize());
    // An array container: its two uint16 values are the last four bytes.
    expect([...bytes.subarray(-4)]).toEqual([1, 0, 5, 0]);
    bytes.set([5, 0, 1, 0], bytes.length - 4);
    const Ctor = r instanceof ByteRanges ? ByteRanges : ByteRangesTracker;
    expectInvalid(() => Ctor.deserialize(bytes, 100, 10), /corrupt: block 1 follows block 5/);
    // A duplicated value is caught the same way.
    bytes.set([5, 0, 5, 0], bytes.length - 4);
    expectInvalid(() => Ctor.deserialize(bytes, 100, 10), /block 5 follows block 5/);
  });

  it('serializes an empty file and an empty bitmap', () => {
    const r = make(0, 10);
    const Ctor = r instanceof ByteRanges ? ByteRanges : ByteRangesTracker;
    const back = Ctor.deserialize(r.serialize(), 0, 10);
    expect(back.numBlocks).toBe(0);
    expect(back.complete).toBe(true);
    expect(Ctor.deserialize(make(100, 10).serialize(), 100, 10).setCount).toBe(0);
  });

  it('clone is independent', () => {
    const r = make(100, 10);
    r.setBlock(1);
    const c = r.clone();
    c.setBlock(2);
    expect(r.isBlockSet(2)).toBe(false);
    expect(c.isBlockSet(1)).toBe(true);
    expect(c.contentLength).toBe(100);
    expect(c.blockSize).toBe(10);
  });

  it('16 M blocks (1 TiB at 64 KiB): few runs answer without scanning and serialize small', () => {
    const bs = 65536;
    const r = make(2 ** 40, bs);
    expect(r.numBlocks).toBe(16 * 2 ** 20);
    // Three runs in separate containers, and one long run across many.
    for (let i = 0; i < 1000; i++) r.setBlock(i);
    for (let i = 9_000_000; i < 9_000_100; i++) r.setBlock(i);
    r.setBlock(16 * 2 ** 20 - 1);
    const br = { from: -1, to: -1 };
    expect(r.nextClear(0, br)).toBe(1001);
    expect(br).toEqual({ from: 1000 * bs, to: 1001 * bs - 1 });
    expect(r.nextSet(1000, br)).toBe(9_000_001);
    expect(br.from).toBe(9_000_000 * bs);
    expect(r.nextClear(9_000_000, br)).toBe(9_000_101);
    expect(r.nextSet(9_000_100, br)).toBe(16 * 2 ** 20);
    expect(br.to).toBe(2 ** 40 - 1);
    expect(r.nextClear(16 * 2 ** 20 - 1, br)).toBe(-1);
    expect([...r.setRuns()]).toEqual([
      { from: 0, to: 1000 * bs - 1 },
      { from: 9_000_000 * bs, to: 9_000_100 * bs - 1 },
      { from: (16 * 2 ** 20 - 1) * bs, to: 2 ** 40 - 1 },
    ]);
    expect(r.setBytes).toBe(1101 * bs);
    const bytes = r.serialize();
    expect(bytes.length).toBeLessThan(1024);
    expect(make(2 ** 40, bs).serialize().length).toBeLessThan(16);
  });
});

describe('ByteRanges: prefix tracking', () => {
  it('tail is {-1,-1} until block 0 is set, then the contiguous prefix', () => {
    const r = new ByteRanges(95, 10);
    expect(r.tail()).toEqual({ from: -1, to: -1 });
    r.setBlock(2);
    r.setBlock(3);
    expect(r.tail()).toEqual({ from: -1, to: -1 });
    r.set(5);
    expect(r.tail()).toEqual({ from: 0, to: 9 });
    r.setBlock(1); // joins 0..3
    expect(r.tail()).toEqual({ from: 0, to: 39 });
    for (let i = 4; i < 9; i++) r.setBlock(i);
    expect(r.tail()).toEqual({ from: 0, to: 89 });
    r.setBlock(9);
    expect(r.tail()).toEqual({ from: 0, to: 94 }); // the short last block
    expect(r.complete).toBe(true);
  });

  it('empty file: tail {-1,-1}, notify already settled', async () => {
    const r = new ByteRanges(0, 10);
    expect(r.tail()).toEqual({ from: -1, to: -1 });
    await expect(r.notify()).resolves.toBeUndefined();
  });

  it('notify settles on prefix growth only, for every waiter', async () => {
    const r = new ByteRanges(100, 10);
    const first = r.notify();
    expect(r.notify()).toBe(first); // waiters share one promise
    let settled = false;
    void first.then(() => {
      settled = true;
    });
    r.setBlock(5); // not the prefix
    r.setBlock(1);
    await Promise.resolve();
    await Promise.resolve();
    expect(settled).toBe(false);
    r.setBlock(0); // prefix 0..1
    const all = await Promise.all([first, first.then(() => 'second waiter')]);
    expect(all[1]).toBe('second waiter');
    expect(settled).toBe(true);
    expect(r.tail()).toEqual({ from: 0, to: 19 });

    // A new promise after growth; setting an already-set block does not settle it.
    const next = r.notify();
    expect(next).not.toBe(first);
    let nextSettled = false;
    void next.then(() => {
      nextSettled = true;
    });
    r.setBlock(0);
    r.setBlock(1);
    await Promise.resolve();
    expect(nextSettled).toBe(false);
    r.setBlock(2);
    await next;
    expect(r.tail()).toEqual({ from: 0, to: 29 });
  });

  it('notify is settled at once when complete, and the last block settles pending waiters', async () => {
    const r = new ByteRanges(20, 10);
    r.setBlock(1);
    const waiting = r.notify();
    r.setBlock(0);
    await waiting;
    expect(r.complete).toBe(true);
    await expect(r.notify()).resolves.toBeUndefined();
  });

  it('a waiter that takes notify() before checking tail misses no growth', async () => {
    const r = new ByteRanges(1000, 10);
    const waitFor = async (byte: number): Promise<number> => {
      let rounds = 0;
      for (;;) {
        const grown = r.notify();
        if (r.tail().to >= byte) return rounds;
        rounds += 1;
        await grown;
      }
    };
    const reader = waitFor(999);
    // Blocks arrive in reverse order across several turns; only block 0 grows the prefix.
    for (let i = 99; i >= 0; i--) {
      r.setBlock(i);
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await reader).toBe(1);
  });

  it('deserialize and clone restore the prefix', async () => {
    const r = new ByteRanges(100, 10);
    for (const i of [0, 1, 2, 4]) r.setBlock(i);
    const back = ByteRanges.deserialize(r.serialize(), 100, 10);
    expect(back.tail()).toEqual({ from: 0, to: 29 });
    const c = r.clone();
    expect(c.tail()).toEqual({ from: 0, to: 29 });
    const grown = c.notify();
    c.setBlock(3);
    await grown;
    expect(c.tail()).toEqual({ from: 0, to: 49 });
    expect(r.tail()).toEqual({ from: 0, to: 29 });
  });

  it('the prefix skips long runs set out of order (16 M blocks)', () => {
    const n = 16 * 2 ** 20;
    const r = new ByteRanges(n * 4096, 4096);
    // Everything but block 0, in one pass of setBlock calls over a range
    // would be slow in a test, so use two large runs via deserialize.
    const t = new ByteRangesTracker(n * 4096, 4096);
    for (let i = 1; i < 70_000; i++) t.setBlock(i);
    const withGap = ByteRanges.deserialize(t.serialize(), n * 4096, 4096);
    expect(withGap.tail()).toEqual({ from: -1, to: -1 });
    withGap.setBlock(0);
    expect(withGap.tail()).toEqual({ from: 0, to: 70_000 * 4096 - 1 });
    expect(r.tail()).toEqual({ from: -1, to: -1 });
  });
});

describe('ByteRangesTracker: clearing', () => {
  it('clear and clearBlock undo set, out of bounds has no effect', () => {
    const t = new ByteRangesTracker(95, 10);
    for (let i = 0; i < 10; i++) t.setBlock(i);
    expect(t.complete).toBe(true);
    t.clear(94);
    expect(t.isBlockSet(9)).toBe(false);
    expect(t.setBytes).toBe(90);
    t.clearBlock(0);
    t.clear(-1);
    t.clear(95);
    t.clearBlock(10);
    t.clearBlock(-1);
    expect(t.setCount).toBe(8);
    expect([...t.clearRuns()]).toEqual([
      { from: 0, to: 9 },
      { from: 90, to: 94 },
    ]);
    expect(t.complete).toBe(false);
  });

  it('has no prefix tracking', () => {
    const t = new ByteRangesTracker(10, 1) as unknown as Record<string, unknown>;
    expect(t.tail).toBeUndefined();
    expect(t.notify).toBeUndefined();
  });
});
