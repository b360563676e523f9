/**
 * The parts every `Reader` implementation shares, so each rule of the
 * contract has one owner: which ranges `getReader` accepts (and what the
 * empty range yields), and how the first look is shared by concurrent
 * callers and forgotten when it fails.
 */
import { InvalidArgumentError } from '../errors.js';
import type { ContentInfo } from './reader.js';

/**
 * Checks a `getReader(from, to)` range against the file's size, as the
 * Reader contract states it: `from..to` inclusive inside `0..size-1`, or the
 * empty range `to === from - 1` with `from` in `0..size`. Answers `'empty'`
 * for the empty range (the reader sends no request and returns
 * {@link emptyBody}), `'bytes'` for a range to read, and throws an
 * {@link InvalidArgumentError} naming the reader for anything else.
 *
 * @example
 * ```ts
 * if (checkReaderRange(this.name, from, to, info.contentLength) === 'empty') return emptyBody(signal);
 * ```
 */
export function checkReaderRange(readerName: string, from: number, to: number, contentLength: number): 'empty' | 'bytes' {
  if (Number.isSafeInteger(from) && to === from - 1 && from >= 0 && from <= contentLength) return 'empty';
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from || to >= contentLength) {
    throw new InvalidArgumentError(
      `getReader range ${String(from)}-${String(to)} is not inside ${readerName} (0-${contentLength - 1}, ${contentLength} bytes)`,
    );
  }
  return 'bytes';
}

/**
 * The body of the empty range: no bytes, unless the caller aborted first.
 *
 * @example
 * ```ts
 * for await (const chunk of emptyBody(signal)) throw new Error('never: ' + chunk.length);
 * ```
 */
export async function* emptyBody(signal: AbortSignal): AsyncGenerator<Uint8Array, void, undefined> {
  signal.throwIfAborted();
}

/**
 * `contentLengthAndBlockSize` done once: the first call starts the look,
 * concurrent and later calls share its answer, and a look that failed is
 * forgotten so the next call tries again (a retry after a refused
 * connection must look again, not re-read the old failure).
 *
 * @example
 * ```ts
 * readonly #look = new SharedLook(() => this.#discover());
 * contentLengthAndBlockSize(signal?: AbortSignal) { return this.#look.get(signal); }
 * ```
 */
export class SharedLook {
  readonly #start: (signal?: AbortSignal) => Promise<ContentInfo>;
  #info: Promise<ContentInfo> | undefined;

  constructor(start: (signal?: AbortSignal) => Promise<ContentInfo>) {
    this.#start = start;
  }

  /** The look's answer, started now with `signal` if none is under way or done. */
  get(signal?: AbortSignal): Promise<ContentInfo> {
    if (this.#info) return this.#info;
    const info = this.#start(signal);
    this.#info = info;
    info.catch(() => {
      if (this.#info === info) this.#info = undefined;
    });
    return info;
  }
}


