/**
 * The options of the StreamingDownloader, their defaults and their checks,
 * and the types it reports with (status and events).
 *
 * @module
 */
import type { ExpectedDigest } from '../cache/types.js';
import { DEFAULT_CONCURRENCY } from '../defaults.js';
import { InvalidArgumentError } from '../errors.js';
import type { ByteRange } from '../ranges/byte-range.js';
import { booleanOption, describeValue, wholeNumber } from '../validate.js';
import { resolveRetryOptions, type RetryOptions } from './backoff.js';
import type { DownloadOutcome, EventError } from './caching-options.js';
import { normalizeExpectedDigest, type DigestResult } from './digest.js';
import type { EventListener } from './events.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ContentInfo } from './reader.js';
import type { DownloadStats } from './stats.js';

/** Who the messages of {@link resolveStreamingOptions} name. */
const OWNER = 'StreamingDownloader';

/** The options of a `StreamingDownloader`. */
export interface StreamingDownloaderOptions {
  /**
   * Ranged requests in flight at once. 1 streams the object with a single
   * `getReader(0, size - 1)` request and no reordering at all, as does a
   * Reader whose `ContentInfo` says ranges are not supported or requests
   * cannot be pinned to one revision (`pinned: false`).
   * @default 8 (`DEFAULT_CONCURRENCY`, as every downloader and the CLI)
   */
  readonly concurrency?: number;
  /**
   * The most blocks that may be in flight or buffered ahead of the consumer
   * at once, at least `concurrency`. Peak buffered data is at most
   * `window × blockSize` bytes (see `StreamingDownloader`).
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
  /** Aborting it stops every request and releases every buffer; the stream errors with an `AbortedError`. @default undefined */
  readonly signal?: AbortSignal;
  /** Least time between two `progress` events, in ms. @default 250 */
  readonly progressIntervalMs?: number;
  /**
   * Receives typed events (`start`, `progress`, `retry`, `done`), like the
   * CachingDownloader's. Called synchronously, never awaited; a listener
   * that throws is ignored. `done` is always delivered, before `run()`
   * settles, on failure too.
   * @default undefined
   */
  readonly onEvent?: EventListener<StreamingEvent>;
  /** The random source of backoff jitter; for tests. @default Math.random */
  readonly random?: () => number;
}

/**
 * The defaults of {@link StreamingDownloaderOptions}; `window` defaults to
 * `windowPerConcurrency × concurrency`, `blockSize` to the Reader's.
 *
 * @example
 * ```ts
 * new StreamingDownloader(reader, { concurrency: defaultStreamingOptions.concurrency * 2 });
 * ```
 */
export const defaultStreamingOptions = Object.freeze({
  /** @default 8 (`DEFAULT_CONCURRENCY`) */
  concurrency: DEFAULT_CONCURRENCY,
  /** `window` is this many times `concurrency`. @default 2 */
  windowPerConcurrency: 2,
  /** @default false */
  computeDigest: false,
  /** @default 250 */
  progressIntervalMs: 250,
});

/**
 * {@link StreamingDownloaderOptions} after defaults and checks (each field
 * means the same as there); what {@link resolveStreamingOptions} returns.
 */
export interface ResolvedStreamingOptions {
  readonly concurrency: number;
  readonly window: number;
  /** `undefined`: the Reader's preferred block size. */
  readonly blockSize: number | undefined;
  readonly retry: Required<RetryOptions>;
  readonly expectedDigest: ExpectedDigest | undefined;
  readonly computeDigest: boolean;
  readonly rateLimiter: RateLimiter | undefined;
  readonly signal: AbortSignal | undefined;
  readonly progressIntervalMs: number;
  readonly onEvent: EventListener<StreamingEvent> | undefined;
  readonly random: () => number;
}

/**
 * Fills in defaults and checks every option, naming a bad one, its value
 * and what is allowed.
 *
 * @example
 * ```ts
 * resolveStreamingOptions({ concurrency: 4 }).window // 8
 * resolveStreamingOptions({ concurrency: 0 });
 * // throws: StreamingDownloader option concurrency must be a whole number >= 1, got 0 (number)
 * ```
 */
export function resolveStreamingOptions(options: StreamingDownloaderOptions = {}): ResolvedStreamingOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`${OWNER} options must be an object, got ${describeValue(options)}`);
  }
  const d = defaultStreamingOptions;
  const concurrency = wholeNumber(OWNER, 'concurrency', options.concurrency ?? d.concurrency, { min: 1 });
  const window = wholeNumber(OWNER, 'window', options.window ?? d.windowPerConcurrency * concurrency, { min: concurrency });
  const blockSize = options.blockSize === undefined ? undefined : wholeNumber(OWNER, 'blockSize', options.blockSize, { min: 1, unit: 'bytes' });
  const computeDigest = booleanOption(OWNER, 'computeDigest', options.computeDigest ?? d.computeDigest);
  const progressIntervalMs = wholeNumber(OWNER, 'progressIntervalMs', options.progressIntervalMs ?? d.progressIntervalMs, {
    min: 1,
    max: 2 ** 31 - 1,
    unit: 'ms',
  });
  // Checked now so a malformed digest is a constructor error, not a late stream error.
  const expectedDigest =
    options.expectedDigest === undefined ? undefined : normalizeExpectedDigest(options.expectedDigest, 'expectedDigest');
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError(`${OWNER} option signal must be an AbortSignal, got ${describeValue(signal)}`);
  }
  const limiter = options.rateLimiter;
  if (limiter !== undefined && (typeof limiter !== 'object' || limiter === null || typeof limiter.takeBytes !== 'function')) {
    throw new InvalidArgumentError(`${OWNER} option rateLimiter must be a RateLimiter, got ${describeValue(limiter)}`);
  }
  for (const name of ['onEvent', 'random'] as const) {
    const fn = options[name];
    if (fn !== undefined && typeof fn !== 'function') {
      throw new InvalidArgumentError(`${OWNER} option ${name} must be a function, got ${describeValue(fn)}`);
    }
  }
  return Object.freeze({
    concurrency,
    window,
    blockSize,
    retry: resolveRetryOptions(options.retry),
    expectedDigest,
    computeDigest,
    rateLimiter: limiter,
    signal,
    progressIntervalMs,
    onEvent: options.onEvent,
    random: options.random ?? Math.random,
  });
}

/**
 * What a `StreamingDownloader` did, at any moment or at the end: the
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

/**
 * What a `StreamingDownloader` reports while it runs, discriminated by
 * `type`; the same shapes as the CachingDownloader's `DownloadEvent` where
 * they apply, with a {@link StreamingStatus} as the stats. Also published on
 * `node:diagnostics_channel` as `blockfetch:stream:<type>`.
 */
export type StreamingEvent =
  /** The Reader was asked and the mode chosen; fetching begins. */
  | { readonly type: 'start'; readonly info: ContentInfo; readonly stats: StreamingStatus }
  /** Routine progress, at most every `progressIntervalMs`, only when something changed. */
  | { readonly type: 'progress'; readonly stats: StreamingStatus }
  /** A request failed and will be tried again after `delayMs`. */
  | {
      readonly type: 'retry';
      /** The bytes the failed attempt asked for (inclusive); `{ from: -1, to: -1 }` for the look at the remote and the revalidation. */
      readonly range: ByteRange;
      /** The failed attempt's number for this block (1 for the first failure). */
      readonly attempt: number;
      readonly delayMs: number;
      readonly error: EventError;
      readonly stats: StreamingStatus;
    }
  /**
   * The stream ended: every byte delivered and verified (`status.complete`),
   * or `error` is what the stream errored with; `outcome` says which
   * (`interrupted` when the caller's signal stopped it). Always delivered,
   * once, before `run()` settles.
   */
  | { readonly type: 'done'; readonly outcome: DownloadOutcome; readonly status: StreamingStatus; readonly error?: Error };
