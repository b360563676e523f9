import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReorderBuffer } from '../src/download/reorder-buffer.js';
import { InvalidArgumentError } from '../src/errors.js';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

describe('ReorderBuffer', () => {
  it('emits in block order whatever the arrival order', () => {
    const rb = new ReorderBuffer(3, 3);
    const [a, b, c] = [rb.open(), rb.open(), rb.open()];
    rb.append(c, bytes(5));
    rb.finish(c);
    rb.append(b, bytes(3));
    rb.append(b, bytes(4));
    rb.finish(b);
    expect(rb.take()).toBeUndefined();
    rb.append(a, bytes(1, 2));
    expect(rb.take()).toEqual(bytes(1, 2)); // the head streams before it is whole
    rb.finish(a);
    expect([rb.take(), rb.take(), rb.take(), rb.take()]).toEqual([bytes(3), bytes(4), bytes(5), undefined]);
    expect(rb.ended()).toBe(true);
    expect(rb.bufferedBytes).toBe(0);
    expect(rb.maxBufferedBytes).toBe(5);
  });

  it('opens nothing outside the window, and taking the head makes room', () => {
    const rb = new ReorderBuffer(10, 2);
    expect([rb.open(), rb.open()]).toEqual([0, 1]);
    expect(rb.canOpen()).toBe(false);
    expect(() => rb.open()).toThrow(/outside the window/);
    rb.append(1, bytes(9));
    rb.finish(1);
    expect(rb.canOpen()).toBe(false); // block 0 still holds the head
    rb.append(0, bytes(8));
    expect(rb.take()).toEqual(bytes(8));
    expect(rb.canOpen()).toBe(false); // block 0 has not finished arriving
    rb.finish(0);
    expect(rb.take()).toEqual(bytes(9)); // moves past block 0, and block 1 is whole
    expect(rb.head).toBe(2);
    expect(rb.canOpen()).toBe(true);
    expect([rb.open(), rb.open()]).toEqual([2, 3]);
    expect(rb.openBlocks).toBe(2);
  });

  it('counts out-of-order blocks and the most waiting at once', () => {
    const rb = new ReorderBuffer(5, 5);
    for (let i = 0; i < 5; i++) rb.open();
    rb.finish(2); // waits for 0 and 1
    rb.finish(4); // waits too: 2 waiting
    rb.finish(0); // in order; 1 is still missing
    rb.finish(1); // releases 2; 3 missing so 4 still waits
    rb.finish(3); // in order
    expect(rb.outOfOrder).toBe(2);
    expect(rb.maxOutOfOrder).toBe(2);
  });

  it('dropAfter keeps the bytes before a failure and drops the rest', () => {
    const rb = new ReorderBuffer(4, 4);
    for (let i = 0; i < 4; i++) rb.open();
    rb.append(0, bytes(1));
    rb.append(1, bytes(2));
    rb.append(2, bytes(3));
    rb.finish(2);
    rb.append(3, bytes(4));
    rb.dropAfter(1);
    expect(rb.bufferedBytes).toBe(2);
    rb.append(3, bytes(5)); // a late chunk of a dropped block is ignored
    expect(rb.bufferedBytes).toBe(2);
    rb.finish(0);
    expect([rb.take(), rb.take(), rb.take()]).toEqual([bytes(1), bytes(2), undefined]);
    rb.clear();
    expect(rb.bufferedBytes).toBe(0);
  });

  it('rejects a bad window or block count, naming it', () => {
    expect(() => new ReorderBuffer(3, 0)).toThrow(InvalidArgumentError);
    expect(() => new ReorderBuffer(-1, 2)).toThrow(/blockCount must be a whole number >= 0, got -1 \(number\)/);
    expect(new ReorderBuffer(0, 1).ended()).toBe(true);
  });

  it('property: any arrival order gives the bytes in order, within the window and the byte bound', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }), // blocks
        fc.integer({ min: 1, max: 5 }), // window
        fc.integer({ min: 1, max: 6 }), // block size
        fc.array(fc.nat(), { minLength: 1, maxLength: 300 }), // choices
        (blocks, window, blockSize, choices) => {
          const rb = new ReorderBuffer(blocks, window);
          const received = new Map<number, number>(); // block -> bytes appended
          const out: number[] = [];
          const byteOf = (block: number, i: number): number => (block * blockSize + i) % 256;
          const step = (choice: number): void => {
            const open = [...received.keys()].filter((b) => b >= rb.head);
            const action = choice % 3;
            if (action === 0 && rb.canOpen()) {
              received.set(rb.open(), 0);
            } else if (action === 1 && open.length > 0) {
              const block = open[Math.floor(choice / 3) % open.length] as number;
              const have = received.get(block) ?? 0;
              if (have < blockSize) {
                const n = 1 + ((choice >> 4) % (blockSize - have));
                rb.append(block, Uint8Array.from({ length: n }, (_, i) => byteOf(block, have + i)));
                received.set(block, have + n);
                if (have + n === blockSize) rb.finish(block);
              }
            } else {
              const chunk = rb.take();
              if (chunk) out.push(...chunk);
            }
            expect(rb.openBlocks).toBeLessThanOrEqual(window);
            expect(rb.bufferedBytes).toBeLessThanOrEqual(window * blockSize);
          };
          for (const choice of choices) step(choice);
          // Then finish deterministically: open, fill and take everything.
          for (let guard = 0; !rb.ended() && guard < 10_000; guard++) {
            while (rb.canOpen()) received.set(rb.open(), 0);
            for (const [block, have] of received) {
              if (block >= rb.head && have < blockSize) {
                rb.append(block, Uint8Array.from({ length: blockSize - have }, (_, i) => byteOf(block, have + i)));
                received.set(block, blockSize);
                rb.finish(block);
              }
            }
            for (let chunk = rb.take(); chunk; chunk = rb.take()) out.push(...chunk);
          }
          expect(rb.ended()).toBe(true);
          expect(out).toEqual(Array.from({ length: blocks * blockSize }, (_, i) => i % 256));
          expect(rb.maxBufferedBytes).toBeLessThanOrEqual(window * blockSize);
          expect(rb.maxOutOfOrder).toBeLessThanOrEqual(window - 1);
          expect(rb.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
