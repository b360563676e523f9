/**
 * The StreamingDownloader: parallel ranged reads of one object, emitted as a
 * single in-order byte stream with bounded memory.
 *
 * See `docs/streaming.md` for the design and the memory bound.
 *
 * @module
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExpectedDigest } from '../cache/types.js';
import {
  AbortedError,
  BlockfetchError,
  InvalidArgumentError,
  RetriesExhaustedError,
  hasCode,
  retryResponseOf,
} from '../errors.js';
import { numBlocks, rangeForIndex, validateSizes } from '../ranges/byte-range.js';
import { RetryBudget, resolveRetryOptions, sleep, type RetryOptions } from './backoff.js';
import { InOrderDigest, chooseDigest, type DigestResult } from './digest.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ContentInfo, Reader } from './reader.js';
import { ReorderBuffer } from './reorder-buffer.js';
import { StatsRecorder, type DownloadStats } from './stats.js';

/** The options of a {@link StreamingDownloader}. */
export interface StreamingDownloaderOptions {
  /**
   * Ranged requests in flight at once. 1 streams the object with a single
   * `getReader(0, size - 1)` request and no reordering at all, as does a
   * Reader whose `ContentInfo` says ranges are not supported or requests
   * cannot be pinned to one revision (`pinned: false`).
   * @default 4
   */
  readonly concurrency?: number;
  /**
   * The most blocks that may be in flight or buffered ahead of the consumer
   * at once, at least `concurrency`. Peak buffered data is at most
   * `window × blockSize` bytes (see {@link StreamingDownloader}).
   * @default 2 × concurrency
   */
  readonly window?: number;
  /**
   * Bytes per ranged request. Smaller blocks lower the memory bound;
   * larger ones mean fewer requests.
   * @default the Reader's preferred `ContentInfo.blockSize`
   */
  readonly blockSize?: number;
  /** Retry limits and backoff timing, shared with the CachingDownloader. @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /**
   * The digest the whole object must have; wins over `reader.digest()`
   * (read once the Reader has looked at the remote). When either is known,
   * the stream errors with a `DigestMismatchError` instead of ending if the
   * bytes emitted do not match.
   * @default reader.digest()
   */
  readonly expectedDigest?: ExpectedDigest;
  /**
   * Whether to hash the emitted bytes when there is no digest to verify
   * (with sha256; reported in {@link StreamingStatus.digest}). An expected
   * digest (the caller's or the reader's) is always verified, whatever this
   * says. Off by default, as in the CachingDownloader: hashing is CPU the
   * download competes for, and it verifies nothing without a digest.
   * @default false
   */
  readonly computeDigest?: boolean;
  /**
   * A rate limiter (shareable between downloads): every request waits for
   * `takeRequest` and every chunk for `takeBytes` before it is buffered.
   * @default undefined (no limit)
   */
  readonly rateLimiter?: RateLimiter;
  /** Aborting it stops every request and releases every buffer; the stream errors with an `AbortedError`. */
  readonly signal?: AbortSignal;
}

/** The defaults of {@link StreamingDownloaderOptions}; `window` defaults to `2 × concurrency`. */
export const defaultStreamingOptions = Object.freeze({
  concurrency: 4,
  windowPerConcurrency: 2,
  computeDigest: false,
});

/**
 * What a {@link StreamingDownloader} did, at any moment or at the end: the
 * shared {@link DownloadStats} (a block is "done" once it was delivered to
 * the consumer whole, in order; `receivedBytes` counts every byte the Reader
 * gave, re-fetched ones included) plus what only a stream has.
 */
export interface StreamingStatus extends DownloadStats {
  /** `'windowed'` (parallel ranged reads) or `'single'` (one sequential request); undefined until the Reader was asked. */
  readonly mode: 'windowed' | 'single' | undefined;
  /** Requests in flight at once, at most (1 in single-stream mode). */
  readonly concurrency: number;
  /** Blocks in flight or buffered ahead of the consumer, at most. */
  readonly window: number;
  /** Distinct blocks that finished arriving while an earlier block had not, so could not be emitted yet. */
  readonly outOfOrder: number;
  /** The most such out-of-order blocks waiting at any one time. */
  readonly maxOutOfOrder: number;
  /** Bytes received and not yet handed to the consumer, now. */
  readonly bufferedBytes: number;
  /** The most bytes buffered at once; never more than {@link StreamingStatus.memoryBound}. */
  readonly maxBufferedBytes: number;
  /**
   * The bound on buffered bytes: `window × blockSize` in windowed mode; in
   * single-stream mode the largest chunk the Reader yielded (the only one
   * held). 0 until the Reader was asked.
   */
  readonly memoryBound: number;
  /** The digest of the bytes streamed, once the stream ended, if one was computed. */
  readonly digest: DigestResult | undefined;
  /** Milliseconds from the start to the end (or to now while running). */
  readonly durationMs: number;
  /** True once every byte was handed to the consumer and the digest (if any) matched. */
  readonly complete: boolean;
}

/** One block with a request (or its backoff) under way. */
interface Block {
  readonly index: number;
  readonly from: number;
  readonly to: number;
  /** Bytes of this block received so far (and kept): a retry asks for the rest. */
  received: number;
  /** Aborts this block's request and backoff alone (when a block before it failed for good). */
  readonly controller: AbortController;
}

/** A promise with its settle functions exposed. */
interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Downloads one object through any {@link Reader} with parallel ranged
 * requests and emits its bytes strictly in order, as a Node `Readable`
 * ({@link StreamingDownloader.readable}), as an async iterable of chunks, or
 * piped into a `Writable` ({@link StreamingDownloader.pipeTo}).
 *
 * **Memory bound.** Blocks are requested in index order and block `i` is
 * requested only while `i < head + window`, where `head` is the first block
 * not yet fully handed to the consumer. So at most `window` blocks
 * (default `2 × concurrency`) are in flight or buffered at once, and the
 * bytes received but not yet handed to the consumer never exceed
 * `window × blockSize`, whatever the object's size and however slow the
 * consumer or any one request is: a stuck first block stops new requests
 * instead of filling memory. (The `readable` adds its own queue on top: less
 * than its `highWaterMark` plus one chunk.) In single-stream mode the
 * downloader holds only the one chunk the Reader last yielded. Chunks are
 * passed on without copying, so a Reader must not reuse a chunk's memory
 * after yielding it.
 *
 * **Failures.** A failed block is retried after the shared backoff
 * (`RetryBudget`), resuming from the first byte it had not yet received:
 * bytes already received are kept and nothing is emitted twice. When a
 * block fails for good (retries exhausted: `RetriesExhaustedError` with the
 * last failure as `cause`; or a non-retryable error, passed on as is), every
 * byte before it is still delivered, then the stream errors. A
 * `RemoteChangedError` errors the stream at once: no byte of another
 * revision is ever emitted (pinning itself is the Reader's job). The bytes
 * are hashed in order on the way out; if an expected digest is known and
 * does not match, the stream errors with a `DigestMismatchError` instead of
 * ending.
 *
 * **Abort.** The `signal` option, `pipeTo`'s signal, leaving a `for await`
 * early or destroying `readable` abort every request and backoff and drop
 * every buffered byte; the stream errors with an `AbortedError`.
 *
 * **Single use.** The bytes are streamed once: use one of `readable`,
 * iteration or `pipeTo`.
 *
 * @example
 * ```ts
 * const dl = new StreamingDownloader(reader, { concurrency: 8 });
 * const status = await dl.pipeTo(createWriteStream('out.bin'));
 * console.log(status.downloadedBytes, status.maxOutOfOrder, status.maxBufferedBytes <= status.memoryBound);
 *
 * // or
 * for await (const chunk of new StreamingDownloader(reader)) hash.update(chunk);
 * ```
 */
export class StreamingDownloader implements AsyncIterable<Uint8Array> {
  readonly #reader: Reader;
  readonly #concurrency: number;
  readonly #window: number;
  readonly #blockSizeOption: number | undefined;
  readonly #budget: RetryBudget;
  readonly #expectedOption: ExpectedDigest | undefined;
  readonly #computeDigest: boolean;
  readonly #limiter: RateLimiter | undefined;
  readonly #signal: AbortSignal | undefined;

  /** Settles when the download ended and no request is left running. */
  readonly #done = deferred<StreamingStatus>();
  /** Aborted when the download ends, for whatever reason: ends every request and backoff. */
  readonly #controller = new AbortController();
  /** Every piece of work that may hold a request open; run() waits for all. */
  readonly #tasks = new Set<Promise<void>>();
  /** Resolved (and dropped) when the consumer may have something new to look at; only while it waits. */
  #changed: Deferred<void> | undefined;
  #started: Promise<void> | undefined;
  #startedAt = 0;
  #endedAt = 0;
  #consumer: 'readable' | 'iterator' | 'pipeTo' | undefined;
  #readable: Readable | undefined;

  #info: ContentInfo | undefined;
  #mode: 'windowed' | 'single' | undefined;
  #blockSize = 0;
  #stats: StatsRecorder;
  #buffer: ReorderBuffer | undefined;
  /** Blocks with a request (or its backoff) under way, by index. */
  readonly #blocks = new Map<number, Block>();
  /** The first block that failed for good, and why: bytes before it are still delivered. */
  #fatal: { readonly index: number; readonly error: Error } | undefined;
  /** An error that ends the stream at once (abort, remote changed, digest mismatch). */
  #failure: Error | undefined;
  #complete = false;

  #hash: InOrderDigest | undefined;
  #expected: ExpectedDigest | undefined;
  #digest: DigestResult | undefined;

  // single-stream mode: the one body, and how many of its bytes to skip after a restart from byte 0
  #body: AsyncIterator<Uint8Array> | undefined;
  #bodyController: AbortController | undefined;
  #skip = 0;
  #singleMaxChunk = 0;
  #streamedBytes = 0;

  /**
   * @param reader where the bytes come from; its revision pinning applies to every request
   * @param options see {@link StreamingDownloaderOptions}
   * @throws InvalidArgumentError when an option is out of range (the message names it)
   */
  constructor(reader: Reader, options: StreamingDownloaderOptions = {}) {
    this.#reader = reader;
    const concurrency = options.concurrency ?? defaultStreamingOptions.concurrency;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new InvalidArgumentError(`option concurrency must be a whole number >= 1, got ${String(concurrency)} (${typeof concurrency})`);
    }
    const window = options.window ?? defaultStreamingOptions.windowPerConcurrency * concurrency;
    if (!Number.isSafeInteger(window) || window < concurrency) {
      throw new InvalidArgumentError(
        `option window must be a whole number >= concurrency (${concurrency}), got ${String(window)} (${typeof window})`,
      );
    }
    if (options.blockSize !== undefined && (!Number.isSafeInteger(options.blockSize) || options.blockSize < 1)) {
      throw new InvalidArgumentError(
        `option blockSize must be a whole number of bytes >= 1, got ${String(options.blockSize)} (${typeof options.blockSize})`,
      );
    }
    const computeDigest = options.computeDigest ?? defaultStreamingOptions.computeDigest;
    if (typeof computeDigest !== 'boolean') {
      throw new InvalidArgumentError(`option computeDigest must be a boolean, got ${String(computeDigest)} (${typeof computeDigest})`);
    }
    this.#concurrency = concurrency;
    this.#window = window;
    this.#blockSizeOption = options.blockSize;
    this.#budget = new RetryBudget(resolveRetryOptions(options.retry));
    // Checked now so a malformed digest is a constructor error, not a late stream error.
    this.#expectedOption = chooseDigest(options.expectedDigest, undefined).expected;
    this.#computeDigest = computeDigest;
    this.#limiter = options.rateLimiter;
    this.#signal = options.signal;
    this.#stats = this.#newStats(0, 1);
    // Nobody may be awaiting run(); the error still reaches the stream's consumer.
    this.#done.promise.catch(() => undefined);
  }

  /**
   * The object's bytes, in order, as a Node byte stream. Created on first
   * access; the same stream on every access. Destroying it before its end
   * aborts every request.
   */
  get readable(): Readable {
    if (this.#consumer === 'readable' && this.#readable !== undefined) return this.#readable;
    this.#claim('readable');
    return this.#makeReadable();
  }

  /**
   * Iterates over the object's bytes, in order, one chunk at a time. Leaving
   * the loop early (`break`, a throw) aborts every request and releases every
   * buffer.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    this.#claim('iterator');
    // A plain object rather than an async generator: a generator's return()
    // would queue behind a pending next() that may be waiting on a stuck
    // block, where this one ends everything at once.
    const iterator: AsyncIterableIterator<Uint8Array> = {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        const chunk = await this.#read();
        return chunk === null ? { done: true, value: undefined } : { done: false, value: chunk };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        this.#cancel(new AbortedError('the consumer stopped reading before the end'));
        await this.#settled();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Streams the object into `writable` with backpressure, ends it, and
   * resolves with the final status once `writable` has finished. Rejects
   * with the download's error (the writable is destroyed with it), with the
   * writable's own error, or with an `AbortedError` when `signal` aborts; in
   * every case only after no request is left running.
   *
   * @example
   * ```ts
   * const status = await dl.pipeTo(createWriteStream(path), { signal: AbortSignal.timeout(600_000) });
   * ```
   */
  async pipeTo(writable: Writable, options: { readonly signal?: AbortSignal } = {}): Promise<StreamingStatus> {
    this.#claim('pipeTo');
    const readable = this.#makeReadable();
    const signal = options.signal;
    // Registered before pipeline() registers its own, so our typed error is
    // recorded before pipeline destroys the streams with a plain AbortError.
    const onAbort = (): void => this.#cancel(new AbortedError('pipeTo was aborted', { cause: signal?.reason }));
    if (signal?.aborted === true) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await pipeline(readable, writable, signal === undefined ? {} : { signal });
    } catch (err) {
      this.#cancel(toError(err));
      await this.#settled();
      throw this.#failure ?? err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return this.#done.promise;
  }

  /**
   * Starts fetching (if no consumer has yet) and returns the final status.
   * Resolves once the consumer has taken every byte and the digest (if any)
   * matched; rejects with the error the stream errors with. Either way it
   * settles only after every request has ended. It does not consume the
   * stream: with no consumer reading, fetching stops when the window is
   * full, as the memory bound requires.
   */
  run(): Promise<StreamingStatus> {
    void this.#start().catch(() => undefined);
    return this.#done.promise;
  }

  /** A frozen snapshot of the counters now; see {@link StreamingStatus}. */
  status(): StreamingStatus {
    const buffer = this.#buffer;
    const single = this.#mode === 'single';
    const end = this.#endedAt || performance.now();
    return Object.freeze({
      ...this.#stats.snapshot(),
      mode: this.#mode,
      concurrency: single ? 1 : this.#concurrency,
      window: single ? 1 : this.#window,
      outOfOrder: buffer?.outOfOrder ?? 0,
      maxOutOfOrder: buffer?.maxOutOfOrder ?? 0,
      bufferedBytes: buffer?.bufferedBytes ?? 0,
      maxBufferedBytes: single ? this.#singleMaxChunk : (buffer?.maxBufferedBytes ?? 0),
      memoryBound: this.#mode === undefined ? 0 : single ? this.#singleMaxChunk : this.#window * this.#blockSize,
      digest: this.#digest,
      durationMs: this.#startedAt ? Math.max(0, Math.round(end - this.#startedAt)) : 0,
      complete: this.#complete,
    });
  }

  // ---------------------------------------------------------------- start

  #claim(consumer: 'readable' | 'iterator' | 'pipeTo'): void {
    if (this.#consumer !== undefined) {
      throw new InvalidArgumentError(
        `a StreamingDownloader streams its bytes once: they were already taken through ${this.#consumer}, cannot also use ${consumer}`,
      );
    }
    this.#consumer = consumer;
  }

  #makeReadable(): Readable {
    const readable = new Readable({
      // Called again only after the previous push: one #read at a time.
      read: () => {
        this.#read().then(
          (chunk) => readable.push(chunk),
          (err: unknown) => readable.destroy(toError(err)),
        );
      },
      destroy: (err, callback) => {
        this.#cancel(err ?? new AbortedError('the readable was destroyed before its end'));
        callback(err);
      },
    });
    this.#readable = readable;
    return readable;
  }

  /**
   * A recorder for an object of `size` bytes, carrying over the errors and
   * retries counted so far (while asking the Reader for the size). Its clock
   * starts at the download's start and stops at its end, so `elapsedMs`
   * equals `durationMs` and a final status stays final.
   */
  #newStats(size: number, blockSize: number, previous?: StatsRecorder): StatsRecorder {
    let first = true;
    const now = (): number => {
      if (first) {
        first = false;
        return this.#startedAt || performance.now();
      }
      return this.#endedAt || performance.now();
    };
    const stats = new StatsRecorder({ size, blockSize }, now);
    stats.passStarted();
    const before = previous?.snapshot();
    for (let i = 0; i < (before?.errors ?? 0); i++) stats.error();
    for (let i = 0; i < (before?.retries ?? 0); i++) stats.retry();
    return stats;
  }

  #start(): Promise<void> {
    this.#started ??= this.#begin();
    return this.#started;
  }

  async #begin(): Promise<void> {
    this.#startedAt = performance.now();
    const signal = this.#signal;
    if (signal !== undefined) {
      const onAbort = (): void => this.#cancel(new AbortedError('the download was aborted', { cause: signal.reason }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      void this.#done.promise.catch(() => undefined).finally(() => signal.removeEventListener('abort', onAbort));
    }
    let info: ContentInfo;
    try {
      if (this.#failure !== undefined) throw this.#failure;
      info = await this.#contentInfo();
      if (this.#failure !== undefined) throw this.#failure;
      this.#blockSize = this.#blockSizeOption ?? info.blockSize;
      validateSizes(info.contentLength, this.#blockSize);
      const chosen = chooseDigest(this.#expectedOption, this.#reader.digest());
      this.#expected = chosen.expected;
      if (this.#expected !== undefined || this.#computeDigest) this.#hash = new InOrderDigest(chosen.algorithm);
    } catch (err) {
      this.#cancel(toError(err));
      throw this.#failure ?? err;
    }
    this.#info = info;
    this.#stats = this.#newStats(info.contentLength, this.#blockSize, this.#stats);
    const blocks = numBlocks(info.contentLength, this.#blockSize);
    if (this.#concurrency === 1 || !info.rangesSupported || !info.pinned || blocks <= 1) {
      // One plain request: nothing to reorder, and the consumer's pace is the
      // request's pace (the body is read only as fast as it is consumed).
      // A remote with nothing to pin requests to (no strong ETag, no
      // Last-Modified) gets one request too: parallel ranges of it could
      // come from two revisions, one response cannot.
      this.#mode = 'single';
    } else {
      this.#mode = 'windowed';
      this.#buffer = new ReorderBuffer(blocks, this.#window);
      this.#schedule();
    }
  }

  /** Asks the Reader whether the remote is still the same revision ({@link Reader.revalidate}), retrying like any request. */
  async #revalidate(): Promise<void> {
    if (this.#reader.revalidate === undefined) return;
    for (;;) {
      try {
        return await this.#reader.revalidate(this.#controller.signal);
      } catch (err) {
        if (this.#failure !== undefined) throw this.#failure;
        await this.#afterFailure(-2, err, this.#controller.signal);
      }
    }
  }

  /** Asks the Reader for the size, retrying what is retryable like any request. */
  async #contentInfo(): Promise<ContentInfo> {
    for (;;) {
      try {
        return await this.#reader.contentLengthAndBlockSize(this.#controller.signal);
      } catch (err) {
        if (this.#failure !== undefined) throw this.#failure;
        await this.#afterFailure(-1, err, this.#controller.signal);
      }
    }
  }

  // ---------------------------------------------------------------- windowed mode

  /**
   * Starts blocks, in index order, while the concurrency limit and the
   * window allow. The window check (in `ReorderBuffer.canOpen`) is what
   * bounds memory: a block is never requested until the block `window`
   * places before it has been handed to the consumer.
   */
  #schedule(): void {
    const buffer = this.#buffer;
    const info = this.#info;
    if (buffer === undefined || info === undefined) return;
    while (this.#failure === undefined && this.#fatal === undefined && this.#blocks.size < this.#concurrency && buffer.canOpen()) {
      const index = buffer.open();
      const range = rangeForIndex(index, info.contentLength, this.#blockSize);
      const block: Block = { index, from: range.from, to: range.to, received: 0, controller: new AbortController() };
      this.#blocks.set(index, block);
      const task = this.#fetchBlock(block)
        // #fetchBlock handles its own failures; anything else is a bug, and
        // must end the stream rather than become an unhandled rejection.
        .catch((err: unknown) => this.#cancel(toError(err)))
        .finally(() => {
          this.#tasks.delete(task);
          this.#blocks.delete(index);
          this.#schedule();
          this.#notify();
        });
      this.#tasks.add(task);
    }
  }

  /**
   * Fetches one block until it is whole or fails for good. After a failure
   * the block is re-requested from its first byte not yet received: the
   * bytes received so far are of the same pinned revision, so they are kept
   * (and may already have been emitted, if this is the head block).
   */
  async #fetchBlock(block: Block): Promise<void> {
    const buffer = this.#buffer as ReorderBuffer;
    const length = block.to - block.from + 1;
    const signal = block.controller.signal;
    for (;;) {
      let requested = false;
      try {
        await this.#limiter?.takeRequest(signal);
        this.#stats.requestStarted();
        requested = true;
        const body = await this.#reader.getReader(block.from + block.received, block.to, signal);
        for await (const chunk of body) {
          if (signal.aborted) return;
          if (chunk.byteLength === 0) continue;
          if (block.received + chunk.byteLength > length) {
            throw new BlockfetchError(
              'BLOCKFETCH_BODY_LENGTH',
              `${this.#reader.name}: block ${block.index} (bytes ${block.from}-${block.to}) got more than its ${length} bytes`,
            );
          }
          // No await at all without a limiter: this loop runs once per chunk.
          if (this.#limiter !== undefined) await this.#limiter.takeBytes(chunk.byteLength, signal);
          block.received += chunk.byteLength;
          this.#stats.received(chunk.byteLength);
          buffer.append(block.index, chunk);
          this.#budget.onProgress(block.index);
          if (block.index === buffer.head) this.#notify();
        }
        if (signal.aborted) return;
        if (block.received < length) {
          throw new BlockfetchError(
            'BLOCKFETCH_BODY_LENGTH',
            `${this.#reader.name}: block ${block.index} (bytes ${block.from}-${block.to}) ended after ${block.received} of ${length} bytes`,
          );
        }
        buffer.finish(block.index);
        this.#notify();
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (block.received === length && !hasCode(err, 'BLOCKFETCH_REMOTE_CHANGED')) {
          // Every byte of the block arrived (each inside its range) before the
          // body failed, e.g. by running long or a reset after the last byte:
          // the block is whole. A changed remote is still fatal, below.
          this.#stats.error();
          buffer.finish(block.index);
          this.#notify();
          return;
        }
        try {
          await this.#afterFailure(block.index, err, signal);
        } catch (fatal) {
          if (!signal.aborted) this.#failBlock(block.index, toError(fatal));
          return;
        }
      } finally {
        if (requested) this.#stats.requestEnded();
      }
    }
  }

  /**
   * Block `index` failed for good: stop everything after it, deliver what
   * came before it, then error. An earlier block failing later wins.
   */
  #failBlock(index: number, error: Error): void {
    if (this.#fatal !== undefined && this.#fatal.index <= index) return;
    this.#fatal = { index, error };
    for (const [i, block] of this.#blocks) if (i > index) block.controller.abort(error);
    this.#buffer?.dropAfter(index);
    this.#notify();
  }

  async #readWindowed(buffer: ReorderBuffer): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      const headBefore = buffer.head;
      const chunk = buffer.take();
      if (buffer.head !== headBefore) {
        for (let i = headBefore; i < buffer.head; i++) {
          this.#stats.blockDone(Math.min(this.#blockSize, (this.#info as ContentInfo).contentLength - i * this.#blockSize));
        }
        // The window moved: more blocks may start.
        this.#schedule();
      }
      if (chunk !== undefined) return chunk;
      if (buffer.ended()) return null;
      const fatal = this.#fatal;
      if (fatal !== undefined && buffer.head === fatal.index) {
        // Every byte before the failure was delivered: now the error.
        this.#cancel(fatal.error);
        throw fatal.error;
      }
      await (this.#changed ??= deferred<void>()).promise;
    }
  }

  // ---------------------------------------------------------------- single-stream mode

  /**
   * The next chunk of the one sequential request. The body is pulled only
   * when the consumer asks, so nothing accumulates. After a failure it is
   * re-opened from the first byte not yet emitted when the remote serves
   * ranges, else from byte 0 with the bytes already emitted skipped.
   */
  async #readSingle(): Promise<Uint8Array | null> {
    const info = this.#info as ContentInfo;
    const size = info.contentLength;
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#streamedBytes >= size) return null;
      const controller = (this.#bodyController ??= new AbortController());
      try {
        if (this.#body === undefined) {
          const from = info.rangesSupported ? this.#streamedBytes : 0;
          this.#skip = this.#streamedBytes - from;
          await this.#limiter?.takeRequest(controller.signal);
          this.#stats.requestStarted();
          try {
            const body = await this.#reader.getReader(from, size - 1, controller.signal);
            this.#body = body[Symbol.asyncIterator]();
          } catch (err) {
            this.#stats.requestEnded();
            throw err;
          }
        }
        const next = await this.#body.next();
        if (next.done === true) {
          throw new BlockfetchError(
            'BLOCKFETCH_BODY_LENGTH',
            `${this.#reader.name}: the body ended after ${this.#streamedBytes + this.#skip} of ${size} bytes`,
          );
        }
        let chunk = next.value;
        if (this.#limiter !== undefined) await this.#limiter.takeBytes(chunk.byteLength, controller.signal);
        this.#stats.received(chunk.byteLength);
        if (this.#skip > 0) {
          const skipped = Math.min(this.#skip, chunk.byteLength);
          this.#skip -= skipped;
          chunk = chunk.subarray(skipped);
        }
        if (chunk.byteLength === 0) continue;
        if (this.#streamedBytes + chunk.byteLength > size) {
          throw new BlockfetchError('BLOCKFETCH_BODY_LENGTH', `${this.#reader.name}: the body is longer than ${size} bytes`);
        }
        this.#budget.onProgress(0);
        if (chunk.byteLength > this.#singleMaxChunk) this.#singleMaxChunk = chunk.byteLength;
        if (this.#streamedBytes + chunk.byteLength === size) {
          // Let the body end by itself before the last chunk goes out, so
          // the Reader's end-of-body checks (a FileReader re-checks the
          // file's identity there) run before the stream can end cleanly.
          const after = await this.#body.next();
          if (after.done !== true) {
            throw new BlockfetchError('BLOCKFETCH_BODY_LENGTH', `${this.#reader.name}: the body is longer than ${size} bytes`);
          }
          this.#endBody();
        }
        return chunk;
      } catch (err) {
        this.#endBody();
        controller.abort();
        if (this.#failure !== undefined) throw this.#failure;
        try {
          await this.#afterFailure(0, err, this.#controller.signal);
        } catch (fatal) {
          // Everything before the failure was already emitted.
          this.#cancel(toError(fatal));
          throw this.#failure ?? fatal;
        }
      }
    }
  }

  /** Lets go of the single-stream body (its request ends). */
  #endBody(): void {
    const body = this.#body;
    this.#body = undefined;
    this.#bodyController = undefined;
    if (body === undefined) return;
    this.#stats.requestEnded();
    void body.return?.()?.catch(() => undefined);
  }

  /** Counts the blocks whose last byte was just streamed in single-stream mode. */
  #countSingleBlocks(before: number, after: number): void {
    const size = (this.#info as ContentInfo).contentLength;
    const doneBefore = before === size ? numBlocks(size, this.#blockSize) : Math.floor(before / this.#blockSize);
    const doneAfter = after === size ? numBlocks(size, this.#blockSize) : Math.floor(after / this.#blockSize);
    for (let i = doneBefore; i < doneAfter; i++) this.#stats.blockDone(Math.min(this.#blockSize, size - i * this.#blockSize));
  }

  // ---------------------------------------------------------------- shared

  /**
   * Decides what a failure of `key` means: resolves after the backoff when
   * it is to be retried; throws the error to end with otherwise (and ends
   * the stream at once for a remote that changed).
   */
  async #afterFailure(key: number, err: unknown, signal: AbortSignal): Promise<void> {
    this.#stats.error();
    if (hasCode(err, 'BLOCKFETCH_REMOTE_CHANGED')) {
      // Never mixed bytes: no further byte of this stream may be emitted.
      this.#cancel(err);
      throw err;
    }
    const response = retryResponseOf(err);
    const decision = this.#budget.onFailure(key, response.isRetryable(), response.backoffDuration());
    if (!decision.retry) {
      if (decision.reason === 'not-retryable') throw err;
      const what = key < 0 ? 'looking at the remote' : this.#mode === 'single' ? 'the stream' : `block ${key}`;
      const why = decision.reason === 'total-retries' ? 'the total retry limit was reached' : 'its attempts were used up';
      throw new RetriesExhaustedError(`${this.#reader.name}: ${what} failed ${decision.attempt} times; ${why}`, decision.attempt, {
        cause: err,
      });
    }
    this.#stats.retry();
    await sleep(decision.delayMs, signal);
  }

  /** The next in-order chunk for the consumer, or null at the (verified) end. */
  async #read(): Promise<Uint8Array | null> {
    if (this.#complete) return null;
    if (this.#mode === undefined) await this.#start();
    let chunk: Uint8Array | null;
    if (this.#mode === 'single') {
      // Tracked like a block's task, so run() settles only after this
      // request has ended too.
      const pending = this.#readSingle();
      const task = pending.then(
        () => undefined,
        () => undefined,
      );
      this.#tasks.add(task);
      void task.finally(() => this.#tasks.delete(task));
      chunk = await pending;
    } else {
      chunk = await this.#readWindowed(this.#buffer as ReorderBuffer);
    }
    if (chunk === null) {
      // Like the digest: the stream ends cleanly only if the remote is still
      // the revision it started from (an in-place rewrite can mix new bytes
      // into a response already under way); else it errors instead.
      if (this.#streamedBytes > 0) await this.#revalidate();
      this.#finish();
      return null;
    }
    this.#hash?.update(chunk);
    const before = this.#streamedBytes;
    this.#streamedBytes += chunk.byteLength;
    if (this.#mode === 'single') this.#countSingleBlocks(before, this.#streamedBytes);
    return chunk;
  }

  /** Every byte was emitted: verify the digest, then end (or error). */
  #finish(): void {
    if (this.#complete) return;
    if (this.#hash !== undefined) {
      try {
        this.#digest = this.#hash.finish(this.#expected);
      } catch (err) {
        this.#cancel(toError(err));
        throw err;
      }
    }
    this.#complete = true;
    this.#endedAt = performance.now();
    this.#controller.abort();
    this.#done.resolve(this.status());
  }

  /**
   * Ends the download with `error` unless it already ended: aborts every
   * request and backoff, drops every buffered byte, wakes the consumer, and
   * settles `run()` once no request is left running.
   */
  #cancel(error: Error): void {
    if (this.#complete || this.#failure !== undefined) return;
    this.#failure = error;
    this.#endedAt = performance.now();
    this.#controller.abort(error);
    for (const block of this.#blocks.values()) block.controller.abort(error);
    this.#bodyController?.abort(error);
    this.#endBody();
    this.#buffer?.clear();
    this.#notify();
    void this.#settled().then(() => this.#done.reject(error));
  }

  async #settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #notify(): void {
    const changed = this.#changed;
    this.#changed = undefined;
    changed?.resolve();
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
