/**
 * The options of the CachingDownloader, their defaults and their checks,
 * and the types it reports with (status and events).
 */
import type { ExpectedDigest } from '../cache/types.js';
import { DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES } from '../defaults.js';
import { BlockfetchError, InvalidArgumentError } from '../errors.js';
import { booleanOption, describeValue, wholeNumber } from '../validate.js';
import type { ByteRange } from '../ranges/byte-range.js';
import { resolveRetryOptions, type RetryOptions } from './backoff.js';
import { combineExpectedDigests, type DigestResult } from './digest.js';
import type { ConnectionBudget } from './connection-budget.js';
import type { EventListener } from './events.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ContentInfo } from './reader.js';
import type { DownloadStats } from './stats.js';

/** Options of `new CachingDownloader(reader, cache, options)`. */
export interface CachingDownloaderOptions {
  /** Requests open at once, 1 to 1024. @default 8 (`DEFAULT_CONCURRENCY`) */
  readonly concurrency?: number;
  /**
   * Adjacent outstanding blocks are fetched in one request of up to this many
   * bytes (never fewer requests than workers while there is enough to do);
   * each block is still marked cached on its own as its bytes land. Set it to
   * the block size or less to fetch one block per request.
   *
   * Left out, the downloader sizes each request from the requests that ended
   * before it (`RequestSizer`): 4 MiB while waiting for response heads costs
   * nothing (the process is busy with the other connections, as on
   * loopback), larger when the process sits idle through those waits (a
   * server or a network with latency), up to this default. Given, requests
   * go up to it whatever was measured.
   * @default 67108864 (64 MiB, `DEFAULT_MAX_REQUEST_BYTES`, as `downloadFile` and the CLI)
   */
  readonly maxRequestBytes?: number;
  /** Retry limits and backoff timing (see `RetryOptions`). @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /**
   * When a pass ends with blocks still outstanding (their attempts ran out),
   * wait (with backoff) and make another pass over what is left, up to
   * `maxPasses`, instead of returning an incomplete status.
   * @default false
   */
  readonly waitForCompletion?: boolean;
  /** The most passes a run makes when `waitForCompletion` is set. @default 10 */
  readonly maxPasses?: number;
  /** Limit the download to this many bytes per second. @default undefined (no limit) */
  readonly bytesPerSecond?: number;
  /** Limit the download to this many new requests per second. @default undefined (no limit) */
  readonly requestsPerSecond?: number;
  /**
   * A rate limiter to use instead of one built from `bytesPerSecond` and
   * `requestsPerSecond` (share one to limit several downloads together).
   * @default undefined
   */
  readonly rateLimiter?: RateLimiter;
  /**
   * A connection limit shared with other downloads (a set of files): a slot
   * is taken from it before each request and given back after, on top of
   * `concurrency`, which still caps this download alone.
   * @default undefined (only `concurrency` limits the requests)
   */
  readonly connectionBudget?: ConnectionBudget;
  /**
   * The whole-file digest the result must have. Wins over the one the reader
   * reports. With neither, a sha256 is still computed and reported.
   * @default undefined
   */
  readonly expectedDigest?: ExpectedDigest;
  /**
   * More digests the result must have, of other algorithms than
   * `expectedDigest` (a publisher's SHA256SUMS and SHA512SUMS, say): every
   * one is checked in the same in-order pass and recorded in the index like
   * `expectedDigest`. Two different digests of one algorithm are an error.
   * Without `expectedDigest`, the first of these is the one reported in
   * `status.digest`.
   * @default undefined
   */
  readonly expectedDigests?: readonly ExpectedDigest[];
  /**
   * Hash the file in order while it downloads. By default it is hashed when
   * there is a digest to verify: `expectedDigest`, or one the reader
   * advertised. `true` always hashes (sha256 unless a digest names another
   * algorithm) and reports the result in `status.digest`; `false` never
   * does, and cannot be combined with `expectedDigest`.
   *
   * Why not always: hashing is CPU the download competes for. Over loopback
   * on 2 cores, 1 GiB took 2.2-2.3 s without it and 3.1-3.6 s with it
   * (hashing on a worker thread did not help: both cores were busy).
   * @default undefined (hash when there is something to verify)
   */
  readonly computeDigest?: boolean;
  /** Bytes read from the data file at a time when hashing the prefix. @default 1048576 (1 MiB) */
  readonly readChunkBytes?: number;
  /** Least time between two `progress` events, in ms. @default 250 */
  readonly progressIntervalMs?: number;
  /**
   * Receives typed events (`start`, `progress`, `retry`, `pass`, `done`).
   * Called synchronously from timers and state changes, never awaited; a
   * listener that throws is ignored. The `done` event is always delivered.
   * @default undefined
   */
  readonly onEvent?: EventListener<DownloadEvent>;
  /** The random source of backoff jitter; for tests. @default Math.random */
  readonly random?: () => number;
}

/**
 * The defaults of {@link CachingDownloaderOptions}.
 *
 * @example
 * ```ts
 * new CachingDownloader(reader, cache, { concurrency: defaultCachingDownloaderOptions.concurrency * 2 });
 * ```
 */
export const defaultCachingDownloaderOptions = Object.freeze({
  /** @default 8 (`DEFAULT_CONCURRENCY`) */
  concurrency: DEFAULT_CONCURRENCY,
  /** @default 67108864 (64 MiB, `DEFAULT_MAX_REQUEST_BYTES`) */
  maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES,
  /** @default false */
  waitForCompletion: false,
  /** @default 10 */
  maxPasses: 10,
  /** @default 1048576 (1 MiB) */
  readChunkBytes: 1024 * 1024,
  /** @default 250 */
  progressIntervalMs: 250,
});

/** Who the messages of {@link resolveCachingOptions} name. */
const OWNER = 'CachingDownloader';

/**
 * {@link CachingDownloaderOptions} after defaults and checks (each field means
 * the same as there); what `resolveCachingOptions` returns.
 */
export interface ResolvedCachingOptions {
  readonly concurrency: number;
  readonly maxRequestBytes: number;
  /** True when `maxRequestBytes` was left out: requests are sized from measurements, up to it. */
  readonly sizeRequests: boolean;
  readonly retry: Required<RetryOptions>;
  readonly waitForCompletion: boolean;
  readonly maxPasses: number;
  readonly bytesPerSecond: number | undefined;
  readonly requestsPerSecond: number | undefined;
  readonly rateLimiter: RateLimiter | undefined;
  readonly connectionBudget: ConnectionBudget | undefined;
  /** The caller's first digest: `expectedDigest`, else `expectedDigests[0]`. */
  readonly expectedDigest: ExpectedDigest | undefined;
  /** Every digest the caller gave, `expectedDigest` first, one per algorithm. */
  readonly expectedDigests: readonly ExpectedDigest[];
  /** `undefined`: hash when there is a digest to verify. */
  readonly computeDigest: boolean | undefined;
  readonly readChunkBytes: number;
  readonly progressIntervalMs: number;
  readonly onEvent: EventListener<DownloadEvent> | undefined;
  readonly random: () => number;
}

/**
 * Fills in defaults and checks every option, naming a bad one, its value and what is allowed.
 *
 * @example
 * ```ts
 * resolveCachingOptions({ concurrency: 4 }).maxRequestBytes // 67108864
 * resolveCachingOptions({ concurrency: 0 });
 * // throws: CachingDownloader option concurrency must be a whole number from 1 to 1024, got 0 (number)
 * ```
 */
export function resolveCachingOptions(options: CachingDownloaderOptions = {}): ResolvedCachingOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`${OWNER} options must be an object, got ${describeValue(options)}`);
  }
  const d = defaultCachingDownloaderOptions;
  const concurrency = wholeNumber(OWNER, 'concurrency', options.concurrency ?? d.concurrency, { min: 1, max: 1024 });
  const maxRequestBytes = wholeNumber(OWNER, 'maxRequestBytes', options.maxRequestBytes ?? d.maxRequestBytes, { unit: 'bytes' });
  const maxPasses = wholeNumber(OWNER, 'maxPasses', options.maxPasses ?? d.maxPasses, { min: 1, max: 1_000_000 });
  const readChunkBytes = wholeNumber(OWNER, 'readChunkBytes', options.readChunkBytes ?? d.readChunkBytes, { min: 1, max: 1 << 30, unit: 'bytes' });
  const progressIntervalMs = wholeNumber(OWNER, 'progressIntervalMs', options.progressIntervalMs ?? d.progressIntervalMs, {
    min: 1,
    max: 2 ** 31 - 1,
    unit: 'ms',
  });
  const waitForCompletion = booleanOption(OWNER, 'waitForCompletion', options.waitForCompletion ?? d.waitForCompletion);
  const computeDigest = options.computeDigest === undefined ? undefined : booleanOption(OWNER, 'computeDigest', options.computeDigest);
  const expectedDigests = Object.freeze(combineExpectedDigests(OWNER, options.expectedDigest, options.expectedDigests));
  const expectedDigest = expectedDigests[0];
  if (expectedDigest !== undefined && computeDigest === false) {
    throw new InvalidArgumentError(
      `${OWNER} option ${options.expectedDigest === undefined ? 'expectedDigests' : 'expectedDigest'} cannot be checked with computeDigest: false`,
    );
  }
  for (const name of ['bytesPerSecond', 'requestsPerSecond'] as const) {
    const v = options[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)) {
      throw new InvalidArgumentError(`${OWNER} option ${name} must be a finite number > 0, got ${describeValue(v)}`);
    }
  }
  for (const name of ['onEvent', 'random'] as const) {
    const fn = options[name];
    if (fn !== undefined && typeof fn !== 'function') {
      throw new InvalidArgumentError(`${OWNER} option ${name} must be a function, got ${describeValue(fn)}`);
    }
  }
  return Object.freeze({
    concurrency,
    maxRequestBytes,
    sizeRequests: options.maxRequestBytes === undefined,
    retry: resolveRetryOptions(options.retry),
    waitForCompletion,
    maxPasses,
    bytesPerSecond: options.bytesPerSecond,
    requestsPerSecond: options.requestsPerSecond,
    rateLimiter: options.rateLimiter,
    connectionBudget: options.connectionBudget,
    expectedDigest,
    expectedDigests,
    computeDigest,
    readChunkBytes,
    progressIntervalMs,
    onEvent: options.onEvent,
    random: options.random ?? Math.random,
  });
}

/**
 * How a run ended. `run()` resolves with one of these for every outcome of
 * the download itself (success, failure, abort); it rejects only for
 * programming errors (a second concurrent `run()`).
 *
 * @example
 * ```ts
 * const status = await dl.run(signal);
 * if (status.complete) console.log('done', status.digest?.hex);
 * else if (status.resumable) console.log('run again to continue:', status.error?.message);
 * else console.error('cannot continue:', status.error?.code, status.error?.hint);
 * ```
 */
export interface DownloadStatus {
  /** The final statistics of the run. */
  readonly stats: DownloadStats;
  /** True when every block is cached and the digest (if one was expected) matched. */
  readonly complete: boolean;
  /**
   * True when the cache was left consistent (index flushed, no failed disk
   * write) and running again can make progress: after an abort, exhausted
   * retries or a transient remote failure. False after a failed disk write
   * or flush, a changed remote (restart needed) or a digest mismatch. True
   * for a complete download.
   */
  readonly resumable: boolean;
  /** How long the run took, in ms. */
  readonly durationMs: number;
  /** The error that ended the run, when it did not complete. */
  readonly error?: BlockfetchError;
  /** The whole-file digest, when the file was hashed to its end. */
  readonly digest?: DigestResult;
}

/** An error's code and message, as events carry them. */
export interface EventError {
  readonly code: string;
  readonly message: string;
}

/**
 * What a CachingDownloader reports while it runs, discriminated by `type`.
 * Also published on `node:diagnostics_channel` as
 * `blockfetch:download:<type>`.
 */
export type DownloadEvent =
  /**
   * The remote was looked at and accepted; fetching begins with at most
   * `connections` requests at once: `concurrency`, or 1 when the server
   * serves no byte ranges, or sends no validator (no ETag, no Last-Modified)
   * and no digest is known, since then nothing would prove that bytes from
   * parallel requests are of one revision.
   */
  | { readonly type: 'start'; readonly info: ContentInfo; readonly connections: number; readonly stats: DownloadStats }
  /** Routine progress, at most every `progressIntervalMs`, only when something changed. */
  | { readonly type: 'progress'; readonly stats: DownloadStats }
  /** A request failed and will be tried again after `delayMs`. */
  | {
      readonly type: 'retry';
      /**
       * The bytes the failed attempt asked for (inclusive); `{ from: -1, to: -1 }`
       * when it was the look at the remote (`contentLengthAndBlockSize`) or
       * the revalidation at the end.
       */
      readonly range: ByteRange;
      /** The failed attempt's number for this block (1 for the first failure). */
      readonly attempt: number;
      readonly delayMs: number;
      readonly error: EventError;
      readonly stats: DownloadStats;
    }
  /** Another pass over the outstanding blocks starts after `delayMs` (`waitForCompletion`). */
  | { readonly type: 'pass'; readonly pass: number; readonly outstandingBlocks: number; readonly delayMs: number; readonly stats: DownloadStats }
  /**
   * The run ended; always delivered, before `run()` resolves. `outcome`
   * says how, so a listener need not read `status` to tell a finished file
   * from a failure or an abort.
   */
  | { readonly type: 'done'; readonly outcome: DownloadOutcome; readonly status: DownloadStatus };

/**
 * How a run ended, in the `done` event of both downloaders: every byte
 * there and verified (`complete`), stopped by the caller's signal
 * (`interrupted`: the error is a `BLOCKFETCH_ABORTED`), or any other end
 * without the whole file (`failed`).
 *
 * @example
 * ```ts
 * new CachingDownloader(reader, cache, {
 *   onEvent: (e) => {
 *     if (e.type === 'done' && e.outcome !== 'complete') console.error(e.outcome, e.status.error?.message);
 *   },
 * });
 * ```
 */
export type DownloadOutcome = 'complete' | 'failed' | 'interrupted';

/**
 * The {@link DownloadOutcome} of a run that ended `complete` or with `error`.
 *
 * @example
 * ```ts
 * outcomeOf(true, undefined); // 'complete'
 * outcomeOf(false, new AbortedError()); // 'interrupted'
 * outcomeOf(false, new RetriesExhaustedError('block 3 failed', 6)); // 'failed'
 * ```
 */
export function outcomeOf(complete: boolean, error: unknown): DownloadOutcome {
  if (complete) return 'complete';
  return error instanceof BlockfetchError && error.code === 'BLOCKFETCH_ABORTED' ? 'interrupted' : 'failed';
}
