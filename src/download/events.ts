/**
 * Delivering typed events to whoever listens, without letting a listener
 * hurt the download: one `onEvent` callback, `node:diagnostics_channel`
 * channels named `blockfetch:<source>:<type>`, and `util.debuglog('blockfetch')`
 * (set `NODE_DEBUG=blockfetch` to see it).
 *
 * Listeners are called synchronously from timers and state changes, never
 * from the data path of a chunk, and every call is fenced: a listener that
 * throws (or returns a promise that rejects) is logged to the debug log and
 * otherwise ignored.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { AttemptRetry } from './attempts.js';
import type { EventError } from './caching-options.js';

/** `util.debuglog('blockfetch')`: prints when `NODE_DEBUG` includes `blockfetch`. */
export const debug: (message: string, ...args: unknown[]) => void = debuglog('blockfetch');

/** A listener for events of type `E`. A returned promise is not awaited. */
export type EventListener<E> = (event: E) => void | Promise<void>;

/**
 * Sends events of one union type `E` (discriminated by `type`) to a listener
 * and to diagnostics channels `${channelPrefix}:${event.type}`.
 *
 * @example
 * ```ts
 * type Ev = { type: 'tick'; n: number };
 * const events = new EventReporter<Ev>('blockfetch:example', (e) => console.log(e.n));
 * events.emit({ type: 'tick', n: 1 });
 * // elsewhere: diagnostics_channel.subscribe('blockfetch:example:tick', (msg) => ...)
 * ```
 */
export class EventReporter<E extends { readonly type: string }> {
  readonly #prefix: string;
  readonly #listener: EventListener<E> | undefined;
  readonly #channels = new Map<string, diagnosticsChannel.Channel>();

  /**
   * @param channelPrefix e.g. `blockfetch:download`; events go to `${channelPrefix}:${type}`.
   * @param listener the caller's callback, if any.
   */
  constructor(channelPrefix: string, listener?: EventListener<E>) {
    this.#prefix = channelPrefix;
    this.#listener = listener;
  }

  /** Delivers `event`. Never throws, whatever the listener does. */
  emit(event: E): void {
    const channel = this.#channel(event.type);
    if (channel.hasSubscribers) {
      try {
        channel.publish(event);
      } catch (err) {
        debug('%s: a diagnostics_channel subscriber threw: %s', this.#prefix, describe(err));
      }
    }
    if (this.#listener === undefined) return;
    try {
      const result = this.#listener(event);
      if (isThenable(result)) {
        result.then(undefined, (err: unknown) => debug('%s: an async onEvent listener rejected: %s', this.#prefix, describe(err)));
      }
    } catch (err) {
      debug('%s: the onEvent listener threw on %s: %s', this.#prefix, event.type, describe(err));
    }
  }

  #channel(type: string): diagnosticsChannel.Channel {
    let channel = this.#channels.get(type);
    if (channel === undefined) {
      channel = diagnosticsChannel.channel(`${this.#prefix}:${type}`);
      this.#channels.set(type, channel);
    }
    return channel;
  }
}

/**
 * An error as events carry it: its `code` (`'UNKNOWN'` when it has none) and message.
 *
 * @example
 * ```ts
 * eventErrorOf(new BlockfetchError('BLOCKFETCH_NETWORK', 'reset')) // { code: 'BLOCKFETCH_NETWORK', message: 'reset' }
 * ```
 */
export function eventErrorOf(err: unknown): EventError {
  const code = (err as { code?: unknown } | null)?.code;
  return { code: typeof code === 'string' ? code : 'UNKNOWN', message: err instanceof Error ? err.message : String(err) };
}

/**
 * The `retry` event both downloaders emit for an {@link AttemptRetry}, with
 * the stats of the moment (each downloader's own kind).
 *
 * @example
 * ```ts
 * onRetry: (retry) => events.emit(retryEventOf(retry, stats.snapshot()))
 * ```
 */
export function retryEventOf<S>(
  retry: AttemptRetry,
  stats: S,
): { type: 'retry'; range: AttemptRetry['range']; attempt: number; delayMs: number; error: EventError; stats: S } {
  return { type: 'retry', range: retry.range, attempt: retry.attempt, delayMs: retry.delayMs, error: eventErrorOf(retry.error), stats };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
