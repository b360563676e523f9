/**
 * The roaring-backed core shared by {@link ByteRanges} and
 * {@link ByteRangesTracker}: one bit per block of a file, and every query
 * that does not depend on whether blocks can be cleared again.
 *
 * This is the only module that touches `roaring`. Callers see block indices
 * and {@link ByteRange}s, never the bitmap itself, so the storage can change
 * without changing the API.
 *
 * Why roaring: a 1 TiB file at 64 KiB blocks has 16 M blocks. A plain bit
 * array is 2 MiB whatever the state; a roaring bitmap of a download in
 * progress is mostly runs, and after `runOptimize()` a run costs about 14
 * bytes per 65 536 blocks it spans (roaring keeps one container per 2^16
 * values): 115 bytes for a few short runs, 1.8 KiB for the first half of
 * 16 M blocks, 2 MiB only when every other block is set. Its portable format
 * is readable by the Java/Go/C implementations, and `has`/`hasRange`/
 * `rank`/`select` answer "where is the next set / clear block" without
 * looking at every bit.
 *
 * @module
 */
import type { RoaringBitmap32 as Bitmap } from 'roaring';
import { roaring } from './roaring.js';
import { InvalidArgumentError } from '../errors.js';
import { type ByteRange, validateSizes } from './byte-range.js';

const { RoaringBitmap32 } = roaring;

/**
 * The block bitmap every public variant is built on. Abstract: use
 * {@link ByteRanges} (tracks the contiguous prefix, only ever grows) or
 * {@link ByteRangesTracker} (blocks can be cleared again).
 *
 * Positions given to {@link BlockBitmap.set}, {@link BlockBitmap.isSet} and
 * {@link BlockBitmap.isClear} are BYTE positions; out of bounds they have no
 * effect / answer false (the Go semantics). Methods with `Block` in their
 * name, and `nextClear`/`nextSet`, take BLOCK indices.
 *
 * Iterating (`nextClear`, `allClear`, `clearRuns`, ...) while blocks are being
 * set is safe: each step asks the bitmap afresh, so it sees every change made
 * before that step.
 *
 * @example
 * ```ts
 * function missingBlocks(bitmap: BlockBitmap): number {
 *   return bitmap.numBlocks - bitmap.setCount; // the same for ByteRanges and ByteRangesTracker
 * }
 * ```
 */
export abstract class BlockBitmap {
  readonly #contentLength: number;
  readonly #blockSize: number;
  readonly #numBlocks: number;
  /** Bytes in the last block (equal to blockSize unless the last block is short; 0 for an empty file). */
  readonly #lastBlockLength: number;
  #bits: Bitmap = new RoaringBitmap32();

  /**
   * @param contentLength - The file's size in bytes; 0 or more.
   * @param blockSize - The size of every block but the last, in bytes; 1 or more.
   * @throws InvalidArgumentError naming the bad value when a size is not a
   *   safe whole number in range, or the file would need more than 2^32 - 1 blocks.
   */
  constructor(contentLength: number, blockSize: number) {
    validateSizes(contentLength, blockSize);
    this.#contentLength = contentLength;
    this.#blockSize = blockSize;
    // Math.floor of a float quotient is exact here: for a, b < 2^53 a
    // non-integer a / b is at least 1/b away from the next integer, more than
    // the rounding error (a / b) * 2^-53.
    const full = Math.floor(contentLength / blockSize);
    const rest = contentLength - full * blockSize;
    this.#numBlocks = rest === 0 ? full : full + 1;
    this.#lastBlockLength = rest === 0 ? (full === 0 ? 0 : blockSize) : rest;
  }

  /** The file's size in bytes. */
  get contentLength(): number {
    return this.#contentLength;
  }

  /** The size of each block in bytes (the last block may be shorter). */
  get blockSize(): number {
    return this.#blockSize;
  }

  /** How many blocks cover the file: `ceil(contentLength / blockSize)`, 0 for an empty file. */
  get numBlocks(): number {
    return this.#numBlocks;
  }

  /** How many blocks are set. */
  get setCount(): number {
    return this.#bits.size;
  }

  /**
   * How many bytes the set blocks cover. Exact: a set short last block counts
   * only its own bytes.
   */
  get setBytes(): number {
    const count = this.#bits.size;
    if (count === 0) return 0;
    const lastSet = this.#bits.has(this.#numBlocks - 1);
    return count * this.#blockSize - (lastSet ? this.#blockSize - this.#lastBlockLength : 0);
  }

  /** True when every block is set (always true for an empty file). */
  get complete(): boolean {
    return this.#bits.size === this.#numBlocks;
  }

  /**
   * The index of the block holding byte `pos`, or -1 when `pos` is not a
   * whole number from 0 to `contentLength - 1`.
   *
   * @example
   * ```ts
   * new ByteRanges(10, 4).block(9) // 2
   * ```
   */
  block(pos: number): number {
    if (!Number.isSafeInteger(pos) || pos < 0 || pos >= this.#contentLength) return -1;
    return Math.floor(pos / this.#blockSize); // exact: see the constructor
  }

  /**
   * Fills `out` with the inclusive byte range of block `index` and returns
   * `out`; leaves `out` as it was and returns {@link NO_RANGE}-like
   * `{ from: -1, to: -1 }` (a new object) when the index is out of bounds.
   */
  blockRange(index: number, out: ByteRange = { from: -1, to: -1 }): ByteRange {
    if (!this.#inBounds(index)) return { from: -1, to: -1 };
    out.from = index * this.#blockSize;
    out.to = index === this.#numBlocks - 1 ? this.#contentLength - 1 : out.from + this.#blockSize - 1;
    return out;
  }

  /** Marks the block holding byte `pos` as set. No effect when `pos` is out of bounds. */
  set(pos: number): void {
    const index = this.block(pos);
    if (index >= 0) this.setBlock(index);
  }

  /** Marks block `index` as set. No effect when the index is out of bounds. */
  setBlock(index: number): void {
    if (!this.#inBounds(index)) return;
    if (this.#bits.tryAdd(index)) this.blockWasSet(index);
  }

  /** True when the block holding byte `pos` is set; false when `pos` is out of bounds. */
  isSet(pos: number): boolean {
    const index = this.block(pos);
    return index >= 0 && this.#bits.has(index);
  }

  /** True when the block holding byte `pos` is clear; false when `pos` is out of bounds. */
  isClear(pos: number): boolean {
    const index = this.block(pos);
    return index >= 0 && !this.#bits.has(index);
  }

  /** True when block `index` is set; false when the index is out of bounds. */
  isBlockSet(index: number): boolean {
    return this.#inBounds(index) && this.#bits.has(index);
  }

  /**
   * Finds the first clear block at or after block index `start`, fills `out`
   * with its byte range and returns the index to continue from (the found
   * block + 1). Returns -1 and leaves `out` untouched when there is none, or
   * when `start` is not a whole number from 0 to `numBlocks - 1`.
   *
   * Does not look at every bit: a run of set blocks is skipped with a
   * galloping search over `hasRange`, O(log run length) bitmap queries.
   *
   * @example
   * ```ts
   * const br = { from: -1, to: -1 };
   * for (let i = ranges.nextClear(0, br); i !== -1; i = ranges.nextClear(i, br)) fetch(br.from, br.to);
   * ```
   */
  nextClear(start: number, out: ByteRange): number {
    const found = this.nextClearIndex(start);
    if (found < 0) return -1;
    this.blockRange(found, out);
    return found + 1;
  }

  /**
   * As {@link BlockBitmap.nextClear}, for set blocks. Looks at the next few
   * blocks directly, then uses `rank`/`select`: a bounded number of bitmap
   * queries whatever the distance to the next set block.
   */
  nextSet(start: number, out: ByteRange): number {
    const found = this.nextSetIndex(start);
    if (found < 0) return -1;
    this.blockRange(found, out);
    return found + 1;
  }

  /**
   * Yields the byte range of every clear block from block index `start` on,
   * one block at a time (the Go `AllClear`). Use {@link BlockBitmap.clearRuns}
   * to get adjacent blocks merged.
   */
  *allClear(start = 0): Generator<ByteRange, void, undefined> {
    for (let i = this.nextClearIndex(start); i >= 0; i = this.nextClearIndex(i + 1)) {
      yield this.blockRange(i, { from: -1, to: -1 });
    }
  }

  /** As {@link BlockBitmap.allClear}, for set blocks (the Go `AllSet`). */
  *allSet(start = 0): Generator<ByteRange, void, undefined> {
    for (let i = this.nextSetIndex(start); i >= 0; i = this.nextSetIndex(i + 1)) {
      yield this.blockRange(i, { from: -1, to: -1 });
    }
  }

  /**
   * Yields each maximal run of adjacent clear blocks from block index `start`
   * on, as one inclusive byte range: what is still missing, compactly (a
   * downloader coalesces requests with it; `inspect` lists it).
   *
   * @example
   * ```ts
   * const r = new ByteRanges(100, 10);
   * r.setBlock(3);
   * [...r.clearRuns()] // [{ from: 0, to: 29 }, { from: 40, to: 99 }]
   * ```
   */
  *clearRuns(start = 0): Generator<ByteRange, void, undefined> {
    for (let i = this.nextClearIndex(start); i >= 0; ) {
      const end = this.#runEnd(i, false);
      yield this.#bytesOfBlocks(i, end);
      i = this.nextClearIndex(end);
    }
  }

  /** As {@link BlockBitmap.clearRuns}, for runs of set blocks. */
  *setRuns(start = 0): Generator<ByteRange, void, undefined> {
    for (let i = this.nextSetIndex(start); i >= 0; ) {
      const end = this.#runEnd(i, true);
      yield this.#bytesOfBlocks(i, end);
      i = this.nextSetIndex(end);
    }
  }

  /**
   * The bitmap in roaring's portable format (readable by the C, Java and Go
   * implementations), after `runOptimize()` so that runs of blocks cost a few
   * bytes each rather than a bit per block.
   */
  serialize(): Uint8Array {
    this.#bits.runOptimize();
    return this.#bits.serialize('portable');
  }

  /**
   * The index of the first set block at or after `start`, or -1.
   *
   * Looks at the next {@link NEAR_BLOCKS} blocks one by one with `has`, then
   * asks `rank`/`select`, which answer for any distance. Measured in
   * roaring 2.7 at 1 M blocks with a random half set: `has` ~80-190 ns, but
   * `rank` ~4 µs and `select` ~3 µs (popcounts over dense containers), and
   * `rangeCardinality` ~6 µs even for a 2-block range, so rank/select alone
   * made each step of a fragmented walk cost ~7 µs. (`intersectsWithRange`
   * would be the right tool but roaring 2.7's binding drops the last value of
   * the range: `[5].intersectsWithRange(0, 6)` is false.)
   */
  protected nextSetIndex(start: number): number {
    if (!this.#inBounds(start)) return -1;
    const bits = this.#bits;
    const near = Math.min(start + NEAR_BLOCKS, this.#numBlocks);
    for (let i = start; i < near; i++) if (bits.has(i)) return i;
    if (near >= this.#numBlocks) return -1;
    // rank(near - 1) set blocks lie before `near`, so the one of that rank
    // (0-based) is the first at or after it.
    const found = bits.select(bits.rank(near - 1));
    return found === undefined ? -1 : found;
  }

  /** The index of the first clear block at or after `start`, or -1. */
  protected nextClearIndex(start: number): number {
    if (!this.#inBounds(start)) return -1;
    const end = this.#runEnd(start, true);
    return end < this.#numBlocks ? end : -1;
  }

  /**
   * Called once each time a clear block becomes set, after the bit is set.
   * Subclasses override it to keep derived state (the contiguous prefix) in
   * step; the default does nothing.
   */
  protected blockWasSet(_index: number): void {}

  /** Clears block `index` (for variants that allow it). No effect when out of bounds. */
  protected clearBlockBit(index: number): void {
    if (this.#inBounds(index)) this.#bits.delete(index);
  }

  /**
   * Replaces this object's bits with those of `bytes` (as written by
   * {@link BlockBitmap.serialize}). Used by the subclasses' static
   * `deserialize` on a fresh instance.
   *
   * @throws InvalidArgumentError when `bytes` is not a portable roaring bitmap
   *   of exactly that length, or names a block at or past `numBlocks`.
   */
  protected loadSerialized(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) {
      throw new InvalidArgumentError(`serialized bitmap must be a Uint8Array, got ${typeof bytes}`);
    }
    let bits: Bitmap;
    try {
      bits = RoaringBitmap32.deserialize(bytes, 'portable');
    } catch (err) {
      throw new InvalidArgumentError(
        `serialized bitmap (${bytes.length} bytes) is not a roaring portable bitmap`,
        { cause: err },
      );
    }
    // roaring ignores bytes after the bitmap (and reads 0 bytes as empty): a
    // length that does not match is a torn or concatenated record.
    const expected = bits.getSerializationSizeInBytes('portable');
    if (expected !== bytes.length) {
      throw new InvalidArgumentError(
        `serialized bitmap is ${bytes.length} bytes but the bitmap in it takes ${expected}: truncated or trailing data`,
      );
    }
    const last = lastValidatedValue(bits);
    if (last >= this.#numBlocks) {
      throw new InvalidArgumentError(
        `serialized bitmap sets block ${last} but a file of ${this.#contentLength} bytes at blockSize ${this.#blockSize} has only ${this.#numBlocks} blocks`,
      );
    }
    this.#bits = bits;
  }

  /**
   * Sets every block that is set in `other` (for `addAll`).
   *
   * @throws InvalidArgumentError when `other` describes a file of other sizes.
   */
  protected orBitsFrom(other: BlockBitmap): void {
    if (other.#contentLength !== this.#contentLength || other.#blockSize !== this.#blockSize) {
      throw new InvalidArgumentError(
        `cannot add the blocks of a bitmap of ${other.#contentLength} bytes in blocks of ${other.#blockSize} to one of ${this.#contentLength} in blocks of ${this.#blockSize}`,
      );
    }
    this.#bits.orInPlace(other.#bits);
  }

  /** Makes this object's bits a copy of `other`'s (for `clone`). */
  protected copyBitsFrom(other: BlockBitmap): void {
    this.#bits = other.#bits.clone();
  }

  /**
   * The first index at or after `start` (which must be in bounds) whose bit is
   * not `value`, or `numBlocks` when the run reaches the end.
   *
   * For set runs: gallop with `hasRange` (doubling the probe length), then
   * binary-search within the last step, so a run of n blocks costs about
   * 2·log2(n) queries. For clear runs: the next set block
   * ({@link BlockBitmap.nextSetIndex}) ends it.
   */
  #runEnd(start: number, value: boolean): number {
    const n = this.#numBlocks;
    if (!value) {
      const next = this.nextSetIndex(start);
      return next < 0 ? n : next;
    }
    if (!this.#bits.has(start)) return start;
    // Invariant: [start, lo) is all set. Gallop: double the known-set length
    // until a probe fails or reaches the end; testing only [lo, probe) since
    // [start, lo) is already known to be set.
    let lo = start + 1;
    let hi = lo;
    while (lo < n) {
      const probe = Math.min(start + 2 * (lo - start), n);
      if (!this.#bits.hasRange(lo, probe)) {
        hi = probe;
        break;
      }
      lo = probe;
    }
    if (lo >= n) return n;
    // Now [start, hi) is not all set: the first clear block is in [lo, hi).
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (this.#bits.hasRange(lo, mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** The inclusive byte range of blocks `first` up to (not including) `end`. */
  #bytesOfBlocks(first: number, end: number): ByteRange {
    const to = end >= this.#numBlocks ? this.#contentLength - 1 : end * this.#blockSize - 1;
    return { from: first * this.#blockSize, to };
  }

  #inBounds(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.#numBlocks;
  }
}

/**
 * How many blocks {@link BlockBitmap} checks one by one for the next set
 * block before it asks rank/select: 16 `has` calls cost about what one
 * rank/select pair does on a dense container.
 */
const NEAR_BLOCKS = 16;

/** Values read per call while validating: 256 KiB of buffer, few native calls. */
const VALIDATE_PAGE = 65_536;

/**
 * Checks that a freshly deserialized bitmap is internally consistent and
 * returns its largest value (-1 when empty).
 *
 * roaring's "safe" portable deserializer only guards against reading past the
 * buffer: it accepts containers whose values are unsorted, duplicated or
 * overlapping, and the native binding does not expose CRoaring's
 * `roaring_bitmap_internal_validate`. rank/select/hasRange on such a bitmap
 * give inconsistent answers, and a search built on them can loop forever. So
 * every value is read back once, in pages, and must be strictly increasing,
 * and their count must match the cardinality the containers claim. This costs
 * O(set blocks): about 60 ms for 16 M set blocks on the development machine,
 * paid once per load.
 */
function lastValidatedValue(bits: Bitmap): number {
  const expected = bits.size;
  const page = new Uint32Array(Math.min(VALIDATE_PAGE, Math.max(expected, 1)));
  let previous = -1;
  let count = 0;
  while (count < expected) {
    const values = bits.rangeUint32Array(page, count, page.length);
    if (values.length === 0) break;
    for (let i = 0; i < values.length; i++) {
      const value = values[i] as number;
      if (value <= previous) {
        throw new InvalidArgumentError(
          `serialized bitmap is corrupt: block ${value} follows block ${previous} (values must be strictly increasing)`,
        );
      }
      previous = value;
    }
    count += values.length;
  }
  if (count !== expected) {
    throw new InvalidArgumentError(`serialized bitmap is corrupt: it claims ${expected} set blocks but holds ${count}`);
  }
  return previous;
}
