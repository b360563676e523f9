/**
 * How many bytes one request should ask for, from what the requests so far
 * have shown.
 *
 * A request waits once for its response head (a round trip and the server's
 * own delay) and then streams its body. Its size trades two costs:
 * - too short, and the waits add up: over a network with 100 ms of round
 *   trip, a 4 MiB request at 12 MB/s spends a quarter of its time waiting;
 * - too long, and a `kill -9` costs more: what the server has already sent
 *   of a request sits in the socket queues on both ends, and a kill throws it
 *   away. On loopback, where the server sends faster than we write, those
 *   queues hold the rest of each request, up to several MiB per connection.
 *
 * A head wait costs wall time only while the process has nothing else to
 * do. When every connection keeps the process busy (loopback, a fast LAN),
 * a connection waiting for its head loses nothing, and small requests bound
 * what a kill throws away. So the wait that counts is the event loop's idle
 * time while the request waited for its first body byte: 0 ms on loopback
 * at c8, 10-19 ms of each 20 ms head delay from a server pacing each
 * connection to 50 MB/s (measured 2026-12-07). A request asks for
 * {@link HEAD_WAIT_MULTIPLE} times what its connection receives in that
 * time, so such waits are about 1.5 % of a request: the upper quartile of
 * the recent idle waits (at 16 connections most waits overlap the other
 * requests' bodies and show little idle time, though the connection itself
 * streams nothing meanwhile) times the median body rate, both over the
 * last 16 requests. The result is never below the plan's smallest share,
 * `SMALLEST_SHARE_BYTES` (4 MiB), nor above the caller's `maxRequestBytes`.
 *
 * Until a request has ended there is nothing measured, and the first round
 * of requests is sized from the reader's first look
 * ({@link RequestSizer.firstLooked}): the event loop's idle time while it
 * waited for its answer (`ContentInfo.firstAnswerIdleMs`). At least
 * {@link REMOTE_ANSWER_MS} (10 ms) marks a remote across a network, where
 * the rule above chooses more than the floor for any connection faster than
 * 4 MiB / (64 × 10 ms), 6.5 MB/s; so the first round asks for up to
 * `maxRequestBytes` (the plan's shares bound it), which saves each
 * connection one head wait. Less (0.0-0.4 ms from nginx on loopback,
 * against 20.6-21.0 ms from a server that waits 20 ms before each head)
 * leaves the first round at the floor, which bounds what a kill throws away
 * where the server sends faster than we write.
 *
 * @example
 * ```ts
 * const sizer = new RequestSizer(64 << 20);
 * sizer.capBytes(); // 4194304: nothing measured yet
 * sizer.firstLooked(21); // idle 21 ms while the first look waited: a remote across a network
 * sizer.capBytes(); // 67108864: the first round asks for up to the cap
 * sizer.requestEnded({ idleHeadWaitMs: 15, bytes: 4 << 20, bodyMs: 100 }); // 15 ms idle, then 41943 bytes per ms
 * sizer.capBytes(); // 40265318: 64 × 15 ms × 41943.04 bytes per ms
 * sizer.requestEnded({ idleHeadWaitMs: 0, bytes: 4 << 20, bodyMs: 50 }); // a busy process: waits cost nothing
 * ```
 */
import { SMALLEST_SHARE_BYTES } from './request-planner.js';
import { keepLast, median, upperQuartile } from './samples.js';

/** Requests ask for this many times what a connection receives during an idle head wait. */
export const HEAD_WAIT_MULTIPLE = 64;

/**
 * A first look that waited at least this long (ms) for its answer marks a
 * remote across a network: the first round of requests is not held to the
 * floor (see the module comment).
 */
export const REMOTE_ANSWER_MS = 10;

/** How many recent requests the quartile and the median are taken over. */
const SAMPLES_KEPT = 16;

/** What one ended request showed. */
export interface RequestTimings {
  /** How long the event loop was idle (ms) between the request's start and its first body byte. */
  readonly idleHeadWaitMs: number;
  /** Bytes of body received. */
  readonly bytes: number;
  /** From the first body byte to the end of the request, in ms. */
  readonly bodyMs: number;
}

/** Chooses request sizes from the idle head waits and rates of requests that ended (see the module comment). */
export class RequestSizer {
  readonly #maxRequestBytes: number;
  /** The last {@link SAMPLES_KEPT} idle head waits (ms), oldest first. */
  readonly #idleWaits: number[] = [];
  /** The last {@link SAMPLES_KEPT} body rates (bytes per ms once the body began), oldest first. */
  readonly #rates: number[] = [];
  /** The first look took at least {@link REMOTE_ANSWER_MS}: the first round is not held to the floor. */
  #remote = false;

  /** @param maxRequestBytes the largest size it may choose (the caller's cap). */
  constructor(maxRequestBytes: number) {
    this.#maxRequestBytes = maxRequestBytes;
  }

  /**
   * Records how long the event loop was idle while the reader's first look
   * waited for its answer (`ContentInfo.firstAnswerIdleMs`; undefined when
   * the reader did not measure it), which sizes the requests until one has
   * ended.
   */
  firstLooked(answerMs: number | undefined): void {
    this.#remote = answerMs !== undefined && answerMs >= REMOTE_ANSWER_MS;
  }

  /** Records an ended request. */
  requestEnded(t: RequestTimings): void {
    if (!(t.idleHeadWaitMs >= 0) || !(t.bytes > 0) || !(t.bodyMs > 0)) return;
    keepLast(this.#idleWaits, t.idleHeadWaitMs, SAMPLES_KEPT);
    keepLast(this.#rates, t.bytes / t.bodyMs, SAMPLES_KEPT);
  }

  /** The bytes the next request may ask for. */
  capBytes(): number {
    const floor = Math.min(SMALLEST_SHARE_BYTES, this.#maxRequestBytes);
    const idleWait = upperQuartile(this.#idleWaits);
    const rate = median(this.#rates);
    if (idleWait === undefined || rate === undefined) return this.#remote ? Math.max(floor, this.#maxRequestBytes) : floor;
    const wanted = HEAD_WAIT_MULTIPLE * idleWait * rate;
    return Math.max(floor, Math.min(this.#maxRequestBytes, Math.floor(wanted)));
  }
}
