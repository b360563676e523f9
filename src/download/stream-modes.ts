/**
 * The two ways a StreamingDownloader gets its bytes in order, behind one
 * interface: the windowed mode (parallel ranged requests through the
 * reorder buffer) and the single-stream mode (one sequential request, paced
 * by the consumer). The downloader creates one, once it knows the
 * `ContentInfo`; everything else (start, events, digest, revalidation,
 * cancellation) is shared and lives in `streaming-downloader.ts`.
 *
 * Both fetch through the {@link AttemptEngine}, which retries, resumes and
 * checks body lengths; a mode only says where the bytes go.
 *
 * @module
 */
import { RemoteChangedError } from '../errors.js';
import { numBlocks, rangeForIndex } from '../ranges/byte-range.js';
import { blockKey, type AttemptEngine, type BodySink } from './attempts.js';
import type { ContentInfo } from './reader.js';
import { ReorderBuffer } from './reorder-buffer.js';
import type { StatsRecorder } from './stats.js';
import type { StreamingStatus } from './streaming-options.js';

/** What a mode needs of the download it serves. */
export interface StreamContext {
  readonly engine: AttemptEngine;
  readonly stats: StatsRecorder;
  readonly info: ContentInfo;
  readonly blockSize: number;
  /** Runs work that may hold a request open; the download settles only once all of it has. */
  track(work: Promise<void>): void;
  /** Ends the whole stream at once with `error` (a changed remote, a bug). */
  cancel(error: Error): void;
  /** The error the stream already ended with, if it did. */
  failure(): Error | undefined;
}

/** The memory and ordering counters a mode reports into `StreamingStatus`. */
export type StreamCounters = Pick<
  StreamingStatus,
  'concurrency' | 'window' | 'outOfOrder' | 'maxOutOfOrder' | 'bufferedBytes' | 'maxBufferedBytes' | 'memoryBound'
>;

/** One way of getting the bytes in order. */
export interface StreamMode {
  readonly name: 'windowed' | 'single';
  /**
   * The next in-order chunk, or null once every byte was handed out. Rejects
   * with the error the stream must end with (having delivered every byte
   * before the failure). One call at a time.
   */
  next(): Promise<Uint8Array | null>;
  /** Ends every request and drops every buffered byte; wakes a waiting `next`. */
  cancel(error: Error): void;
  counters(): StreamCounters;
  /**
   * The consumer is done with `chunk`, one `next` returned: its memory may
   * be reused. Only a mode made with recycling (a consumer that says when
   * each write finished: `pipeTo`) reuses anything; for the others this
   * does nothing.
   */
  release(chunk: Uint8Array): void;
}

/** Wakes the one consumer waiting for something new. */
class Wakeup {
  #resolve: (() => void) | undefined;
  #promise: Promise<void> | undefined;

  wait(): Promise<void> {
    return (this.#promise ??= new Promise<void>((resolve) => (this.#resolve = resolve)));
  }

  notify(): void {
    const resolve = this.#resolve;
    this.#promise = undefined;
    this.#resolve = undefined;
    resolve?.();
  }
}

/** The most block buffers a windowed stream keeps for reuse beyond its window. */
const SPARE_BLOCK_BUFFERS = 4;

/**
 * One block's buffer in a recycling windowed stream: lent chunks are copied
 * into it at their place, and it is reused once the consumer took every
 * chunk of the block and released each.
 */
interface BlockCopy {
  readonly buffer: Buffer;
  /** Chunks of it handed to the consumer and not yet released. */
  outstanding: number;
  /** True once the consumer took the block's last chunk (the head moved past it). */
  taken: boolean;
}

/**
 * Parallel ranged requests, one per block, emitted in order through a
 * {@link ReorderBuffer}.
 *
 * Blocks are requested in index order while the concurrency limit and the
 * window allow. The window check (in `ReorderBuffer.canOpen`) is what bounds
 * memory: a block is never requested until the block `window` places
 * before it has been handed to the consumer.
 */
export class WindowedMode implements StreamMode {
  readonly name = 'windowed';
  readonly #ctx: StreamContext;
  readonly #concurrency: number;
  readonly #window: number;
  readonly #buffer: ReorderBuffer;
  /** Blocks with a request (or its backoff) under way, each with the controller that stops it alone. */
  readonly #blocks = new Map<number, AbortController>();
  readonly #wakeup = new Wakeup();
  /** The first block that failed for good, and why: bytes before it are still delivered. */
  #fatal: { readonly index: number; readonly error: Error } | undefined;
  /**
   * With recycling: each open block's buffer, by index. The Reader lends
   * its chunks (`ReadOptions.lend`), they are copied here, and a block's
   * buffer is reused once the consumer released every chunk of it, so a
   * stream into a slow consumer does not leave a new buffer per socket read
   * for the collector.
   */
  readonly #copies: Map<number, BlockCopy> | undefined;
  /** Block buffers ready for reuse. */
  readonly #spare: Buffer[] = [];
  /** With recycling: the block of each chunk in the reorder buffer or handed out and not yet released. */
  readonly #blockOf = new Map<Uint8Array, number>();

  /**
   * @param recycle copy lent chunks into block buffers that are reused once
   *   the consumer {@link WindowedMode.release}s their chunks; only for a
   *   consumer that releases every chunk it took
   */
  constructor(ctx: StreamContext, concurrency: number, window: number, recycle = false) {
    this.#ctx = ctx;
    this.#concurrency = concurrency;
    this.#window = window;
    this.#buffer = new ReorderBuffer(numBlocks(ctx.info.contentLength, ctx.blockSize), window);
    this.#copies = recycle ? new Map() : undefined;
    this.#schedule();
  }

  async next(): Promise<Uint8Array | null> {
    const buffer = this.#buffer;
    const { stats, blockSize, info } = this.#ctx;
    for (;;) {
      const failure = this.#ctx.failure();
      if (failure !== undefined) throw failure;
      const headBefore = buffer.head;
      const chunk = buffer.take();
      if (chunk !== undefined) this.#handedOut(chunk);
      if (buffer.head !== headBefore) {
        for (let i = headBefore; i < buffer.head; i++) {
          stats.blockDone(Math.min(blockSize, info.contentLength - i * blockSize));
          this.#taken(i);
        }
        // The window moved: more blocks may start.
        this.#schedule();
      }
      if (chunk !== undefined) return chunk;
      if (buffer.ended()) return null;
      const fatal = this.#fatal;
      if (fatal !== undefined && buffer.head === fatal.index) {
        // Every byte before the failure was delivered: now the error.
        this.#ctx.cancel(fatal.error);
        throw fatal.error;
      }
      await this.#wakeup.wait();
    }
  }

  cancel(error: Error): void {
    for (const controller of this.#blocks.values()) controller.abort(error);
    this.#buffer.clear();
    // Chunks handed out may still be written: their buffers are not reused.
    this.#copies?.clear();
    this.#blockOf.clear();
    this.#spare.length = 0;
    this.#wakeup.notify();
  }

  release(chunk: Uint8Array): void {
    const copies = this.#copies;
    if (copies === undefined) return;
    const index = this.#blockOf.get(chunk);
    if (index === undefined) return;
    this.#blockOf.delete(chunk);
    const copy = copies.get(index);
    if (copy === undefined) return;
    copy.outstanding--;
    this.#reuseIfDone(index, copy);
  }

  /** `chunk` leaves the reorder buffer for the consumer. */
  #handedOut(chunk: Uint8Array): void {
    const copies = this.#copies;
    if (copies === undefined) return; // not recycling: nothing to count, no lookup per chunk
    const index = this.#blockOf.get(chunk);
    const copy = index === undefined ? undefined : copies.get(index);
    if (copy !== undefined) copy.outstanding++;
  }

  /** The consumer took the last chunk of block `index`. */
  #taken(index: number): void {
    const copy = this.#copies?.get(index);
    if (copy === undefined) return;
    copy.taken = true;
    this.#reuseIfDone(index, copy);
  }

  #reuseIfDone(index: number, copy: BlockCopy): void {
    if (!copy.taken || copy.outstanding > 0) return;
    this.#copies?.delete(index);
    if (this.#spare.length < SPARE_BLOCK_BUFFERS) this.#spare.push(copy.buffer);
  }

  /** Copies lent `chunk` (the bytes from `offset`) into block `index`'s buffer; the copy's view, to keep. */
  #copyIn(copies: Map<number, BlockCopy>, index: number, chunk: Uint8Array, offset: number): Uint8Array {
    const { blockSize } = this.#ctx;
    let copy = copies.get(index);
    if (copy === undefined) {
      copy = { buffer: this.#spare.pop() ?? Buffer.allocUnsafeSlow(blockSize), outstanding: 0, taken: false };
      copies.set(index, copy);
    }
    const at = offset - index * blockSize;
    copy.buffer.set(chunk, at);
    const view = copy.buffer.subarray(at, at + chunk.byteLength);
    this.#blockOf.set(view, index);
    return view;
  }

  counters(): StreamCounters {
    const b = this.#buffer;
    return {
      concurrency: this.#concurrency,
      window: this.#window,
      outOfOrder: b.outOfOrder,
      maxOutOfOrder: b.maxOutOfOrder,
      bufferedBytes: b.bufferedBytes,
      maxBufferedBytes: b.maxBufferedBytes,
      memoryBound: this.#window * this.#ctx.blockSize,
    };
  }

  #schedule(): void {
    const buffer = this.#buffer;
    const ctx = this.#ctx;
    while (ctx.failure() === undefined && this.#fatal === undefined && this.#blocks.size < this.#concurrency && buffer.canOpen()) {
      const index = buffer.open();
      const controller = new AbortController();
      this.#blocks.set(index, controller);
      const task = this.#fetchBlock(index, controller.signal)
        // #fetchBlock handles its own failures; anything else is a bug, and
        // must end the stream rather than become an unhandled rejection.
        .catch((err: unknown) => ctx.cancel(toError(err)))
        .finally(() => {
          this.#blocks.delete(index);
          this.#schedule();
          this.#wakeup.notify();
        });
      ctx.track(task);
    }
  }

  /**
   * Fetches one block until it is whole or fails for good. The engine
   * re-requests it from its first byte not yet received: the bytes received
   * so far are of the same pinned revision, so they are kept (and may
   * already have been emitted, if this is the head block).
   */
  async #fetchBlock(index: number, signal: AbortSignal): Promise<void> {
    const buffer = this.#buffer;
    const copies = this.#copies;
    const sink: BodySink = {
      copiesChunks: copies !== undefined,
      // No promise returned: the engine does not wait per chunk.
      write: (chunk, offset) => {
        if (chunk.byteLength === 0) return;
        buffer.append(index, copies === undefined ? chunk : this.#copyIn(copies, index, chunk, offset));
        if (index === buffer.head) this.#wakeup.notify();
      },
      end: () => {
        buffer.finish(index);
        this.#wakeup.notify();
      },
    };
    try {
      await this.#ctx.engine.fetch(blockKey(index), rangeForIndex(index, this.#ctx.info.contentLength, this.#ctx.blockSize), sink, signal);
    } catch (err) {
      if (signal.aborted) return;
      // Never mixed bytes: no further byte of this stream may be emitted.
      if (err instanceof RemoteChangedError) this.#ctx.cancel(err);
      else this.#failBlock(index, toError(err));
    }
  }

  /**
   * Block `index` failed for good: stop everything after it, deliver what
   * came before it, then error. An earlier block failing later wins.
   */
  #failBlock(index: number, error: Error): void {
    if (this.#fatal !== undefined && this.#fatal.index <= index) return;
    this.#fatal = { index, error };
    for (const [i, controller] of this.#blocks) if (i > index) controller.abort(error);
    this.#buffer.dropAfter(index);
    this.#wakeup.notify();
  }
}

/**
 * One sequential request for the whole object, paced by the consumer: the
 * engine reads the next chunk only once the consumer took the last one, so
 * the mode holds at most one chunk. After a failure the engine re-opens the
 * body from the first byte not yet handed on when the remote serves ranges,
 * else from byte 0 (the bytes already handed on are skipped).
 */
export class SingleMode implements StreamMode, BodySink {
  readonly name = 'single';
  readonly #ctx: StreamContext;
  readonly #controller = new AbortController();
  readonly #wakeup = new Wakeup();
  #started = false;
  /** True once the engine's fetch resolved: every byte is in. */
  #finished = false;
  /** The chunk waiting for the consumer, and the engine waiting for it to be taken. */
  #slot: { readonly chunk: Uint8Array; readonly taken: () => void } | undefined;
  /** The last chunk, held back until the body ended by itself. */
  #last: Uint8Array | undefined;
  /** Bytes accepted from the body: handed on, in the slot, or held back. */
  #accepted = 0;
  /** `#accepted` when the engine last asked about progress. */
  #acceptedBefore = 0;
  /** Bytes handed to the consumer, for counting blocks done. */
  #delivered = 0;
  #maxChunk = 0;

  constructor(ctx: StreamContext) {
    this.#ctx = ctx;
  }

  async next(): Promise<Uint8Array | null> {
    if (this.#ctx.info.contentLength === 0) return null;
    if (!this.#started) {
      // Opened on the first read, not before: with no consumer, no request.
      this.#started = true;
      this.#ctx.track(this.#run());
    }
    for (;;) {
      const failure = this.#ctx.failure();
      if (failure !== undefined) throw failure;
      const slot = this.#slot;
      if (slot !== undefined) {
        this.#slot = undefined;
        slot.taken();
        this.#countBlocks(slot.chunk.byteLength);
        return slot.chunk;
      }
      if (this.#finished) return null;
      await this.#wakeup.wait();
    }
  }

  cancel(error: Error): void {
    this.#controller.abort(error);
    this.#last = undefined;
    // Let an engine waiting for the consumer go: it sees the abort next.
    this.#slot?.taken();
    this.#slot = undefined;
    this.#wakeup.notify();
  }

  /** Nothing to reuse: the chunks are the Reader's own, handed on as they came. */
  release(): void {}

  counters(): StreamCounters {
    return {
      concurrency: 1,
      window: 1,
      outOfOrder: 0,
      maxOutOfOrder: 0,
      bufferedBytes: 0,
      maxBufferedBytes: this.#maxChunk,
      memoryBound: this.#maxChunk,
    };
  }

  // ---- BodySink: how the engine hands over the one body's bytes

  write(chunk: Uint8Array, offset: number): void | Promise<void> {
    let piece = chunk;
    // A restart from byte 0 sends again what was already accepted.
    if (offset < this.#accepted) {
      const skip = this.#accepted - offset;
      if (skip >= piece.byteLength) return undefined;
      piece = piece.subarray(skip);
    }
    this.#accepted += piece.byteLength;
    if (piece.byteLength > this.#maxChunk) this.#maxChunk = piece.byteLength;
    if (this.#accepted === this.#ctx.info.contentLength) {
      // Let the body end by itself before the last chunk goes out, so the
      // Reader's end-of-body checks (a FileReader re-checks the file's
      // identity there) run before the stream can end cleanly.
      this.#last = piece;
      return undefined;
    }
    return new Promise<void>((taken) => {
      this.#slot = { chunk: piece, taken };
      this.#wakeup.notify();
    });
  }

  end(): void {
    const last = this.#last;
    this.#last = undefined;
    if (last !== undefined) this.#slot = { chunk: last, taken: () => undefined };
    this.#wakeup.notify();
  }

  resumeAt(position: number, overran: boolean): number {
    const last = this.#last;
    if (overran && last !== undefined) {
      // The body ran long after what looked like its last chunk: that chunk
      // was never handed on, so it is fetched again rather than trusted.
      this.#accepted -= last.byteLength;
      this.#last = undefined;
    }
    if (this.#ctx.info.rangesSupported) return this.#accepted;
    return this.#accepted === this.#ctx.info.contentLength ? position : 0;
  }

  progressed(): boolean {
    const progressed = this.#accepted > this.#acceptedBefore;
    this.#acceptedBefore = this.#accepted;
    return progressed;
  }

  async #run(): Promise<void> {
    const size = this.#ctx.info.contentLength;
    try {
      await this.#ctx.engine.fetch(blockKey(0), { from: 0, to: size - 1 }, this, this.#controller.signal);
      this.#finished = true;
    } catch (err) {
      // Everything before the failure was already handed on.
      if (!this.#controller.signal.aborted) this.#ctx.cancel(toError(err));
    } finally {
      this.#wakeup.notify();
    }
  }

  /** Counts the blocks whose last byte was just handed on. */
  #countBlocks(bytes: number): void {
    const { stats, blockSize, info } = this.#ctx;
    const size = info.contentLength;
    const before = this.#delivered;
    const after = (this.#delivered += bytes);
    const doneBefore = before === size ? numBlocks(size, blockSize) : Math.floor(before / blockSize);
    const doneAfter = after === size ? numBlocks(size, blockSize) : Math.floor(after / blockSize);
    for (let i = doneBefore; i < doneAfter; i++) stats.blockDone(Math.min(blockSize, size - i * blockSize));
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
