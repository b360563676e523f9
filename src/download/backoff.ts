/**
 * Retry timing: a pure backoff function, a per-block retry budget, and a
 * sleep that ends the moment its AbortSignal fires.
 *
 * Unlike the Go seed (which retried immediately and forever by default),
 * blockfetch always waits between attempts and always has a limit.
 */
import { DEFAULT_MAX_RETRY_AFTER_MS } from '../defaults.js';
import { definedFields, numberInRange, wholeNumber } from '../validate.js';

/** The knobs of {@link backoffDelay} and {@link RetryBudget}. */
export interface RetryOptions {
  /** Attempts per block before giving up on it, counting the first. @default 6 */
  readonly attemptsPerBlock?: number;
  /** Retries across the whole run before giving up on the run. @default 200 */
  readonly totalRetries?: number;
  /** The first delay, in ms; doubled on each further attempt. @default 250 */
  readonly baseDelayMs?: number;
  /** The largest exponential delay, in ms. @default 30000 */
  readonly maxDelayMs?: number;
  /**
   * The longest delay a server may ask for with Retry-After that is waited
   * for, in ms. A longer request is honoured up to this cap, never beyond and
   * never silently below it: the cap is this option, so a caller who sets 10
   * minutes waits up to 10 minutes. (A Reader may apply its own cap before
   * the delay reaches the downloader; `HttpReader` has `maxRetryAfterMs` too.)
   * @default 120000 (`DEFAULT_MAX_RETRY_AFTER_MS`, 2 min)
   */
  readonly maxRetryAfterMs?: number;
  /**
   * Fraction of each exponential delay that is random, 0 (none) to 1 (full
   * jitter), so that many clients do not retry in lock step. @default 0.5
   */
  readonly jitter?: number;
  /**
   * The lowest-speed rule (curl's `--speed-limit`, aria2's
   * `--lowest-speed-limit`): an attempt whose body arrives slower than this
   * many bytes per second, averaged over `lowestSpeedTimeMs` of waiting for
   * the network (time spent in the rate limiter or a slow consumer does not
   * count), ends as a retryable `BLOCKFETCH_TIMEOUT`, and its range is
   * fetched again from the first byte not yet received. 0 turns it off.
   * @default 1024 (1 KiB/s: a 2 MiB block would take over half an hour)
   */
  readonly lowestSpeedBytesPerSecond?: number;
  /** How long an attempt may run below `lowestSpeedBytesPerSecond`, in ms. @default 60000 (1 min) */
  readonly lowestSpeedTimeMs?: number;
}

/**
 * {@link RetryOptions} with every default filled in.
 *
 * @example
 * ```ts
 * await downloadFile(url, target, { retry: { attemptsPerBlock: defaultRetryOptions.attemptsPerBlock * 2 } });
 * ```
 */
export const defaultRetryOptions: Required<RetryOptions> = Object.freeze({
  attemptsPerBlock: 6,
  totalRetries: 200,
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS,
  jitter: 0.5,
  lowestSpeedBytesPerSecond: 1024,
  lowestSpeedTimeMs: 60_000,
});

/**
 * Fills in defaults and checks every field, naming a bad one.
 *
 * @example
 * ```ts
 * resolveRetryOptions({ attemptsPerBlock: 3 }).totalRetries // 200
 * resolveRetryOptions({ jitter: 2 }) // throws: retry option jitter must be a number from 0 to 1, got 2 (number)
 * ```
 */
export function resolveRetryOptions(options: RetryOptions = {}): Required<RetryOptions> {
  const o = { ...defaultRetryOptions, ...definedFields(options) };
  return Object.freeze({
    attemptsPerBlock: wholeNumber('retry', 'attemptsPerBlock', o.attemptsPerBlock, { min: 1 }),
    totalRetries: wholeNumber('retry', 'totalRetries', o.totalRetries),
    baseDelayMs: wholeNumber('retry', 'baseDelayMs', o.baseDelayMs, { unit: 'ms' }),
    maxDelayMs: wholeNumber('retry', 'maxDelayMs', o.maxDelayMs, { unit: 'ms' }),
    maxRetryAfterMs: wholeNumber('retry', 'maxRetryAfterMs', o.maxRetryAfterMs, { unit: 'ms' }),
    jitter: numberInRange('retry', 'jitter', o.jitter, 0, 1),
    lowestSpeedBytesPerSecond: wholeNumber('retry', 'lowestSpeedBytesPerSecond', o.lowestSpeedBytesPerSecond),
    lowestSpeedTimeMs: wholeNumber('retry', 'lowestSpeedTimeMs', o.lowestSpeedTimeMs, { min: 1, unit: 'ms' }),
  });
}

/**
 * The delay before retry number `attempt` (1 for the first retry), in ms.
 *
 * A delay the server asked for (`retryAfterMs`, from Retry-After) is honoured
 * as given but capped at `maxRetryAfterMs`. Otherwise the delay is
 * `min(maxDelayMs, baseDelayMs * 2^(attempt-1))`, of which the fraction
 * `jitter` is replaced by a random share (`random()` in [0, 1)).
 * Pure: pass `random` to make it deterministic in tests.
 *
 * @example
 * ```ts
 * backoffDelay(3, { baseDelayMs: 100, jitter: 0 }) // 400
 * backoffDelay(1, { maxRetryAfterMs: 5000 }, 10_000) // 5000
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: RetryOptions = {},
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const o = { ...defaultRetryOptions, ...definedFields(options) };
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0) {
    return Math.min(Math.round(retryAfterMs), o.maxRetryAfterMs);
  }
  const exponent = Math.max(0, Math.min(attempt - 1, 52));
  const exponential = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** exponent);
  const fixed = exponential * (1 - o.jitter);
  return Math.round(fixed + exponential * o.jitter * random());
}

/** What {@link RetryBudget.onFailure} decided. */
export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number; readonly attempt: number }
  | { readonly retry: false; readonly reason: 'not-retryable' | 'block-attempts' | 'total-retries'; readonly attempt: number };

/**
 * Counts failures per key (a block index, or any other value) and across a run, and decides
 * whether to retry and after how long. A key's count resets when its work
 * made progress, so a block that fails after moving some bytes is not
 * punished like one that fails at once.
 */
export class RetryBudget<K = number> {
  readonly #options: Required<RetryOptions>;
  readonly #attempts = new Map<K, number>();
  readonly #random: () => number;
  #retries = 0;

  /** @param random the source of jitter; `Math.random` unless testing. */
  constructor(options: RetryOptions = {}, random: () => number = Math.random) {
    this.#options = resolveRetryOptions(options);
    this.#random = random;
  }

  /** Retries granted so far in this run. */
  get retries(): number {
    return this.#retries;
  }

  /**
   * Records a failure of `key` and decides. `retryable` and `retryAfterMs`
   * come from the error's RetryResponse.
   */
  onFailure(key: K, retryable: boolean, retryAfterMs?: number): RetryDecision {
    const attempt = (this.#attempts.get(key) ?? 0) + 1;
    this.#attempts.set(key, attempt);
    if (!retryable) return { retry: false, reason: 'not-retryable', attempt };
    if (attempt >= this.#options.attemptsPerBlock) return { retry: false, reason: 'block-attempts', attempt };
    if (this.#retries >= this.#options.totalRetries) return { retry: false, reason: 'total-retries', attempt };
    this.#retries++;
    return { retry: true, delayMs: backoffDelay(attempt, this.#options, retryAfterMs, this.#random), attempt };
  }

  /** Records that `key` made progress: its failure count starts again. */
  onProgress(key: K): void {
    this.#attempts.delete(key);
  }

  /**
   * Starts every key's failure count again, keeping the run's total: what a
   * new pass over the outstanding blocks does.
   */
  resetAttempts(): void {
    this.#attempts.clear();
  }
}

/**
 * Waits `ms` milliseconds, or less: rejects with `signal.reason` the moment
 * `signal` aborts (at once if it already has). Leaves no timer or listener
 * behind either way.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

