/**
 * The `Reader` contract: where bytes come from. The core (cache, downloaders)
 * knows nothing of HTTP; HTTP is one implementation (`src/http/`), a local
 * file another (`./file-reader.ts`).
 */
import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';

export type { RetryResponse } from '../errors.js';

/** What a reader found out about the remote when it first looked. */
export interface ContentInfo {
  /** Total size in bytes. */
  readonly contentLength: number;
  /** The block size the reader prefers for downloading, in bytes. */
  readonly blockSize: number;
  /** The remote's identity (URL, size, ETag, Last-Modified, digest). */
  readonly identity: RemoteIdentity;
  /**
   * False when the remote cannot serve byte ranges: then only one request
   * for the whole file (`getReader(0, contentLength - 1)`) is valid, and the
   * downloader fetches it as one sequential stream.
   */
  readonly rangesSupported: boolean;
  /**
   * True when every ranged request is pinned to one revision (a strong ETag
   * in If-Match, or Last-Modified in If-Unmodified-Since). False when the
   * remote gave nothing to pin to; then only the size is checked.
   */
  readonly pinned: boolean;
  /**
   * How long the event loop was idle (ms) while the first look waited for
   * the remote's answer: from sending its first request (connecting and any
   * redirects included) to the response head. What the process did
   * meanwhile (loading code, other downloads) is not counted, so this says
   * how far away the remote is: 0.0-0.4 ms from nginx on loopback, 20.6-21.0
   * ms from a server that waits 20 ms before each head (the first look of a
   * fresh process, measured 2026-12-07). Undefined when the reader did not
   * measure it (a local file). The CachingDownloader sizes its first
   * requests by it (`RequestSizer.firstLooked`).
   */
  readonly firstAnswerIdleMs?: number;
}

/** How a body is read: see {@link Reader.getReader}. */
export interface ReadOptions {
  /**
   * The caller is done with each chunk once it asks for the next one (or
   * ends the iteration): it copies what it keeps. The Reader may then read
   * the next bytes into the same memory, which spares an allocation per
   * chunk. A Reader that cannot do that ignores it. @default false (every
   * chunk is the caller's to keep)
   */
  readonly lend?: boolean;
}

/**
 * A source of a large file's bytes, read by inclusive byte ranges.
 *
 * The contract every implementation keeps (and `test/helpers/reader-contract.ts`
 * checks, against each of them):
 *
 * - **Exact ranges.** `getReader(from, to)` with `0 <= from <= to < contentLength`
 *   yields exactly the bytes `from..to` of the revision
 *   {@link Reader.contentLengthAndBlockSize} found, in order, in chunks of
 *   any size.
 * - **Empty ranges.** `getReader(from, from - 1)` with `0 <= from <= contentLength`
 *   is the empty range: it yields no bytes and ends cleanly (the source need
 *   not be asked). This is the only range a 0-byte file has
 *   (`getReader(0, -1)`), and what a retry asks for once every byte already
 *   arrived.
 * - **Ranges outside the file** (`from < 0`, `to >= contentLength`,
 *   `to < from - 1`, a non-integer) are rejected by `getReader` with an
 *   `InvalidArgumentError` (`BLOCKFETCH_INVALID_ARGUMENT`), never retried:
 *   asking again cannot help.
 * - **Short and long bodies.** The caller (the downloaders' attempt engine)
 *   counts the bytes of every body and treats any other count than
 *   `to - from + 1` as a retryable `BLOCKFETCH_BODY_LENGTH`, resuming from
 *   the first byte it did not get. A Reader whose source sends fewer bytes
 *   may end the body early or fail it (retryably, unless the source itself
 *   changed); it must never end a short body as if it were complete by
 *   padding it. A source that sends MORE bytes than asked for must never
 *   have them yielded as part of the range: the Reader fails the body
 *   (retryable `BLOCKFETCH_BODY_LENGTH`) before yielding the first byte past
 *   `to`.
 * - **Abort.** A `signal` already aborted makes `getReader` reject at once;
 *   aborting it later ends the request and the body promptly (no further
 *   chunk is yielded, and the pending read rejects, with the signal's reason
 *   or an abort error). Nothing keeps running for an aborted body.
 * - **Retry hints.** Every failure a Reader throws on purpose (from
 *   `getReader`, the body, or `contentLengthAndBlockSize`) is a
 *   `BlockfetchError` that answers {@link RetryResponse} through
 *   {@link retryResponseOf}: a transient failure is retryable, and carries
 *   `retryAfterMs` when the source asked for a delay (HTTP `Retry-After`).
 *   Any other error (a `TypeError` from a bug) is not retried, so a Reader
 *   wraps transient system errors (a reset socket, `EMFILE`) in a
 *   retryable `BlockfetchError` itself.
 * - **A stable look.** `contentLengthAndBlockSize` answers the same
 *   {@link ContentInfo} on every call once it has answered; `digest()` is
 *   the whole-file digest the source advertised (or was given), once known.
 */
export interface Reader {
  /** A name for messages: the URL (credentials removed) or the path. */
  readonly name: string;
  /**
   * Looks at the remote (once; later calls return the same answer) and
   * tells its size, the preferred block size and its identity.
   */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo>;
  /** A whole-file digest the remote advertised, once known; else undefined. */
  digest(): ExpectedDigest | undefined;
  /**
   * Opens a body of exactly the bytes `from..to` (inclusive) of the revision
   * found by `contentLengthAndBlockSize`; `to === from - 1` is the empty
   * range (no bytes). See the contract above for short and long bodies,
   * ranges outside the file, abort and retry hints.
   *
   * @example
   * ```ts
   * const { contentLength } = await reader.contentLengthAndBlockSize(signal);
   * let n = 0;
   * for await (const chunk of await reader.getReader(0, contentLength - 1, signal)) n += chunk.length;
   * if (n !== contentLength) throw new Error('short body: retry from byte ' + n);
   * ```
   */
  getReader(from: number, to: number, signal: AbortSignal, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>>;
  /**
   * Confirms that the remote is still the revision `contentLengthAndBlockSize`
   * found, and throws a `RemoteChangedError` if it is not. Optional.
   *
   * Why: pinning refuses a request that starts after the remote changed, but
   * a server that rewrites a file IN PLACE (same inode) can mix new bytes into
   * a response already under way, whose headers still carried the old ETag.
   * The downloaders call this once every byte is in, so a change before the
   * last response ended is caught instead of reported as a complete file.
   */
  revalidate?(signal: AbortSignal): Promise<void>;
}

export { retryResponseOf } from '../errors.js';
