/**
 * Rate control: token buckets on bytes per second and requests per second.
 *
 * Downloaders call {@link RateLimiter.takeBytes} for every chunk BEFORE they
 * hand it on (write it to the cache, or deliver it to a stream), so the bytes
 * delivered never run ahead of the bucket by more than its burst, however
 * large a block is. Pausing the body's async iteration while waiting is what
 * slows the network: the socket's receive window fills and TCP backs off.
 *
 * Waiters are served first come, first served (a large chunk cannot be
 * starved by a stream of small ones), and every wait ends at once when its
 * AbortSignal fires.
 */
import { InvalidArgumentError } from '../errors.js';
import { sleep } from './backoff.js';

/** Time as the limiter sees it: replaceable so tests can step time by hand. */
export interface RateClock {
  /** Milliseconds from an arbitrary origin; never goes backwards. */
  now(): number;
  /** Waits `ms` milliseconds; rejects with `signal.reason` at once on abort. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `performance.now()` and a cancellable `setTimeout`. */
export const systemClock: RateClock = Object.freeze({
  now: () => performance.now(),
  sleep: (ms: number, signal?: AbortSignal) => sleep(ms, signal),
});

/** Options of {@link RateLimiter}. Leave a rate out for no limit on it. */
export interface RateLimiterOptions {
  /** The sustained byte rate. @default undefined (no limit) */
  readonly bytesPerSecond?: number;
  /**
   * How many bytes may go at once after a quiet spell (the bucket's size).
   * Larger chunks are let through piece by piece, never all at once.
   * @default a quarter of a second's worth: `Math.max(1, Math.ceil(bytesPerSecond / 4))`
   */
  readonly burstBytes?: number;
  /** The sustained rate of new requests. @default undefined (no limit) */
  readonly requestsPerSecond?: number;
  /** How many requests may start at once after a quiet spell. @default 1 */
  readonly burstRequests?: number;
  /** The clock. @default {@link systemClock} */
  readonly clock?: RateClock;
}

/**
 * Limits the byte rate and the request rate of one or more downloads (share
 * one instance to limit several together).
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ bytesPerSecond: 10 * 1024 * 1024 });
 * for await (const chunk of body) {
 *   await limiter.takeBytes(chunk.length, signal); // waits while the bucket is empty
 *   await write(chunk);
 * }
 * ```
 */
export class RateLimiter {
  readonly #bytes: TokenBucket | undefined;
  readonly #requests: TokenBucket | undefined;
  #grantedBytes = 0;

  constructor(options: RateLimiterOptions = {}) {
    const clock = options.clock ?? systemClock;
    const bps = optionalRate('bytesPerSecond', options.bytesPerSecond);
    const rps = optionalRate('requestsPerSecond', options.requestsPerSecond);
    if (bps !== undefined) {
      const burst = optionalRate('burstBytes', options.burstBytes) ?? Math.max(1, Math.ceil(bps / 4));
      this.#bytes = new TokenBucket(bps, burst, clock);
    } else if (options.burstBytes !== undefined) {
      optionalRate('burstBytes', options.burstBytes);
    }
    if (rps !== undefined) {
      const burst = optionalRate('burstRequests', options.burstRequests) ?? 1;
      this.#requests = new TokenBucket(rps, burst, clock);
    } else if (options.burstRequests !== undefined) {
      optionalRate('burstRequests', options.burstRequests);
    }
  }

  /** True when neither bytes nor requests are limited (every take resolves at once). */
  get unlimited(): boolean {
    return this.#bytes === undefined && this.#requests === undefined;
  }

  /** Bytes granted so far by {@link RateLimiter.takeBytes}. */
  get grantedBytes(): number {
    return this.#grantedBytes;
  }

  /**
   * Waits until `bytes` bytes may be delivered, then takes them from the
   * bucket. A request larger than the burst is granted in burst-sized
   * pieces, so nothing ever runs ahead of the rate by more than one burst.
   * Rejects with `signal.reason` the moment `signal` aborts (bytes granted to
   * earlier pieces of the same call stay taken).
   */
  async takeBytes(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new InvalidArgumentError(`takeBytes: bytes must be a whole number >= 0, got ${String(bytes)} (${typeof bytes})`);
    }
    signal?.throwIfAborted();
    if (this.#bytes === undefined) {
      this.#grantedBytes += bytes;
      return;
    }
    let left = bytes;
    while (left > 0) {
      const piece = Math.min(left, this.#bytes.capacity);
      await this.#bytes.take(piece, signal);
      this.#grantedBytes += piece;
      left -= piece;
    }
  }

  /** Waits until one more request may start. Rejects with `signal.reason` on abort. */
  async takeRequest(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#requests !== undefined) await this.#requests.take(1, signal);
  }
}

/**
 * One token bucket. `take` calls are chained so they are served in order;
 * `amount` must not exceed `capacity` (the limiter splits larger takes).
 */
class TokenBucket {
  readonly rate: number;
  readonly capacity: number;
  readonly #clock: RateClock;
  #tokens: number;
  #last: number;
  /** Settles when the last waiter in line is done (never rejects). */
  #tail: Promise<void> = Promise.resolve();

  constructor(ratePerSecond: number, capacity: number, clock: RateClock) {
    this.rate = ratePerSecond;
    this.capacity = capacity;
    this.#clock = clock;
    this.#tokens = capacity;
    this.#last = clock.now();
  }

  take(amount: number, signal?: AbortSignal): Promise<void> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    const run = async (): Promise<void> => {
      try {
        await untilSettledOrAborted(previous, signal);
        this.#refill();
        while (this.#tokens < amount) {
          // Ask for exactly the time the deficit needs; rounding up keeps a
          // 1 ms timer from firing a hair early and spinning.
          const waitMs = Math.max(1, Math.ceil(((amount - this.#tokens) / this.rate) * 1000));
          await this.#clock.sleep(waitMs, signal);
          this.#refill();
        }
        this.#tokens -= amount;
      } finally {
        // An aborted waiter still hands over in order: the next in line starts
        // only once everyone before it is done, so nobody jumps the queue.
        void previous.then(release);
      }
    };
    return run();
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = Math.max(0, now - this.#last);
    this.#last = now;
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsed * this.rate) / 1000);
  }
}

/** Resolves when `p` settles, or rejects with `signal.reason` when `signal` aborts first. */
function untilSettledOrAborted(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

function optionalRate(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`rate option ${name} must be a finite number > 0, got ${String(value)} (${typeof value})`);
  }
  return value;
}
