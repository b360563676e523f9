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
