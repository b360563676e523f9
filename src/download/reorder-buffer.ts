/**
 * The bounded reorder buffer behind the {@link StreamingDownloader}: blocks
 * arrive in any order from parallel requests and leave in file order.
 *
 * No I/O happens here; this module only keeps the bookkeeping that the memory
 * bound rests on, so that it can be read (and tested) on its own:
 *
 * - Blocks are opened strictly in index order, and block `i` may be opened
 *   only while `i < head + window`, where `head` is the first block not yet
 *   fully handed to the consumer. So at most `window` blocks are ever open
 *   (in flight or buffered), and since a block holds at most `blockSize`
 *   bytes, {@link ReorderBuffer.bufferedBytes} never exceeds
 *   `window × blockSize`.
 * - Bytes leave through {@link ReorderBuffer.take} in file order only; the
 *   head block's bytes can leave while the rest of it is still arriving.
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js';

/** One open block: its bytes received so far, and whether all have arrived. */
interface Slot {
  /** Chunks received and not yet taken, in order, from `readPos` on. */
  readonly chunks: (Uint8Array | undefined)[];
  /** Index of the next chunk to take (taken ones are set to undefined so they can be collected). */
  readPos: number;
  /** True once every byte of the block has arrived. */
  done: boolean;
}

/**
 * Holds the blocks of one streaming download between their arrival and the
 * moment the consumer takes them, in order, inside a window of at most
 * `window` blocks.
 *
 * @example
 * ```ts
 * const rb = new ReorderBuffer(3, 2);      // 3 blocks, at most 2 open at once
 * const a = rb.open(), b = rb.open();      // 0, 1; rb.canOpen() is now false
 * rb.append(b, new Uint8Array([2])); rb.finish(b); // block 1 arrived first: out of order
 * rb.take();                               // undefined: block 0 has nothing yet
 * rb.append(a, new Uint8Array([1])); rb.finish(a);
 * rb.take(); rb.take();                    // [1], then [2]; block 2 may now be opened
 * ```
 */
export class ReorderBuffer {
  /** How many blocks the object has. */
  readonly blockCount: number;
  /** The most blocks open (in flight or buffered) at once. */
  readonly window: number;

  readonly #slots = new Map<number, Slot>();
  #head = 0;
  #nextToOpen = 0;
  #firstUnfinished = 0;
  #waiting = 0;
  #outOfOrder = 0;
  #maxOutOfOrder = 0;
  #bufferedBytes = 0;
  #maxBufferedBytes = 0;

  /**
   * @param blockCount the number of blocks of the object (0 for an empty one)
   * @param window the most blocks that may be open at once, at least 1
   */
  constructor(blockCount: number, window: number) {
    if (!Number.isSafeInteger(blockCount) || blockCount < 0) {
      throw new InvalidArgumentError(`blockCount must be a whole number >= 0, got ${String(blockCount)} (${typeof blockCount})`);
    }
    if (!Number.isSafeInteger(window) || window < 1) {
      throw new InvalidArgumentError(`window must be a whole number >= 1, got ${String(window)} (${typeof window})`);
    }
    this.blockCount = blockCount;
    this.window = window;
  }

  /** The first block not yet fully taken; `blockCount` once everything was. */
  get head(): number {
    return this.#head;
  }

  /** The next block {@link ReorderBuffer.open} would open. */
  get nextToOpen(): number {
    return this.#nextToOpen;
  }

  /** Bytes received and not yet taken, across all open blocks. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** The largest {@link ReorderBuffer.bufferedBytes} seen so far. */
  get maxBufferedBytes(): number {
    return this.#maxBufferedBytes;
  }

  /**
   * Distinct blocks that finished arriving while an earlier block had not,
   * so they could not be emitted when they arrived.
   */
  get outOfOrder(): number {
    return this.#outOfOrder;
  }

  /** The most such out-of-order blocks that were waiting at any one time. */
  get maxOutOfOrder(): number {
    return this.#maxOutOfOrder;
  }

  /** Blocks opened and not yet fully taken (never more than `window`). */
  get openBlocks(): number {
    return this.#nextToOpen - this.#head;
  }

  /** True when another block exists and the window has room for it. */
  canOpen(): boolean {
    return this.#nextToOpen < this.blockCount && this.#nextToOpen < this.#head + this.window;
  }

  /**
   * Opens the next block in index order and returns its index. Throws if
   * {@link ReorderBuffer.canOpen} is false: opening past the window is the
   * one thing that would break the memory bound.
   */
  open(): number {
    if (!this.canOpen()) {
      throw new RangeError(`ReorderBuffer.open: block ${this.#nextToOpen} is outside the window (head ${this.#head}, window ${this.window}, ${this.blockCount} blocks)`);
    }
    const index = this.#nextToOpen++;
    this.#slots.set(index, { chunks: [], readPos: 0, done: false });
    return index;
  }

  /**
   * Adds bytes that arrived for open block `index`, after those it already
   * has. The caller keeps each block to its length; ignored for a block that
   * was dropped (a late chunk after an abort).
   */
  append(index: number, chunk: Uint8Array): void {
    const slot = this.#slots.get(index);
    if (slot === undefined || slot.done || chunk.byteLength === 0) return;
    slot.chunks.push(chunk);
    this.#bufferedBytes += chunk.byteLength;
    if (this.#bufferedBytes > this.#maxBufferedBytes) this.#maxBufferedBytes = this.#bufferedBytes;
  }

  /** Marks open block `index` as complete: every byte of it has arrived. */
  finish(index: number): void {
    const slot = this.#slots.get(index);
    if (slot === undefined || slot.done) return;
    slot.done = true;
    if (index > this.#firstUnfinished) {
      // An earlier block is still arriving: this one must wait for it.
      this.#outOfOrder++;
      this.#waiting++;
      if (this.#waiting > this.#maxOutOfOrder) this.#maxOutOfOrder = this.#waiting;
      return;
    }
    // The earliest unfinished block finished: the blocks behind it that were
    // waiting for it are in order now.
    this.#firstUnfinished++;
    while (this.#slots.get(this.#firstUnfinished)?.done === true) {
      this.#firstUnfinished++;
      this.#waiting--;
    }
  }

  /**
   * The next chunk in file order, or undefined when the head block has no
   * bytes ready yet (or everything was taken). Taking the last chunk of a
   * finished block moves the head on, which makes room in the window.
   */
  take(): Uint8Array | undefined {
    for (;;) {
      const slot = this.#slots.get(this.#head);
      if (slot === undefined) return undefined;
      if (slot.readPos < slot.chunks.length) {
        const chunk = slot.chunks[slot.readPos] as Uint8Array;
        slot.chunks[slot.readPos++] = undefined;
        this.#bufferedBytes -= chunk.byteLength;
        // The last chunk of a finished block: free its window place now.
        if (slot.done && slot.readPos === slot.chunks.length) this.#advance();
        return chunk;
      }
      if (!slot.done) return undefined;
      this.#advance(); // a finished block whose last chunk was already taken
    }
  }

  /** Drops the (finished, fully taken) head block and moves the head on. */
  #advance(): void {
    this.#slots.delete(this.#head);
    this.#head++;
  }

  /** True when every block was taken: the object has been emitted whole. */
  ended(): boolean {
    return this.#head >= this.blockCount;
  }

  /**
   * Drops every open block after `index` and their bytes, and opens no block
   * after it again: used when block `index` failed for good, so only the
   * bytes before the failure are still delivered.
   */
  dropAfter(index: number): void {
    for (const [i, slot] of this.#slots) {
      if (i > index) this.#release(i, slot);
    }
    if (this.#nextToOpen > index + 1) this.#nextToOpen = index + 1;
  }

  /** Drops every open block and its bytes (abort, or a fatal error). */
  clear(): void {
    for (const [i, slot] of this.#slots) this.#release(i, slot);
  }

  #release(index: number, slot: Slot): void {
    if (slot.done && index > this.#firstUnfinished) this.#waiting--;
    for (let i = slot.readPos; i < slot.chunks.length; i++) this.#bufferedBytes -= slot.chunks[i]?.byteLength ?? 0;
    slot.chunks.length = 0;
    slot.readPos = 0;
    this.#slots.delete(index);
  }
}
