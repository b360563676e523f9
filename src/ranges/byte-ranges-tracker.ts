/**
 * {@link ByteRangesTracker}: a block bitmap whose blocks can be cleared again.
 *
 * @module
 */
import { BlockBitmap } from './block-bitmap.js';

/**
 * The cheaper sibling of {@link ByteRanges}: the same block API (byte
 * positions for `set`/`isSet`/`isClear`, block indices for `setBlock`,
 * `nextClear`, `nextSet`, the runs and counts, serialization) plus
 * {@link ByteRangesTracker.clear} and {@link ByteRangesTracker.clearBlock},
 * and without the contiguous-prefix tracking (no `tail`, no `notify`), so
 * setting a block never does more than set a bit. Use it for bookkeeping that
 * can go back, such as the blocks currently in flight.
 *
 * @example
 * ```ts
 * const inFlight = new ByteRangesTracker(1 << 20, 65_536);
 * inFlight.setBlock(3);
 * inFlight.isSet(3 * 65_536);   // true
 * inFlight.clearBlock(3);
 * inFlight.setCount;            // 0
 * ```
 */
export class ByteRangesTracker extends BlockBitmap {
  /**
   * Reads back what {@link BlockBitmap.serialize} wrote, for a file of the
   * given sizes.
   *
   * @throws InvalidArgumentError when the sizes are invalid, the bytes are
   *   not a roaring portable bitmap of exactly that length, or a set block
   *   lies at or past `numBlocks`.
   */
  static deserialize(bytes: Uint8Array, contentLength: number, blockSize: number): ByteRangesTracker {
    const tracker = new ByteRangesTracker(contentLength, blockSize);
    tracker.loadSerialized(bytes);
    return tracker;
  }

  /** An independent copy: same sizes, same set blocks. */
  clone(): ByteRangesTracker {
    const copy = new ByteRangesTracker(this.contentLength, this.blockSize);
    copy.copyBitsFrom(this);
    return copy;
  }

  /** Clears the block holding byte `pos`. No effect when `pos` is out of bounds. */
  clear(pos: number): void {
    const index = this.block(pos);
    if (index >= 0) this.clearBlockBit(index);
  }

  /** Clears block `index`. No effect when the index is out of bounds. */
  clearBlock(index: number): void {
    this.clearBlockBit(index);
  }
}
