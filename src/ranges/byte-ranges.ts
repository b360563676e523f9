/**
 * {@link ByteRanges}: which blocks of a file are done, plus the contiguous
 * done prefix from byte 0 and a way to wait for it to grow.
 *
 * @module
 */
import { BlockBitmap } from './block-bitmap.js';
import type { ByteRange } from './byte-range.js';

/**
 * A bitmap of the equal-sized blocks of a file (the last may be shorter) that
 * only ever grows: blocks are set, never cleared. On top of the shared block
 * API ({@link BlockBitmap}) it keeps the contiguous set prefix from byte 0
 * ({@link ByteRanges.tail}) up to date as blocks arrive in any order, and lets
 * a reader wait for that prefix to grow ({@link ByteRanges.notify}), which is
 * what a streaming reader or `tail -f`-style consumer needs.
 *
 * Positions given to `set`, `isSet`, `isClear` are BYTE positions (out of
 * bounds: no effect / false); `setBlock`, `isBlockSet`, `nextClear`,
 * `nextSet` take BLOCK indices. See {@link ByteRangesTracker} for a variant
 * whose blocks can be cleared again.
 *
 * @example
 * ```ts
 * const done = new ByteRanges(10_000, 4096);   // 3 blocks, the last 1808 bytes
 * done.set(5000);                               // block 1
 * done.tail();                                  // { from: -1, to: -1 }: block 0 missing
 * done.setBlock(0);
 * done.tail();                                  // { from: 0, to: 8191 }
 * const br = { from: -1, to: -1 };
 * done.nextClear(0, br);                        // 3, br = { from: 8192, to: 9999 }
 * ```
 */
export class ByteRanges extends BlockBitmap {
  /** Blocks 0 up to (not including) this index are all set. */
  #prefix = 0;
  /** The promise handed out by notify() since the prefix last grew, if any. */
  #waiting: { promise: Promise<void>; resolve: () => void } | undefined;

  /**
   * Reads back what {@link BlockBitmap.serialize} wrote, for a file of the
   * given sizes (which the bitmap itself does not record).
   *
   * @throws InvalidArgumentError when the sizes are invalid, the bytes are
   *   not a roaring portable bitmap of exactly that length, or a set block
   *   lies at or past `numBlocks`. (The cache layer reports this as
   *   `BLOCKFETCH_INDEX_CORRUPT`.)
   */
  static deserialize(bytes: Uint8Array, contentLength: number, blockSize: number): ByteRanges {
    const ranges = new ByteRanges(contentLength, blockSize);
    ranges.loadSerialized(bytes);
    ranges.#prefix = ranges.#scanPrefix(0);
    return ranges;
  }

  /** An independent copy: same sizes, same set blocks, no waiters. */
  clone(): ByteRanges {
    const copy = new ByteRanges(this.contentLength, this.blockSize);
    copy.copyBitsFrom(this);
    copy.#prefix = this.#prefix;
    return copy;
  }

  /**
   * Sets every block set in `other`, a bitmap of the same file (the same
   * content length and block size), and wakes the prefix's waiters if it grew.
   *
   * @throws InvalidArgumentError when `other` has other sizes.
   * @example
   * ```ts
   * const done = ByteRanges.deserialize(synced, size, blockSize);
   * done.addAll(ByteRanges.deserialize(writtenThisBoot, size, blockSize)); // the union of both
   * ```
   */
  addAll(other: BlockBitmap): void {
    this.orBitsFrom(other);
    const before = this.#prefix;
    this.#prefix = this.#scanPrefix(before);
    if (this.#prefix !== before) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.resolve();
    }
  }

  /**
   * The contiguous set prefix as a byte range `{ from: 0, to }`, or
   * `{ from: -1, to: -1 }` when block 0 is clear (and for an empty file).
   * O(1): the prefix is maintained as blocks are set.
   */
  tail(): ByteRange {
    if (this.#prefix === 0) return { from: -1, to: -1 };
    const to = this.#prefix === this.numBlocks ? this.contentLength - 1 : this.#prefix * this.blockSize - 1;
    return { from: 0, to };
  }

  /**
   * A promise that settles the next time the contiguous set prefix grows, or
   * at once when every block is already set (an empty file included). All
   * callers between two growths share one promise. Setting a block that does
   * not extend the prefix does not settle it.
   *
   * No wake-up is missed as long as the check and the wait are taken in the
   * same synchronous turn — or, to be safe across an `await`, take the
   * promise BEFORE looking at {@link ByteRanges.tail}:
   *
   * @example
   * ```ts
   * async function waitFor(ranges: ByteRanges, byte: number): Promise<void> {
   *   for (;;) {
   *     const grown = ranges.notify();          // first take the promise...
   *     if (ranges.tail().to >= byte) return;   // ...then check
   *     await grown;                            // growth after the check settles it
   *   }
   * }
   * ```
   */
  notify(): Promise<void> {
    if (this.complete) return Promise.resolve();
    if (this.#waiting === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#waiting = { promise, resolve };
    }
    return this.#waiting.promise;
  }

  /**
   * Advances the prefix when the newly set block is the first one past it,
   * skipping over blocks that were set earlier out of order, and wakes the
   * waiters. Blocks set elsewhere leave the prefix (and waiters) alone.
   */
  protected override blockWasSet(index: number): void {
    if (index !== this.#prefix) return;
    // Block `index` was just set: start looking for the end from the next one.
    this.#prefix = index + 1 === this.numBlocks ? this.numBlocks : this.#scanPrefix(index + 1);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve();
  }

  /** The end of the run of set blocks starting at `from` (numBlocks when it reaches the end). */
  #scanPrefix(from: number): number {
    const clear = this.nextClearIndex(from);
    return clear < 0 ? this.numBlocks : clear;
  }
}
