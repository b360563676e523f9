/**
 * The attempt engine: every request the downloaders make to a {@link Reader}
 * goes through here, so the retry policy is written once.
 *
 * It owns:
 * - the retry budget (attempts per key, retries per run) and the backoff
 *   between attempts (`backoffDelay`, honouring Retry-After), slept
 *   abortably;
 * - counting failures and retries in the run's {@link StatsRecorder} and
 *   reporting each retry to the downloader (which turns it into its `retry`
 *   event);
 * - exact-length fetching: one place opens `reader.getReader(from, to)`,
 *   counts the bytes, rejects a body that ends short or runs long
 *   (`BLOCKFETCH_BODY_LENGTH`) and, after a retryable failure, re-opens the
 *   range from the first byte not yet received;
 * - the look at the remote and the revalidation at the end, retried.
 *
 * A downloader supplies only a {@link BodySink}: where the bytes go (the
 * cache's write window, or the reorder buffer).
 *
 * The rules, in one place:
 * 1. An abort is never counted or retried: it ends the attempt with the
 *    signal's reason.
 * 2. An error the owner calls fatal (`isFatal`, e.g. a failed cache write) is
 *    never counted or retried.
 * 3. Whether anything else is retried is the error's to say
 *    (`retryResponseOf(err).isRetryable()`); a delay it asks for is honoured
 *    up to `retry.maxRetryAfterMs`.
 * 4. Each key (`look`, `revalidate`, one per block) has `attemptsPerBlock`
 *    attempts; an attempt that made real progress starts its key's count
 *    again: it took the furthest byte received for its range at least
 *    `progressBytes` further (1 MiB by default), and its sink agrees. A
 *    server that sends a few bytes of each response and then stalls makes
 *    no real progress, so it spends the key's attempts instead of resetting
 *    them forever. The run has `totalRetries` retries in all,
 *    the look and the revalidation included.
 * 5. A block whose attempts ran out is, with `blockExhaustion: 'defer'`,
 *    left outstanding for a later pass; with `'fail'` (and always for the
 *    look, the revalidation and when the run's total is spent) the run gets
 *    a `RetriesExhaustedError` whose `cause` is the last failure.
 * 6. An attempt that received every byte of its range before its body
 *    failed is complete (unless the failure says the remote changed): the
 *    bytes are all in, each inside its range.
 *
 * @module
 */
import { BlockfetchError, RemoteChangedError, RetriesExhaustedError, retryResponseOf } from '../errors.js';
import type { ByteRange } from '../ranges/byte-range.js';
import { resolveRetryOptions, RetryBudget, sleep, type RetryOptions } from './backoff.js';
import { debug } from './events.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ContentInfo, ReadOptions, Reader } from './reader.js';
import type { StatsRecorder } from './stats.js';
import { wholeNumber } from '../validate.js';

/** What an attempt was for: the key its failures are counted under. */
export type AttemptKey =
  /** The first look at the remote (`reader.contentLengthAndBlockSize`). */
  | { readonly kind: 'look' }
  /** The check at the end that the remote is still the same revision (`reader.revalidate`). */
  | { readonly kind: 'revalidate' }
  /** The bytes of a request, counted under its first block. */
  | { readonly kind: 'block'; readonly index: number };

/** The key of the look at the remote. */
export const LOOK: AttemptKey = Object.freeze({ kind: 'look' });
/** The key of the revalidation. */
export const REVALIDATE: AttemptKey = Object.freeze({ kind: 'revalidate' });

/** The key of block `index`. */
export function blockKey(index: number): AttemptKey {
  return { kind: 'block', index };
}

/** One failed attempt that will be tried again, as {@link AttemptEngineOptions.onRetry} receives it. */
export interface AttemptRetry {
  readonly key: AttemptKey;
  /** The bytes the failed attempt asked for; `{ from: -1, to: -1 }` for the look and the revalidation. */
  readonly range: ByteRange;
  /** The failed attempt's number for its key (1 for the first failure). */
  readonly attempt: number;
  /** How long the engine waits before the next attempt, in ms. */
  readonly delayMs: number;
  /** What failed. */
  readonly error: unknown;
}

/** How {@link AttemptEngine} is set up; one engine per run. */
export interface AttemptEngineOptions {
  /** Where the bytes come from. */
  readonly reader: Reader;
  /** Retry limits and backoff timing. @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /** The random source of backoff jitter. @default Math.random */
  readonly random?: () => number;
  /** Counts requests, bytes, failures and retries, when given. @default undefined */
  readonly stats?: StatsRecorder;
  /** Every request waits for `takeRequest`, every chunk for `takeBytes`, when given. @default undefined */
  readonly limiter?: RateLimiter;
  /**
   * What a block whose attempts ran out means: `'defer'` leaves it for a
   * later pass ({@link AttemptEngine.fetch} resolves `'exhausted'`),
   * `'fail'` throws a `RetriesExhaustedError`.
   * @default 'fail'
   */
  readonly blockExhaustion?: 'defer' | 'fail';
  /** Errors the owner's own work raised (a failed disk write): never counted, never retried. @default none */
  readonly isFatal?: (err: unknown) => boolean;
  /** Called once per retry, before the backoff. Must not throw. @default undefined */
  readonly onRetry?: (retry: AttemptRetry) => void;
  /**
   * How many bytes beyond the furthest point an earlier attempt at the same
   * range reached a failed attempt must receive for its key's attempts to
   * start again (rule 4). Fewer is not progress: 1,000 bytes per stalled
   * response once reset the budget every time.
   * @default DEFAULT_PROGRESS_BYTES (1 MiB)
   */
  readonly progressBytes?: number;
  /**
   * Takes a connection for one attempt (a request and its body) and returns
   * what gives it back; it is given back when the attempt ends, BEFORE any
   * backoff. A limit shared with other downloads (a set's
   * `ConnectionBudget`) then lends a waiting request's slot to the others
   * (all but a joined download's last slot, which the budget keeps parked
   * for it). Rejects when `signal` aborts while waiting.
   * @default undefined (no limit beyond the caller's own)
   */
  readonly acquireConnection?: (signal: AbortSignal) => Promise<() => void>;
}

/**
 * The bytes of real progress (rule 4): 1 MiB. Small enough that a flaky link
 * which breaks every few megabytes still resets its budget each time (every
 * reset bought at least a megabyte, so a file of N MiB costs at most N
 * resets), large enough that a server trickling a few kilobytes per
 * response before stalling runs out of attempts.
 */
export const DEFAULT_PROGRESS_BYTES = 1024 * 1024;

/** The read options for a sink that copies what it keeps. */
const LEND: ReadOptions = Object.freeze({ lend: true });

/**
 * Where the bytes of {@link AttemptEngine.fetch} go. The engine calls
 * `write` for each non-empty chunk, in order, with the chunk's offset in the
 * file; every chunk lies inside the range asked for. A promise returned from
 * `write` is awaited before the next chunk is read (backpressure); returning
 * nothing costs no promise hop, which matters on the per-chunk path.
 */
export interface BodySink {
  /**
   * Takes `chunk`, the bytes from `offset`. Unless {@link BodySink.copiesChunks},
   * the chunk is the sink's to keep.
   */
  write(chunk: Uint8Array, offset: number): void | Promise<void>;
  /**
   * True when `write` is done with a chunk once it returns (or once the
   * promise it returns resolves): the engine then lets the Reader reuse a
   * chunk's memory for later bytes (`ReadOptions.lend`).
   * @default false
   */
  readonly copiesChunks?: boolean;
  /** Every byte of the range arrived: finish (mark the last block, release the last chunk). */
  end(): void | Promise<void>;
  /**
   * Called when an attempt ended, whatever ended it: waits for the sink's
   * pending work and throws its failure, which then outranks the attempt's
   * own error. @default nothing to wait for
   */
  settle?(): Promise<void>;
  /**
   * Where the next attempt starts, given the first byte not yet received
   * and whether the last body ran past its range.
   * @default position (resume from the first byte not yet received)
   */
  resumeAt?(position: number, overran: boolean): number;
  /**
   * Whether the failed attempt (from `attemptFrom`, up to `position`) made
   * progress as the sink sees it; its key's attempt count starts again only
   * when this says so AND the attempt got `progressBytes` beyond the
   * furthest byte reached before (rule 4).
   * @default true (the engine's byte rule alone decides)
   */
  progressed?(attemptFrom: number, position: number): boolean;
}

/**
 * Runs attempts against one Reader with one retry budget: see the module
 * comment for its rules.
 *
 * @example
 * ```ts
 * const engine = new AttemptEngine({ reader, retry: { attemptsPerBlock: 3 }, stats });
 * const info = await engine.look(signal);
 * const chunks: Uint8Array[] = [];
 * await engine.fetch(blockKey(0), { from: 0, to: info.contentLength - 1 }, {
 *   write: (chunk) => void chunks.push(chunk),
 *   end: () => undefined,
 * }, signal);
 * await engine.revalidate(signal);
 * ```
 */
export class AttemptEngine {
  readonly #reader: Reader;
  readonly #budget: RetryBudget<string>;
  #stats: StatsRecorder | undefined;
  readonly #limiter: RateLimiter | undefined;
  readonly #exhaustion: 'defer' | 'fail';
  readonly #isFatal: ((err: unknown) => boolean) | undefined;
  readonly #onRetry: ((retry: AttemptRetry) => void) | undefined;
  readonly #progressBytes: number;
  readonly #acquireConnection: ((signal: AbortSignal) => Promise<() => void>) | undefined;
  readonly #lowestSpeed: { readonly bytesPerSecond: number; readonly timeMs: number } | undefined;
  #lastFailure: unknown;
  #errors = 0;

  /** @throws InvalidArgumentError for a bad retry option. */
  constructor(options: AttemptEngineOptions) {
    this.#reader = options.reader;
    this.#budget = new RetryBudget<string>(options.retry, options.random);
    this.#stats = options.stats;
    this.#limiter = options.limiter;
    this.#exhaustion = options.blockExhaustion ?? 'fail';
    this.#isFatal = options.isFatal;
    this.#onRetry = options.onRetry;
    this.#acquireConnection = options.acquireConnection;
    const retry = resolveRetryOptions(options.retry);
    this.#lowestSpeed =
      retry.lowestSpeedBytesPerSecond > 0 ? { bytesPerSecond: retry.lowestSpeedBytesPerSecond, timeMs: retry.lowestSpeedTimeMs } : undefined;
    this.#progressBytes = wholeNumber('AttemptEngine', 'progressBytes', options.progressBytes ?? DEFAULT_PROGRESS_BYTES, { min: 1 });
  }

  /** Retries granted so far. */
  get retries(): number {
    return this.#budget.retries;
  }

  /** Failed attempts so far (retried or not). */
  get errors(): number {
    return this.#errors;
  }

  /** The last failure counted, for a message when a later step gives up. */
  get lastFailure(): unknown {
    return this.#lastFailure;
  }

  /**
   * Counts into `stats` from now on. A stream learns its size (and so gets
   * its real recorder) only after the look, whose failures the budget keeps.
   */
  useStats(stats: StatsRecorder): void {
    this.#stats = stats;
  }

  /** A new pass: every key's attempts start again; the run's total does not. */
  newPass(): void {
    this.#budget.resetAttempts();
  }

  /** `reader.contentLengthAndBlockSize`, retried. */
  look(signal: AbortSignal): Promise<ContentInfo> {
    return this.#retried(LOOK, () => this.#reader.contentLengthAndBlockSize(signal), signal);
  }

  /** `reader.revalidate` (when the Reader has it), retried; a `RemoteChangedError` surfaces as is. */
  async revalidate(signal: AbortSignal): Promise<void> {
    const reader = this.#reader;
    const revalidate = reader.revalidate;
    if (revalidate === undefined) return;
    await this.#retried(REVALIDATE, () => revalidate.call(reader, signal), signal);
  }

  /**
   * Fetches exactly the bytes of `range` into `sink`, retrying: each retry
   * asks for the bytes not yet received (or from `sink.resumeAt`). Resolves
   * `'done'` once `sink.end()` ran, or `'exhausted'` when the key's attempts
   * ran out under `blockExhaustion: 'defer'`. Rejects with an abort's reason,
   * a fatal or non-retryable error, or a `RetriesExhaustedError`.
   *
   * The caller may lower `range.to` while the fetch runs, never below the
   * first byte the sink has not yet received: the body in flight then ends
   * there (its connection is closed), and later attempts ask only up to it.
   */
  async fetch(key: AttemptKey, range: ByteRange, sink: BodySink, signal: AbortSignal): Promise<'done' | 'exhausted'> {
    let position = range.from;
    // The furthest byte any attempt at this range reached: progress is
    // measured beyond it, so re-receiving bytes (a restart from 0 without
    // ranges) is not progress either.
    let furthest = range.from;
    for (;;) {
      signal.throwIfAborted();
      const attemptFrom = position;
      // The attempt advances `progress.position` as bytes arrive, so it is
      // current even when the attempt throws part way.
      const progress = { position, overran: false };
      try {
        await this.#holdingConnection(signal, () => this.#attempt(range, progress, sink, signal));
        return 'done';
      } catch (err) {
        position = progress.position;
        const resume = sink.resumeAt?.(position, progress.overran) ?? position;
        if (resume > range.to && !(err instanceof RemoteChangedError) && !this.#fatal(err, signal)) {
          // Rule 6: every byte is in; whatever failed after them cost nothing.
          this.#countError(err);
          await sink.end();
          return 'done';
        }
        const sinkSays = sink.progressed?.(attemptFrom, position) ?? true;
        if (sinkSays && position - furthest >= this.#progressBytes) this.#budget.onProgress(keyId(key));
        if (position > furthest) furthest = position;
        const outcome = await this.#afterFailure(key, { from: attemptFrom, to: range.to }, err, signal);
        if (outcome === 'exhausted') return 'exhausted';
        position = resume;
      }
    }
  }

  /** One body from `progress.position` to `range.to`, into `sink`. */
  async #attempt(range: ByteRange, progress: { position: number; overran: boolean }, sink: BodySink, signal: AbortSignal): Promise<void> {
    const limiter = this.#limiter;
    const stats = this.#stats;
    await limiter?.takeRequest(signal);
    stats?.requestStarted();
    const watch = this.#lowestSpeed === undefined ? undefined : new SpeedWatch(this.#lowestSpeed, signal, this.#reader.name);
    const attemptSignal = watch?.signal ?? signal;
    try {
      // `range.to` may be lowered while the body runs (the CachingDownloader
      // hands the tail of a slow request to an idle connection): bytes past
      // the new end were asked for, so they end the body instead of being
      // an overrun, and are left to the request that now owns them.
      const askedTo = range.to;
      const body = await this.#reader.getReader(progress.position, askedTo, attemptSignal, sink.copiesChunks === true ? LEND : undefined);
      for await (const received of body) {
        let chunk = received;
        let last = false;
        if (received.byteLength === 0) continue;
        signal.throwIfAborted();
        if (progress.position + received.byteLength - 1 > range.to && askedTo > range.to) {
          if (progress.position > range.to) break;
          chunk = received.subarray(0, range.to + 1 - progress.position);
          last = true;
        }
        const length = chunk.byteLength;
        if (progress.position + length - 1 > range.to) {
          progress.overran = true;
          throw new BlockfetchError(
            'BLOCKFETCH_BODY_LENGTH',
            `${this.#reader.name}: body for bytes ${range.from}-${range.to} ran ${progress.position + length - 1 - range.to} byte(s) past its end`,
          );
        }
        // Throttle BEFORE the bytes are handed on: pausing here stops reading
        // the body, and the socket's window does the rest. No await at all
        // without a limiter: this loop runs once per chunk.
        if (watch !== undefined) watch.bytes += length;
        if (limiter !== undefined) {
          watch?.pause();
          await limiter.takeBytes(length, signal);
          watch?.resume();
        }
        const offset = progress.position;
        progress.position += length;
        stats?.received(length);
        const wrote = sink.write(chunk, offset);
        if (wrote !== undefined) {
          watch?.pause();
          await wrote;
          watch?.resume();
        }
        if (last) break;
      }
      if (progress.position !== range.to + 1) {
        throw new BlockfetchError(
          'BLOCKFETCH_BODY_LENGTH',
          `${this.#reader.name}: body for bytes ${range.from}-${range.to} ended after byte ${progress.position - 1}`,
        );
      }
      await sink.end();
    } catch (err) {
      // The lowest-speed rule ended the body: whatever the Reader made of
      // the abort, the attempt failed for being too slow (retryable).
      throw watch?.tooSlow !== undefined && !signal.aborted ? watch.tooSlow : err;
    } finally {
      watch?.stop();
      try {
        // Whatever ended the attempt, none of its sink's work may still be
        // running when the next attempt starts; a sink failure outranks the
        // attempt's own error (its bytes are not where they should be).
        await sink.settle?.();
      } finally {
        stats?.requestEnded();
      }
    }
  }

  /** Runs `call` until it succeeds or the budget says stop. */
  async #retried<T>(key: AttemptKey, call: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (;;) {
      try {
        return await this.#holdingConnection(signal, call);
      } catch (err) {
        await this.#afterFailure(key, { from: -1, to: -1 }, err, signal);
      }
    }
  }

  /** Runs one attempt holding a connection (when the owner limits them), given back as the attempt ends. */
  async #holdingConnection<T>(signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    const acquire = this.#acquireConnection;
    if (acquire === undefined) return await attempt();
    const release = await acquire(signal);
    try {
      return await attempt();
    } finally {
      release();
    }
  }

  /**
   * Counts a failure and decides: resolves `'retry'` after the backoff,
   * `'exhausted'` for a deferred block, or throws what the run must end with.
   */
  async #afterFailure(key: AttemptKey, range: ByteRange, err: unknown, signal: AbortSignal): Promise<'retry' | 'exhausted'> {
    if (this.#fatal(err, signal)) throw signal.aborted ? signal.reason : err;
    this.#countError(err);
    const response = retryResponseOf(err);
    const decision = this.#budget.onFailure(keyId(key), response.isRetryable(), response.backoffDuration());
    if (!decision.retry) {
      if (decision.reason === 'not-retryable') throw err;
      if (decision.reason === 'block-attempts' && key.kind === 'block' && this.#exhaustion === 'defer') {
        debug('%s: bytes %d-%d: attempts ran out: %s', this.#reader.name, range.from, range.to, messageOf(err));
        return 'exhausted';
      }
      throw this.#exhausted(key, decision.reason, decision.attempt, err);
    }
    this.#stats?.retry();
    this.#onRetry?.({ key, range, attempt: decision.attempt, delayMs: decision.delayMs, error: err });
    debug(
      '%s: %s failed (attempt %d), retrying in %d ms: %s',
      this.#reader.name,
      describeKey(key),
      decision.attempt,
      decision.delayMs,
      messageOf(err),
    );
    await sleep(decision.delayMs, signal);
    return 'retry';
  }

  /** True for what is never counted or retried: an abort, or the owner's own failure. */
  #fatal(err: unknown, signal: AbortSignal): boolean {
    return signal.aborted || (this.#isFatal?.(err) ?? false);
  }

  #countError(err: unknown): void {
    this.#errors++;
    this.#lastFailure = err;
    this.#stats?.error();
  }

  #exhausted(key: AttemptKey, reason: 'block-attempts' | 'total-retries', attempt: number, err: unknown): RetriesExhaustedError {
    const why = reason === 'total-retries' ? `: the run's ${this.#budget.retries} retries are spent` : ` after ${attempt} attempts`;
    // The look keeps the wording the CLI has always printed for it.
    const message =
      key.kind === 'look' && reason === 'block-attempts'
        ? `the first request failed ${attempt} times: ${messageOf(err)}`
        : `${this.#reader.name}: ${describeKey(key)} gave up${why}; last error: ${messageOf(err)}`;
    return new RetriesExhaustedError(message, reason === 'total-retries' ? this.#errors : attempt, { cause: err });
  }
}

/**
 * The lowest-speed rule of one attempt: every `timeMs` of waiting for the
 * network (time paused in the rate limiter or the sink does not count), the
 * bytes of that span must average `bytesPerSecond`; if not, `signal` aborts
 * and `tooSlow` says why. One timer per attempt, nothing per chunk but an
 * addition.
 */
class SpeedWatch {
  readonly #controller = new AbortController();
  readonly #rule: { readonly bytesPerSecond: number; readonly timeMs: number };
  readonly #outer: AbortSignal;
  readonly #onOuterAbort: () => void;
  readonly #name: string;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Bytes received since the span started. */
  bytes = 0;
  #spanStart = performance.now();
  #pausedMs = 0;
  #pausedAt: number | undefined;
  tooSlow: BlockfetchError | undefined;

  constructor(rule: { readonly bytesPerSecond: number; readonly timeMs: number }, outer: AbortSignal, name: string) {
    this.#rule = rule;
    this.#outer = outer;
    this.#name = name;
    this.#onOuterAbort = () => this.#controller.abort(outer.reason);
    if (outer.aborted) this.#onOuterAbort();
    else outer.addEventListener('abort', this.#onOuterAbort, { once: true });
    this.#timer = setInterval(() => this.#check(), Math.max(1, Math.ceil(rule.timeMs / 4)));
    this.#timer.unref?.();
  }

  /** The attempt's signal: the caller's, and the rule's. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  pause(): void {
    this.#pausedAt = performance.now();
  }

  resume(): void {
    if (this.#pausedAt !== undefined) this.#pausedMs += performance.now() - this.#pausedAt;
    this.#pausedAt = undefined;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#outer.removeEventListener('abort', this.#onOuterAbort);
  }

  #check(): void {
    if (this.#pausedAt !== undefined) return;
    const now = performance.now();
    const waitedMs = now - this.#spanStart - this.#pausedMs;
    if (waitedMs < this.#rule.timeMs) return;
    const rate = (this.bytes * 1000) / waitedMs;
    if (rate >= this.#rule.bytesPerSecond) {
      this.bytes = 0;
      this.#spanStart = now;
      this.#pausedMs = 0;
      return;
    }
    this.tooSlow = new BlockfetchError(
      'BLOCKFETCH_TIMEOUT',
      `${this.#name}: the body arrived at ${Math.round(rate)} bytes/s for ${Math.round(waitedMs / 1000)} s, below the lowest speed of ${this.#rule.bytesPerSecond} bytes/s (option retry.lowestSpeedBytesPerSecond)`,
    );
    this.stop();
    this.#controller.abort(this.tooSlow);
  }
}

/** The budget's key for `key`: one string per distinct attempt key. */
function keyId(key: AttemptKey): string {
  return key.kind === 'block' ? `block:${key.index}` : key.kind;
}

function describeKey(key: AttemptKey): string {
  switch (key.kind) {
    case 'look':
      return 'looking at the remote';
    case 'revalidate':
      return 'revalidating the remote';
    case 'block':
      return `block ${key.index}`;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
