/**
 * The event loop's idle time, for telling a wait that cost wall time from
 * one that overlapped other work: the difference of two readings is how
 * long the process had nothing to do in between. Request sizing is built
 * on it (`RequestSizer`): the idle part of a head wait is 0 ms on loopback,
 * where other connections keep the process busy, and about the server's
 * delay from a remote across a network.
 *
 * @example
 * ```ts
 * const before = idleMs();
 * const info = await reader.contentLengthAndBlockSize();
 * const idleWhileWaiting = idleMs() - before;
 * ```
 */
import { performance } from 'node:perf_hooks';

/** The event loop's idle time so far, in ms (`performance.eventLoopUtilization().idle`); only differences mean anything. */
export function idleMs(): number {
  return performance.eventLoopUtilization().idle;
}

/**
 * The share of recent wall time the event loop spent idle, from readings
 * taken whenever the caller looks ({@link IdleShare.sample}): over the
 * window from the newest reading at least `windowMs` old (or the oldest
 * kept, early on) to now. The downloader's tail asks it whether a new
 * connection could add speed: while the loop is never idle, the process
 * itself is what limits the transfer and the bytes a request has ahead
 * already wait in the socket queues.
 *
 * @example
 * ```ts
 * const recent = new IdleShare(100);
 * recent.sample(performance.now()); // whenever the caller looks
 * const share = recent.share(performance.now()); // 0..1, undefined before the second look
 * ```
 */
export class IdleShare {
  readonly #windowMs: number;
  /** Readings (time, idle ms), oldest first, at least {@link READING_GAP_MS} apart. */
  readonly #readings: { readonly at: number; readonly idle: number }[] = [];

  /** @param windowMs the shortest window a share is taken over once the readings reach back that far. */
  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Takes a reading at `now` (a `performance.now()` value), unless the last is under 5 ms old. */
  sample(now: number): void {
    const readings = this.#readings;
    const last = readings[readings.length - 1];
    if (last !== undefined && now - last.at < READING_GAP_MS) return;
    readings.push({ at: now, idle: idleMs() });
    // Keep only the newest reading that is at least a window old, and those after it.
    while (readings.length > 1 && now - (readings[1] as { at: number }).at >= this.#windowMs) readings.shift();
  }

  /** The idle share of the time from the window's first reading to `now`; undefined with no reading before `now`. */
  share(now: number): number | undefined {
    this.sample(now);
    const first = this.#readings[0];
    if (first === undefined || now <= first.at) return undefined;
    return Math.min(1, Math.max(0, (idleMs() - first.idle) / (now - first.at)));
  }
}

/** The least time between two kept readings of an {@link IdleShare}, in ms: a window of 100 ms holds about 20. */
const READING_GAP_MS = 5;
