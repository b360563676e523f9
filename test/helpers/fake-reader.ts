/**
 * A scripted {@link Reader} for the downloader's tests: serves a
 * self-describing payload (or any content) in chunks, and fails on purpose —
 * a seeded random share of requests refused, bodies cut short, bodies that
 * run long, Retry-After hints, per-request delays — while recording every
 * request it was asked for.
 */
import type { ExpectedDigest, RemoteIdentity } from '../../src/cache/types.js';
import { sleep } from '../../src/download/backoff.js';
import type { ContentInfo, Reader } from '../../src/download/reader.js';
import { BlockfetchError, InvalidArgumentError } from '../../src/errors.js';
import { payload } from './payload.js';
import { seededRandom } from './random.js';

/** What one request should suffer. Anything left out: served normally. */
export interface FakeFault {
  /** Refuse the request with this error (thrown from getReader). */
  readonly refuse?: Error;
  /** Wait this long (abortable) before the body starts. */
  readonly delayMs?: number;
  /** End the body cleanly after this many bytes (a short body). */
  readonly endAfter?: number;
  /** Throw this error from the body after `endAfter` bytes (a reset connection). */
  readonly errorAfterEnd?: Error;
  /**
   * Yield this many extra bytes after the range, as if they were in it: a
   * Reader that BREAKS its contract, so that a test can prove the caller's
   * own byte count catches it. For a source that runs long behind a Reader
   * that keeps the contract, use `overrun`.
   */
  readonly extraBytes?: number;
  /**
   * The source sends this many bytes past the range: like `HttpReader`, the
   * fake yields the range and then fails the body with a retryable
   * `BLOCKFETCH_BODY_LENGTH` instead of yielding any byte past `to`.
   */
  readonly overrun?: number;
  /** After this many bytes of the body, send nothing more until aborted (a stalled connection). */
  readonly stallAfter?: number;
  /** Delay between this body's chunks, ms (a slow route); the reader's `chunkDelayMs` otherwise. */
  readonly chunkDelayMs?: number;
}

/** One request the reader was asked for. */
export interface FakeRequest {
  readonly from: number;
  readonly to: number;
  /** `performance.now()` when it was made. */
  readonly at: number;
  /** Bytes the body delivered. */
  delivered: number;
  /** `performance.now()` when the body ended (served, failed or aborted); undefined while open. */
  endedAt: number | undefined;
  /** How the request ended: served whole, failed on purpose, or aborted. */
  outcome: 'open' | 'ok' | 'fault' | 'aborted';
}

export interface FakeReaderOptions {
  readonly size: number;
  readonly blockSize?: number;
  /** The bytes of the file; the self-describing payload by default. */
  readonly content?: (from: number, to: number) => Uint8Array;
  /** Bytes per chunk yielded. @default 4096 */
  readonly chunkSize?: number;
  readonly identity?: Partial<RemoteIdentity>;
  readonly rangesSupported?: boolean;
  readonly digest?: ExpectedDigest;
  /** Seed of the RNG deciding random failures. @default 1 */
  readonly seed?: number;
  /** Share of requests that fail at random (half refused, half cut part way). @default 0 */
  readonly failureRatio?: number;
  /** Delay before every body, ms. @default 0 */
  readonly delayMs?: number;
  /** Delay between chunks, ms. @default 0 */
  readonly chunkDelayMs?: number;
  /** Per-request script, consulted first; `n` counts requests from 0. */
  readonly script?: (request: { from: number; to: number; n: number }) => FakeFault | undefined;
  /** What the first look says the process idled while it waited for the answer (`ContentInfo.firstAnswerIdleMs`). @default undefined */
  readonly firstAnswerIdleMs?: number;
  /** Failures of contentLengthAndBlockSize before it answers. @default 0 */
  readonly lookFailures?: number;
}


/** How long a stalled body waits: longer than any test, shorter than setTimeout's limit. */
const STALL_MS = 60 * 60 * 1000;

/** A transient failure, as a network error would be. */
export function transient(message = 'connection reset (scripted)', retryAfterMs?: number): BlockfetchError {
  return new BlockfetchError('BLOCKFETCH_NETWORK', message, {
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

export class FakeReader implements Reader {
  readonly name = 'fake://payload';
  readonly requests: FakeRequest[] = [];
  /** Requests open right now, and the most ever open at once. */
  open = 0;
  maxOpen = 0;
  looks = 0;
  readonly #o: FakeReaderOptions;
  readonly #random: () => number;
  #failureRatio: number;
  #lookFailures: number;

  constructor(options: FakeReaderOptions) {
    this.#o = options;
    this.#random = seededRandom(options.seed ?? 1);
    this.#failureRatio = options.failureRatio ?? 0;
    this.#lookFailures = options.lookFailures ?? 0;
  }

  /** Changes the random failure share (for restart rounds). */
  setFailureRatio(ratio: number): void {
    this.#failureRatio = ratio;
  }

  async contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    signal?.throwIfAborted();
    this.looks++;
    if (this.#lookFailures > 0) {
      this.#lookFailures--;
      throw transient('first look failed (scripted)');
    }
    return {
      contentLength: this.#o.size,
      blockSize: this.#o.blockSize ?? 1024,
      identity: { url: this.name, size: this.#o.size, etag: '"v1"', ...this.#o.identity },
      rangesSupported: this.#o.rangesSupported ?? true,
      pinned: true,
      ...(this.#o.firstAnswerIdleMs === undefined ? {} : { firstAnswerIdleMs: this.#o.firstAnswerIdleMs }),
    };
  }

  digest(): ExpectedDigest | undefined {
    return this.#o.digest;
  }

  async getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    signal.throwIfAborted();
    // The Reader contract: `from..from-1` is the empty range; anything else outside the file is refused for good.
    if (Number.isSafeInteger(from) && to === from - 1 && from >= 0 && from <= this.#o.size) return emptyBody(signal);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from || to >= this.#o.size) {
      throw new InvalidArgumentError(`FakeReader: range ${from}-${to} is not inside the ${this.#o.size} bytes`);
    }
    const n = this.requests.length;
    const request: FakeRequest = { from, to, at: performance.now(), delivered: 0, outcome: 'open', endedAt: undefined };
    this.requests.push(request);
    let fault = this.#o.script?.({ from, to, n });
    if (fault === undefined && this.#failureRatio > 0 && this.#random() < this.#failureRatio) {
      const length = to - from + 1;
      fault =
        this.#random() < 0.5
          ? { refuse: transient('refused (random)') }
          : { endAfter: Math.floor(this.#random() * length), errorAfterEnd: transient('cut (random)') };
    }
    if (fault?.refuse !== undefined) {
      request.outcome = 'fault';
      request.endedAt = performance.now();
      throw fault.refuse;
    }
    return this.#body(request, fault ?? {}, signal);
  }

  async *#body(request: FakeRequest, fault: FakeFault, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    try {
      const delay = fault.delayMs ?? this.#o.delayMs ?? 0;
      if (delay > 0) await sleep(delay, signal);
      const chunk = this.#o.chunkSize ?? 4096;
      const stopAt = fault.endAfter === undefined ? request.to + 1 : request.from + fault.endAfter;
      const last = Math.min(request.to + 1, stopAt) + (fault.extraBytes ?? 0);
      for (let pos = request.from; pos < last; ) {
        signal.throwIfAborted();
        if (fault.stallAfter !== undefined && pos - request.from >= fault.stallAfter) await sleep(STALL_MS, signal);
        const chunkDelay = fault.chunkDelayMs ?? this.#o.chunkDelayMs ?? 0;
        if (chunkDelay > 0) await sleep(chunkDelay, signal);
        const stallAt = fault.stallAfter === undefined ? Infinity : request.from + fault.stallAfter;
        // A chunk never spans the stall: the bytes before it arrive, then nothing.
        const end = Math.min(pos + chunk, last, pos < stallAt ? stallAt : Infinity);
        const bytes =
          end - 1 < this.#o.size
            ? this.#content(pos, end - 1)
            : Buffer.concat([this.#content(pos, this.#o.size - 1), Buffer.alloc(end - Math.max(pos, this.#o.size), 0xee)]);
        request.delivered += bytes.length;
        pos = end;
        yield bytes;
      }
      if (fault.overrun !== undefined && fault.overrun > 0 && fault.endAfter === undefined) {
        request.outcome = 'fault';
        throw new BlockfetchError('BLOCKFETCH_BODY_LENGTH', `${this.name}: the body is longer than the ${request.to - request.from + 1} bytes asked for (scripted)`);
      }
      if (fault.errorAfterEnd !== undefined) {
        request.outcome = 'fault';
        throw fault.errorAfterEnd;
      }
      request.outcome = fault.endAfter !== undefined || fault.extraBytes !== undefined ? 'fault' : 'ok';
    } catch (err) {
      if (signal.aborted) request.outcome = 'aborted';
      throw err;
    } finally {
      this.open--;
      request.endedAt = performance.now();
    }
  }

  #content(from: number, to: number): Uint8Array {
    if (to < from) return new Uint8Array(0);
    return this.#o.content?.(from, to) ?? payload(from, to);
  }
}

/** The body of the empty range: nothing, unless the caller aborted first. */
async function* emptyBody(signal: AbortSignal): AsyncGenerator<Uint8Array, void, undefined> {
  signal.throwIfAborted();
}
