/**
 * The guard between a response body and the downloader: it yields exactly the
 * bytes that were asked for, or throws. A body that ends early (the server
 * closed the connection) or runs long (it sent more than asked) must never
 * reach the file as if it were the block.
 */
import { BlockfetchError, redactUrl } from '../errors.js';
import { networkError } from './failures.js';

/**
 * What a response body must offer the HTTP reader: the subset of a
 * `Readable` it uses, so undici's bodies and `RangeBody`
 * (./range-body.ts) go the same way.
 */
export interface ResponseBody extends AsyncIterable<Uint8Array> {
  readonly destroyed: boolean;
  destroy(error?: Error): unknown;
  once(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** How {@link exactBody} reads one body. */
export interface ExactBodyOptions {
  /** The number of bytes to yield. */
  readonly length: number;
  /**
   * Bytes at the start of the body to discard before yielding (when a body
   * that starts earlier than the asked range is reused). @default 0
   */
  readonly skip?: number;
  /**
   * What bytes after `skip + length` mean: `'error'` (the body was supposed
   * to end there: throw before yielding them) or `'discard'` (the body
   * legitimately goes on; stop reading and close it).
   */
  readonly beyond: 'error' | 'discard';
  /** The URL, for messages (redacted here). */
  readonly url: string;
  /**
   * The caller's signal: when it has aborted, a failing body throws its
   * reason. Aborting does not destroy `source` here (undici's request
   * already does that for the signal it was given; see {@link destroyOnAbort}
   * for a body requested under another signal), so each body adds no
   * listener of its own to a signal many requests share.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * Wraps `source` so that it yields exactly `length` bytes (after skipping
 * `skip`). A body that ends or fails before that throws a retryable
 * `BLOCKFETCH_BODY_LENGTH` (a stall throws the retryable
 * `BLOCKFETCH_TIMEOUT` from the dispatcher's body timeout); with
 * `beyond: 'error'`, a chunk that would take the total past `length` throws
 * `BLOCKFETCH_BODY_LENGTH` before any of it is yielded. The source is
 * destroyed when iteration ends for any reason, including the consumer
 * stopping early. After `signal` aborted, the error thrown is its reason.
 */
export async function* exactBody(source: ResponseBody, options: ExactBodyOptions): AsyncGenerator<Uint8Array, void, undefined> {
  const { length, beyond, url, signal } = options;
  let skip = options.skip ?? 0;
  let received = 0;
  try {
    if (signal?.aborted) throw signal.reason;
    if (length === 0 && beyond === 'discard') return;
    for await (const raw of source) {
      let chunk: Uint8Array = raw;
      if (skip > 0) {
        if (chunk.length <= skip) {
          skip -= chunk.length;
          continue;
        }
        chunk = chunk.subarray(skip);
        skip = 0;
      }
      if (received + chunk.length > length) {
        if (beyond === 'error') {
          throw new BlockfetchError(
            'BLOCKFETCH_BODY_LENGTH',
            `${redactUrl(url)}: the body is longer than the ${length} bytes asked for`,
          );
        }
        chunk = chunk.subarray(0, length - received);
      }
      received += chunk.length;
      yield chunk;
      if (received === length && beyond === 'discard') return;
    }
  } catch (err) {
    throw bodyFailure(err, url, received, length, signal);
  } finally {
    // A no-op after a clean end; otherwise it releases the socket at once.
    release(source);
  }
  if (received < length) {
    throw new BlockfetchError(
      'BLOCKFETCH_BODY_LENGTH',
      `${redactUrl(url)}: the body ended after ${received} of ${length} bytes`,
    );
  }
}

/** An error's message and code, without the URL the mapped error would repeat. */
function describeCause(err: unknown): string {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' ? `${message}, ${code}` : message;
}

/** A body that failed part-way: an abort, a timeout, or a truncation. */
function bodyFailure(err: unknown, url: string, received: number, length: number, signal: AbortSignal | undefined): unknown {
  const mapped = networkError(err, url, signal);
  if (!(mapped instanceof BlockfetchError) || mapped.code !== 'BLOCKFETCH_NETWORK') return mapped;
  return new BlockfetchError(
    'BLOCKFETCH_BODY_LENGTH',
    `${redactUrl(url)}: the body broke off after ${received} of ${length} bytes (${describeCause(err)})`,
    { cause: err },
  );
}

/**
 * Destroys a body we no longer want. undici's body emits an `AbortError`
 * when destroyed before its end; nobody is listening any more, and an
 * unhandled 'error' event would crash the process, so one is swallowed here.
 */
export function release(body: ResponseBody): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * Destroys `body` the moment `signal` aborts, until the body closes: for a
 * body whose request was sent under a different signal (the kept first
 * response), so that the caller's abort still ends it promptly, even if it
 * never starts reading.
 */
export function destroyOnAbort(body: ResponseBody, signal: AbortSignal): void {
  const onAbort = (): void => {
    body.on('error', () => undefined);
    body.destroy(signal.reason instanceof Error ? signal.reason : undefined);
  };
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  body.once('close', () => signal.removeEventListener('abort', onAbort));
}
