/**
 * The `Transfer-Encoding: chunked` framing of an HTTP/1.1 body (RFC 9112,
 * section 7.1), undone as the socket's chunks arrive, for the range
 * connections (`./range-connections.ts`).
 *
 * @module
 */

/** The longest chunk-size line (with extensions) or trailer line accepted. */
const MAX_LINE_BYTES = 4096;

/** The most trailer lines accepted after the last chunk. */
const MAX_TRAILER_LINES = 64;

/** What {@link ChunkedDecoder.feed} found. */
export type ChunkedFeed =
  /** The body goes on: feed the next socket chunk. */
  | { readonly kind: 'more' }
  /** The last chunk and the trailers arrived; `extra` bytes followed them on the socket. */
  | { readonly kind: 'end'; readonly extra: number }
  /** The framing is broken: the connection cannot be read further. */
  | { readonly kind: 'error'; readonly why: string };

const SIZE_LINE = /^([0-9A-Fa-f]{1,13})[ \t]*(?:;.*)?$/;

/**
 * Turns a chunked body's bytes back into the body's own, handing each
 * piece of data (a view of the socket chunk, never a copy) to `onData`.
 *
 * @example
 * ```ts
 * const decoder = new ChunkedDecoder((data) => body.push(data));
 * socket.on('data', (chunk) => {
 *   const fed = decoder.feed(chunk);
 *   if (fed.kind === 'end') done();
 *   else if (fed.kind === 'error') fail(new Error(fed.why));
 * });
 * ```
 */
export class ChunkedDecoder {
  readonly #onData: (data: Buffer) => void;
  #state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  /** The part of a line (size or trailer) that arrived so far. */
  #line = '';
  /** Bytes left of the current chunk's data, or of its CRLF. */
  #left = 0;
  /** Trailer lines seen after the last chunk. */
  #trailers = 0;

  constructor(onData: (data: Buffer) => void) {
    this.#onData = onData;
  }

  /** Whether the last chunk and the trailers have arrived. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** Decodes one socket chunk. After `'end'` or `'error'`, feed no more. */
  feed(chunk: Buffer): ChunkedFeed {
    let at = 0;
    while (at < chunk.length) {
      switch (this.#state) {
        case 'data': {
          const take = Math.min(this.#left, chunk.length - at);
          this.#onData(chunk.subarray(at, at + take));
          at += take;
          this.#left -= take;
          if (this.#left === 0) {
            this.#state = 'data-end';
            this.#line = '';
          }
          break;
        }
        case 'size':
        case 'data-end':
        case 'trailer': {
          const newline = chunk.indexOf(10, at);
          const end = newline < 0 ? chunk.length : newline + 1;
          this.#line += chunk.toString('latin1', at, end);
          at = end;
          if (this.#line.length > MAX_LINE_BYTES) return { kind: 'error', why: 'a chunked-body line is too long' };
          if (newline < 0) break;
          if (!this.#line.endsWith('\r\n')) return { kind: 'error', why: 'a chunked-body line does not end in CRLF' };
          const line = this.#line.slice(0, -2);
          this.#line = '';
          const problem = this.#onLine(line);
          if (problem !== undefined) return { kind: 'error', why: problem };
          if (this.done) return { kind: 'end', extra: chunk.length - at };
          break;
        }
        case 'done':
          return { kind: 'end', extra: chunk.length - at };
      }
    }
    return { kind: 'more' };
  }

  /** One whole line in the size, data-end or trailer state; a message if it is wrong. */
  #onLine(line: string): string | undefined {
    if (this.#state === 'data-end') {
      if (line !== '') return 'a chunk is longer than its size';
      this.#state = 'size';
      return undefined;
    }
    if (this.#state === 'trailer') {
      if (line === '') this.#state = 'done';
      else if (++this.#trailers > MAX_TRAILER_LINES) return `more than ${MAX_TRAILER_LINES} trailer lines`;
      return undefined;
    }
    const size = SIZE_LINE.exec(line);
    if (size === null) return `a chunk size line is malformed: ${JSON.stringify(line.slice(0, 40))}`;
    this.#left = Number.parseInt(size[1] as string, 16);
    this.#state = this.#left === 0 ? 'trailer' : 'data';
    return undefined;
  }
}
