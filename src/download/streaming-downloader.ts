/**
 * The StreamingDownloader: parallel ranged reads of one object, emitted as a
 * single in-order byte stream with bounded memory.
 *
 * See `docs/streaming.md` for the design and the memory bound.
 *
 * @module
 */
import { Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ExpectedDigest } from '../cache/types.js';
import { AbortedError, InvalidArgumentError } from '../errors.js';
import { numBlocks, validateSizes } from '../ranges/byte-range.js';
import { AttemptEngine } from './attempts.js';
import { InOrderDigest, chooseDigest, type DigestResult } from './digest.js';
import { EventReporter, retryEventOf } from './events.js';
import type { ContentInfo, Reader } from './reader.js';
import { StatsRecorder } from './stats.js';
import { SingleMode, WindowedMode, type StreamContext, type StreamMode } from './stream-modes.js';
import { outcomeOf } from './caching-options.js';
import {
  resolveStreamingOptions,
  type ResolvedStreamingOptions,
  type StreamingDownloaderOptions,
  type StreamingEvent,
  type StreamingStatus,
} from './streaming-options.js';

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
 * Options of {@link StreamingDownloader.pipeTo}.
 *
 * @example
 * ```ts
 * await dl.pipeTo(process.stdout, { signal, reuseBuffers: true });
 * ```
 */
export interface PipeToOptions {
  /** Stops the download; `pipeTo` then rejects with an `AbortedError`. */
  readonly signal?: AbortSignal;
  /**
   * The writable is done with each chunk once that chunk's write callback
   * ran, as files, sockets, pipes and `process.stdout` are (a Writable
   * that keeps the chunks it is given is not). The download then reads
   * into buffers it reuses, instead of leaving a new buffer per socket read
   * for the garbage collector: `blockfetch URL --stdout` into a slow reader
   * peaked lower with it (docs/benchmarks.md). Ignored in single-stream mode.
   * @default false
   */
  readonly reuseBuffers?: boolean;
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
 * after yielding it; except with `pipeTo`'s `reuseBuffers`, where the
 * Reader lends them and they are copied into block buffers that are reused
 * once written (see {@link PipeToOptions}).
 *
 * **Failures.** A failed block is retried by the shared attempt engine
 * (`AttemptEngine`: the same budget and backoff as the CachingDownloader),
 * resuming from the first byte it had not yet received:
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
 * **Events.** `onEvent` (and `node:diagnostics_channel`, as
 * `blockfetch:stream:<type>`) receives `start`, `progress`, `retry` and
 * `done`, like the CachingDownloader's; `done` is always delivered.
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
  readonly #options: ResolvedStreamingOptions;
  readonly #events: EventReporter<StreamingEvent>;
  /** Every request, the look and the revalidation go through it: one retry budget. */
  readonly #engine: AttemptEngine;

  /** Settles when the download ended and no request is left running. */
  readonly #done = deferred<StreamingStatus>();
  /** Aborted when the download ends, for whatever reason: ends every request and backoff. */
  readonly #controller = new AbortController();
  /** Every piece of work that may hold a request open; run() waits for all. */
  readonly #tasks = new Set<Promise<void>>();
  #started: Promise<StreamMode> | undefined;
  #startedAt = 0;
  #endedAt = 0;
  #consumer: 'readable' | 'iterator' | 'pipeTo' | undefined;
  /** `pipeTo`'s `reuseBuffers`: the writable is done with a chunk once its write callback ran. */
  #reuseBuffers = false;
  #readable: Readable | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  /** The `stats.version` of the last progress event. */
  #progressVersion = -1;

  #blockSize = 0;
  #stats: StatsRecorder;
  /** How the bytes are fetched and put in order; chosen once the ContentInfo is known. */
  #mode: StreamMode | undefined;
  /** An error that ends the stream at once (abort, remote changed, digest mismatch, a block failed for good). */
  #failure: Error | undefined;
  #complete = false;

  #hash: InOrderDigest | undefined;
  #expected: ExpectedDigest | undefined;
  #digest: DigestResult | undefined;
  #streamedBytes = 0;

  /**
   * @param reader where the bytes come from; its revision pinning applies to every request
   * @param options see {@link StreamingDownloaderOptions}
   * @throws InvalidArgumentError when an option is out of range (the message names it)
   */
  constructor(reader: Reader, options: StreamingDownloaderOptions = {}) {
    if (typeof reader !== 'object' || reader === null || typeof reader.getReader !== 'function') {
      throw new InvalidArgumentError(`StreamingDownloader reader must be a Reader, got ${String(reader)} (${typeof reader})`);
    }
    this.#reader = reader;
    this.#options = resolveStreamingOptions(options);
    const o = this.#options;
    this.#events = new EventReporter<StreamingEvent>('blockfetch:stream', o.onEvent);
    this.#stats = this.#newStats(0, 1);
    this.#engine = new AttemptEngine({
      reader,
      retry: o.retry,
      random: o.random,
      stats: this.#stats,
      ...(o.rateLimiter === undefined ? {} : { limiter: o.rateLimiter }),
      blockExhaustion: 'fail',
      onRetry: (retry) => this.#events.emit(retryEventOf(retry, this.status())),
    });
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
  async pipeTo(writable: Writable, options: PipeToOptions = {}): Promise<StreamingStatus> {
    this.#claim('pipeTo');
    this.#reuseBuffers = options.reuseBuffers === true;
    const signal = options.signal;
    const onAbort = (): void => this.#cancel(new AbortedError('pipeTo was aborted', { cause: signal?.reason }));
    if (signal?.aborted === true) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.#writeAll(writable);
    } catch (err) {
      this.#cancel(toError(err));
      // Destroyed with the error, as pipeline did; the error it emits is
      // this rejection's, not an uncaught exception.
      writable.on('error', () => undefined);
      writable.destroy(this.#failure ?? toError(err));
      await this.#settled();
      throw this.#failure ?? err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return this.#done.promise;
  }

  /**
   * Writes every chunk into `writable` with backpressure, ends it, and
   * waits until it finished. Each chunk is released to the mode when its
   * write completed, so a recycling mode reuses the memory only then.
   * Throws the download's failure, the writable's error, or a premature
   * close of the writable.
   */
  async #writeAll(writable: Writable): Promise<void> {
    let writableError: Error | undefined;
    let wake: (() => void) | undefined;
    const onError = (err: Error): void => {
      writableError ??= err;
      this.#cancel(err);
      wake?.();
    };
    const onWake = (): void => wake?.();
    // Closed before it finished (destroyed without an error): stop at once,
    // as pipeline did, not at the next chunk, which a stalled block may
    // never bring.
    const onClose = (): void => {
      if (!writable.writableFinished) onError(prematureClose());
      else wake?.();
    };
    writable.on('error', onError);
    writable.on('drain', onWake);
    writable.on('close', onClose);
    // A failed download wakes a wait for 'drain' too.
    void this.#done.promise.then(onWake, onWake);
    try {
      for (;;) {
        const chunk = await this.#read();
        if (writableError !== undefined) throw writableError;
        if (chunk === null) break;
        if (writable.destroyed || writable.writableEnded) throw prematureClose();
        const mode = this.#mode;
        const more = writable.write(chunk, () => mode?.release(chunk));
        while (!more && writable.writableNeedDrain && !writable.destroyed && writableError === undefined && this.#failure === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        if (writableError !== undefined) throw writableError;
        if (this.#failure !== undefined) throw this.#failure;
      }
      await finished(writable.end());
    } finally {
      writable.off('error', onError);
      writable.off('drain', onWake);
      writable.off('close', onClose);
    }
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
    const mode = this.#mode;
    const c = mode?.counters();
    const end = this.#endedAt || performance.now();
    return Object.freeze({
      ...this.#stats.snapshot(),
      mode: mode?.name,
      concurrency: c?.concurrency ?? this.#options.concurrency,
      window: c?.window ?? this.#options.window,
      outOfOrder: c?.outOfOrder ?? 0,
      maxOutOfOrder: c?.maxOutOfOrder ?? 0,
      bufferedBytes: c?.bufferedBytes ?? 0,
      maxBufferedBytes: c?.maxBufferedBytes ?? 0,
      memoryBound: c?.memoryBound ?? 0,
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

  #start(): Promise<StreamMode> {
    this.#started ??= this.#begin();
    return this.#started;
  }

  async #begin(): Promise<StreamMode> {
    this.#startedAt = performance.now();
    const signal = this.#options.signal;
    if (signal !== undefined) {
      const onAbort = (): void => this.#cancel(new AbortedError('the download was aborted', { cause: signal.reason }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      void this.#done.promise.catch(() => undefined).finally(() => signal.removeEventListener('abort', onAbort));
    }
    let info: ContentInfo;
    try {
      if (this.#failure !== undefined) throw this.#failure;
      info = await this.#engine.look(this.#controller.signal);
      if (this.#failure !== undefined) throw this.#failure;
      this.#blockSize = this.#options.blockSize ?? info.blockSize;
      validateSizes(info.contentLength, this.#blockSize);
      const chosen = chooseDigest(this.#options.expectedDigest, this.#reader.digest());
      this.#expected = chosen.expected;
      if (this.#expected !== undefined || this.#options.computeDigest) this.#hash = new InOrderDigest(chosen.algorithm, info.contentLength);
    } catch (err) {
      this.#cancel(toError(err));
      throw this.#failure ?? err;
    }
    this.#stats = this.#newStats(info.contentLength, this.#blockSize, this.#stats);
    this.#engine.useStats(this.#stats);
    const ctx: StreamContext = {
      engine: this.#engine,
      stats: this.#stats,
      info,
      blockSize: this.#blockSize,
      track: (work) => {
        this.#tasks.add(work);
        void work.finally(() => this.#tasks.delete(work));
      },
      cancel: (error) => this.#cancel(error),
      failure: () => this.#failure,
    };
    const blocks = numBlocks(info.contentLength, this.#blockSize);
    // One plain request when there is nothing to reorder, and the consumer's
    // pace is the request's pace (the body is read only as fast as it is
    // consumed). A remote with nothing to pin requests to (no strong ETag,
    // no Last-Modified) gets one request too: parallel ranges of it could
    // come from two revisions, one response cannot.
    const single = this.#options.concurrency === 1 || !info.rangesSupported || !info.pinned || blocks <= 1;
    // pipeTo releases each chunk once its write completed: with a writable
    // that is done with it by then (reuseBuffers), the windowed mode copies
    // lent chunks into block buffers it reuses.
    const mode = single ? new SingleMode(ctx) : new WindowedMode(ctx, this.#options.concurrency, this.#options.window, this.#reuseBuffers);
    this.#mode = mode;
    this.#events.emit({ type: 'start', info, stats: this.status() });
    this.#ticker = setInterval(() => this.#progress(), this.#options.progressIntervalMs);
    this.#ticker.unref();
    return mode;
  }

  /** Emits a `progress` event when a count changed since the last one. */
  #progress(): void {
    const version = this.#stats.version;
    if (version === this.#progressVersion) return;
    this.#progressVersion = version;
    this.#events.emit({ type: 'progress', stats: this.status() });
  }

  /** The next in-order chunk for the consumer, or null at the (verified) end. */
  async #read(): Promise<Uint8Array | null> {
    if (this.#complete) return null;
    const mode = await this.#start();
    const chunk = await mode.next();
    if (chunk === null) {
      // Like the digest: the stream ends cleanly only if the remote is still
      // the revision it started from (an in-place rewrite can mix new bytes
      // into a response already under way); else it errors instead.
      if (this.#streamedBytes > 0) {
        try {
          await this.#engine.revalidate(this.#controller.signal);
        } catch (err) {
          this.#cancel(toError(err));
          throw this.#failure ?? err;
        }
      }
      this.#finish();
      return null;
    }
    this.#hash?.update(chunk);
    this.#streamedBytes += chunk.byteLength;
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
    clearInterval(this.#ticker);
    const status = this.status();
    this.#events.emit({ type: 'done', outcome: 'complete', status });
    this.#done.resolve(status);
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
    clearInterval(this.#ticker);
    this.#mode?.cancel(error);
    void this.#settled().then(() => {
      this.#events.emit({ type: 'done', outcome: outcomeOf(false, error), status: this.status(), error });
      this.#done.reject(error);
    });
  }

  async #settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }
}

/** What `pipeline` says of a writable closed before the end: the same code. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
