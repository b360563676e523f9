/**
 * Copying a Readable (a tail stream) into a Writable that belongs to the
 * caller, with backpressure, and telling a failure of the source from a
 * failure of the consumer.
 *
 * `stream.pipeline` does the copy too, but it destroys the Writable on any
 * error and ends it at the end; `downloadFile` needs the consumer to
 * outlive one attempt (a restart after a changed remote follows a new tail
 * into the same consumer) and to decide itself when to end it. So this
 * copies only: it never ends or destroys the consumer.
 */
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import { AbortedError } from '../errors.js';

/**
 * Why a {@link ConsumerFeed} stopped: the consumer errored (EPIPE: its
 * reader went away) or closed before the source ended. An
 * `AbortedError` (`BLOCKFETCH_ABORTED`): the consumer's side stopped the
 * download, as a signal would; `cause` is the consumer's error.
 */
export class ConsumerStoppedError extends AbortedError {
  constructor(cause: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super(`the consumer stream stopped taking the file's bytes before the end${why}`, {
      cause,
      hint: 'the partial download is kept: run again to resume (the stream starts again from byte 0)',
    });
  }
}

/** A copy under way; see {@link feedConsumer}. */
export interface ConsumerFeed {
  /**
   * Resolves once the source ended and every chunk was handed to the
   * consumer. Rejects with the source's error, with the reason given to
   * {@link ConsumerFeed.stop}, or with a {@link ConsumerStoppedError} when the
   * consumer errored or closed first. Never left unhandled.
   */
  readonly done: Promise<void>;
  /** Bytes handed to the consumer so far. */
  written(): number;
  /** Stops the copy: destroys the source and rejects `done` with `reason` (no effect once settled). */
  stop(reason: Error): void;
}

/**
 * Starts copying `source` into `consumer`: each chunk is written, and the
 * source is paused while `consumer.write` says its buffer is full, until
 * `drain`. So what waits in memory is the consumer's buffer plus the
 * source's, however slow the consumer.
 *
 * @example
 * ```ts
 * const feed = feedConsumer(downloader.createTailStream(), process.stdout);
 * await feed.done;          // every byte handed on
 * process.stdout.end();     // the caller ends the consumer
 * ```
 */
export function feedConsumer(source: Readable, consumer: Writable): ConsumerFeed {
  let written = 0;
  let settled = false;
  let settle!: (error?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      consumer.off('error', onConsumerError);
      consumer.off('close', onConsumerClose);
      consumer.off('drain', onDrain);
      source.off('data', onData);
      source.off('end', onEnd);
      if (error === undefined) resolve();
      else reject(error);
    };
  });
  // A caller that never awaits `done` (it stopped the copy itself) must not see an unhandled rejection.
  done.catch(() => undefined);

  const onData = (chunk: Buffer): void => {
    written += chunk.length;
    if (!consumer.write(chunk)) source.pause();
  };
  const onDrain = (): void => {
    if (!settled) source.resume();
  };
  const onEnd = (): void => settle();
  const onConsumerError = (err: unknown): void => {
    settle(new ConsumerStoppedError(err));
    source.destroy();
  };
  const onConsumerClose = (): void => {
    settle(new ConsumerStoppedError(undefined));
    source.destroy();
  };
  // Stays attached: an error after the copy settled (a destroy racing the
  // end) must not become an uncaught 'error' event.
  source.on('error', (err: Error) => settle(err));
  // Closed without an end or an error (destroyed by someone else): never leave `done` pending.
  source.on('close', () => settle(new Error('the source stream closed before its end')));

  if (consumer.destroyed || consumer.writableEnded) {
    settle(new ConsumerStoppedError(undefined));
    source.destroy();
  } else {
    consumer.on('error', onConsumerError);
    consumer.on('close', onConsumerClose);
    consumer.on('drain', onDrain);
    source.on('end', onEnd);
    source.on('data', onData);
  }

  return {
    done,
    written: () => written,
    stop(reason: Error): void {
      if (settled) return;
      settle(reason);
      source.destroy();
    },
  };
}

/**
 * Waits until `feed` handed on every byte; aborting `signal` stops the copy
 * and throws an `AbortedError` whose `cause` is the signal's reason.
 *
 * @example
 * ```ts
 * await untilFed(feed, AbortSignal.timeout(60_000));
 * ```
 */
export async function untilFed(feed: ConsumerFeed, signal: AbortSignal): Promise<void> {
  const onAbort = (): void => feed.stop(new AbortedError('the download was aborted', { cause: signal.reason }));
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await feed.done;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Ends `consumer` and waits for its `finish` (everything flushed to its
 * destination); an error or early close is a {@link ConsumerStoppedError},
 * an abort of `signal` an `AbortedError`.
 *
 * @example
 * ```ts
 * await endConsumer(tarProcess.stdin, signal);
 * ```
 */
export async function endConsumer(consumer: Writable, signal: AbortSignal): Promise<void> {
  consumer.end();
  try {
    await finished(consumer, { readable: false, signal });
  } catch (err) {
    if (signal.aborted) throw new AbortedError('the download was aborted', { cause: signal.reason });
    throw err instanceof ConsumerStoppedError ? err : new ConsumerStoppedError(err);
  }
}

/**
 * Destroys `consumer` with `error` (as `stream.pipeline` does when its
 * source fails), so whatever reads its output sees a failed stream. Its
 * `error` event is observed here, so a consumer without an `error`
 * listener of its own does not bring the process down.
 *
 * @example
 * ```ts
 * failConsumer(tarProcess.stdin, new Error('digest mismatch'));
 * ```
 */
export function failConsumer(consumer: Writable, error: unknown): void {
  if (consumer.destroyed) return;
  consumer.on('error', () => undefined);
  consumer.destroy(error instanceof Error ? error : new Error(String(error)));
}
