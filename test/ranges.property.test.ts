/**
 * Property tests: ByteRanges and ByteRangesTracker against a plain boolean
 * array, for random sizes and random sequences of set / clear operations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ByteRange } from '../src/ranges/byte-range.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { ByteRangesTracker } from '../src/ranges/byte-ranges-tracker.js';

/** The reference: one boolean per block, and the obvious answers. */
class Reference {
  readonly bits: boolean[];
  constructor(
    readonly contentLength: number,
    readonly blockSize: number,
  ) {
    this.bits = new Array<boolean>(Math.ceil(contentLength / blockSize)).fill(false);
  }
  range(i: number): ByteRange {
    return { from: i * this.blockSize, to: Math.min((i + 1) * this.blockSize, this.contentLength) - 1 };
  }
  indices(value: boolean, start = 0): number[] {
    const out: number[] = [];
    for (let i = Math.max(0, start); i < this.bits.length; i++) if (this.bits[i] === value) out.push(i);
    return out;
  }
  runs(value: boolean, start = 0): ByteRange[] {
    const out: ByteRange[] = [];
    for (let i = Math.max(0, start); i < this.bits.length; i++) {
      if (this.bits[i] !== value) continue;
      let j = i;
      while (j + 1 < this.bits.length && this.bits[j + 1] === value) j++;
      out.push({ from: this.range(i).from, to: this.range(j).to });
      i = j;
    }
    return out;
  }
  prefix(): number {
    let p = 0;
    while (p < this.bits.length && this.bits[p]) p++;
    return p;
  }
  tail(): ByteRange {
    const p = this.prefix();
    return p === 0 ? { from: -1, to: -1 } : { from: 0, to: this.range(p - 1).to };
  }
  setBytes(): number {
    return this.indices(true).reduce((sum, i) => sum + this.range(i).to - this.range(i).from + 1, 0);
  }
}

type Op =
  | { kind: 'set'; pos: number }
  | { kind: 'setBlock'; index: number }
  | { kind: 'setRun'; index: number; length: number }
  | { kind: 'clear'; pos: number }
  | { kind: 'clearBlock'; index: number };

/** Positions and indices reach a little past both ends, to exercise the bounds. */
function opArb(contentLength: number, numBlocks: number, withClear: boolean, maxRun: number): fc.Arbitrary<Op> {
  const pos = fc.integer({ min: -2, max: contentLength + 2 });
  const index = fc.integer({ min: -2, max: numBlocks + 2 });
  const ops: Array<fc.Arbitrary<Op>> = [
    pos.map((p) => ({ kind: 'set' as const, pos: p })),
    index.map((i) => ({ kind: 'setBlock' as const, index: i })),
    fc.record({ index, length: fc.integer({ min: 1, max: maxRun }) }).map((r) => ({ kind: 'setRun' as const, ...r })),
  ];
  if (withClear) {
    ops.push(pos.map((p) => ({ kind: 'clear' as const, pos: p })));
    ops.push(index.map((i) => ({ kind: 'clearBlock' as const, index: i })));
  }
  return fc.oneof(...ops);
}

function applyRef(ref: Reference, op: Op): void {
  const n = ref.bits.length;
  const inBounds = (i: number) => i >= 0 && i < n;
  switch (op.kind) {
    case 'set':
      if (op.pos >= 0 && op.pos < ref.contentLength) ref.bits[Math.floor(op.pos / ref.blockSize)] = true;
      break;
    case 'setBlock':
      if (inBounds(op.index)) ref.bits[op.index] = true;
      break;
    case 'setRun':
      for (let i = op.index; i < op.index + op.length; i++) if (inBounds(i)) ref.bits[i] = true;
      break;
    case 'clear':
      if (op.pos >= 0 && op.pos < ref.contentLength) ref.bits[Math.floor(op.pos / ref.blockSize)] = false;
      break;
    case 'clearBlock':
      if (inBounds(op.index)) ref.bits[op.index] = false;
      break;
  }
}

function apply(r: ByteRanges | ByteRangesTracker, op: Op): void {
  switch (op.kind) {
    case 'set':
      r.set(op.pos);
      break;
    case 'setBlock':
      r.setBlock(op.index);
      break;
    case 'setRun':
      for (let i = op.index; i < op.index + op.length; i++) r.setBlock(i);
      break;
    case 'clear':
      (r as ByteRangesTracker).clear(op.pos);
      break;
    case 'clearBlock':
      (r as ByteRangesTracker).clearBlock(op.index);
      break;
  }
}

function walk(next: (start: number, out: ByteRange) => number, start: number): Array<[number, ByteRange]> {
  const out: Array<[number, ByteRange]> = [];
  const br = { from: -1, to: -1 };
  for (let i = next(start, br); i !== -1; i = next(i, br)) out.push([i, { ...br }]);
  return out;
}

/** Every query of the shared block API, compared with the reference. */
function checkAgainst(r: ByteRanges | ByteRangesTracker, ref: Reference, start: number, everyByte: boolean): void {
  const n = ref.bits.length;
  expect(r.numBlocks).toBe(n);
  expect(r.setCount).toBe(ref.indices(true).length);
  expect(r.setBytes).toBe(ref.setBytes());
  expect(r.complete).toBe(ref.bits.every(Boolean));
  // Collected into arrays and compared once: an expect() per byte is slow.
  const blockBits: boolean[] = [];
  const actual: Array<[number, boolean, boolean]> = [];
  const wanted: Array<[number, boolean, boolean]> = [];
  for (let i = 0; i < n; i++) {
    const expected = ref.bits[i] === true;
    blockBits.push(r.isBlockSet(i));
    const { from, to } = ref.range(i);
    // Every byte when the file is small; otherwise both ends of each block.
    const positions = everyByte ? Array.from({ length: to - from + 1 }, (_, k) => from + k) : [from, to];
    for (const pos of positions) {
      actual.push([r.block(pos), r.isSet(pos), r.isClear(pos)]);
      wanted.push([i, expected, !expected]);
    }
  }
  expect(blockBits).toEqual(ref.bits);
  expect(actual).toEqual(wanted);
  const start0 = Math.min(start, Math.max(0, n - 1));
  for (const s of [0, start0]) {
    const startsValid = s < n;
    const clear = startsValid ? ref.indices(false, s) : [];
    const set = startsValid ? ref.indices(true, s) : [];
    expect(walk((a, b) => r.nextClear(a, b), s)).toEqual(clear.map((i) => [i + 1, ref.range(i)]));
    expect(walk((a, b) => r.nextSet(a, b), s)).toEqual(set.map((i) => [i + 1, ref.range(i)]));
    expect([...r.allClear(s)]).toEqual(clear.map((i) => ref.range(i)));
    expect([...r.allSet(s)]).toEqual(set.map((i) => ref.range(i)));
    expect([...r.clearRuns(s)]).toEqual(startsValid ? ref.runs(false, s) : []);
    expect([...r.setRuns(s)]).toEqual(startsValid ? ref.runs(true, s) : []);
  }
}

const sizes = fc
  .record({ contentLength: fc.integer({ min: 0, max: 400 }), blockSize: fc.integer({ min: 1, max: 64 }) })
  .filter(({ contentLength, blockSize }) => Math.ceil(contentLength / blockSize) <= 200);

/** Block counts past 65 536 so that runs span roaring containers. */
const bigSizes = fc.record({
  contentLength: fc.integer({ min: 65_000 * 3, max: 200_000 * 3 }),
  blockSize: fc.constant(3),
});

describe('ByteRanges against a boolean array', () => {
  it('small files: every query, tail, notify and serialize agree', async () => {
    await fc.assert(
      fc.asyncProperty(
        sizes.chain((s) => {
          const n = Math.ceil(s.contentLength / s.blockSize);
          return fc.record({
            s: fc.constant(s),
            ops: fc.array(opArb(s.contentLength, n, false, 12), { maxLength: 60 }),
            start: fc.nat({ max: n + 1 }),
          });
        }),
        async ({ s, ops, start }) => {
          const r = new ByteRanges(s.contentLength, s.blockSize);
          const ref = new Reference(s.contentLength, s.blockSize);
          for (const op of ops) {
            const before = ref.prefix();
            let settled = false;
            void r.notify().then(() => {
              settled = true;
            });
            apply(r, op);
            applyRef(ref, op);
            await Promise.resolve();
            await Promise.resolve();
            // notify() settles exactly when the prefix grew (or was already complete).
            expect(settled).toBe(ref.prefix() > before || before === ref.bits.length);
            expect(r.tail()).toEqual(ref.tail());
          }
          checkAgainst(r, ref, start, true);
          const back = ByteRanges.deserialize(r.serialize(), s.contentLength, s.blockSize);
          checkAgainst(back, ref, start, true);
          expect(back.tail()).toEqual(ref.tail());
          expect(r.clone().tail()).toEqual(ref.tail());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('many blocks: runs across roaring containers agree', () => {
    fc.assert(
      fc.property(
        bigSizes.chain((s) => {
          const n = Math.ceil(s.contentLength / s.blockSize);
          return fc.record({
            s: fc.constant(s),
            ops: fc.array(opArb(s.contentLength, n, false, 140_000), { maxLength: 8 }),
            start: fc.nat({ max: n + 1 }),
          });
        }),
        ({ s, ops, start }) => {
          const r = new ByteRanges(s.contentLength, s.blockSize);
          const ref = new Reference(s.contentLength, s.blockSize);
          for (const op of ops) {
            apply(r, op);
            applyRef(ref, op);
            expect(r.tail()).toEqual(ref.tail());
          }
          expect([...r.setRuns(start)]).toEqual(start < ref.bits.length ? ref.runs(true, start) : []);
          expect([...r.clearRuns(start)]).toEqual(start < ref.bits.length ? ref.runs(false, start) : []);
          expect(r.setBytes).toBe(ref.setBytes());
          const back = ByteRanges.deserialize(r.serialize(), s.contentLength, s.blockSize);
          expect([...back.setRuns()]).toEqual(ref.runs(true));
          expect(back.tail()).toEqual(ref.tail());
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('ByteRangesTracker against a boolean array', () => {
  it('small files: set and clear in any order', () => {
    fc.assert(
      fc.property(
        sizes.chain((s) => {
          const n = Math.ceil(s.contentLength / s.blockSize);
          return fc.record({
            s: fc.constant(s),
            ops: fc.array(opArb(s.contentLength, n, true, 12), { maxLength: 80 }),
            start: fc.nat({ max: n + 1 }),
          });
        }),
        ({ s, ops, start }) => {
          const t = new ByteRangesTracker(s.contentLength, s.blockSize);
          const ref = new Reference(s.contentLength, s.blockSize);
          for (const op of ops) {
            apply(t, op);
            applyRef(ref, op);
          }
          checkAgainst(t, ref, start, true);
          checkAgainst(ByteRangesTracker.deserialize(t.serialize(), s.contentLength, s.blockSize), ref, start, true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('many blocks: set and clear runs across containers', () => {
    fc.assert(
      fc.property(
        bigSizes.chain((s) => {
          const n = Math.ceil(s.contentLength / s.blockSize);
          return fc.record({
            s: fc.constant(s),
            ops: fc.array(opArb(s.contentLength, n, true, 140_000), { maxLength: 8 }),
            start: fc.nat({ max: n + 1 }),
          });
        }),
        ({ s, ops, start }) => {
          const t = new ByteRangesTracker(s.contentLength, s.blockSize);
          const ref = new Reference(s.contentLength, s.blockSize);
          for (const op of ops) {
            apply(t, op);
            applyRef(ref, op);
          }
          expect([...t.setRuns(start)]).toEqual(start < ref.bits.length ? ref.runs(true, start) : []);
          expect([...t.clearRuns(start)]).toEqual(start < ref.bits.length ? ref.runs(false, start) : []);
          expect(t.setCount).toBe(ref.indices(true).length);
          const back = ByteRangesTracker.deserialize(t.serialize(), s.contentLength, s.blockSize);
          expect([...back.clearRuns()]).toEqual(ref.runs(false));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('deserialize never crashes on corrupted bytes: a typed error or a valid bitmap', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 2999 }), { maxLength: 50 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 4 }),
        (indices, flips) => {
          const t = new ByteRangesTracker(3000, 1);
          for (const i of indices) t.setBlock(i);
          const bytes = Uint8Array.from(t.serialize());
          for (const { at, value } of flips) bytes[at % bytes.length] = value;
          let back: ByteRangesTracker | undefined;
          try {
            back = ByteRangesTracker.deserialize(bytes, 3000, 1);
          } catch (err) {
            expect(err).toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
            return;
          }
          // Accepted: then every set block is inside the file.
          for (const br of back.setRuns()) expect(br.to).toBeLessThan(3000);
          expect(back.setCount).toBeLessThanOrEqual(3000);
        },
      ),
      { numRuns: 500 },
    );
  });
});
