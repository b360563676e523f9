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
}

/**
 * A source of a large file's bytes, read by inclusive byte ranges.
 *
 * Failures are thrown (or emitted by the body) as errors; each answers the
 * `RetryResponse` questions through {@link retryResponseOf}: a
 * `BlockfetchError` says by its code whether it is retryable, and whether the
 * remote asked for a delay; any other error is never retried, so a Reader
 * throws each transient failure as a `BlockfetchError` with a retryable code.
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
   * found by `contentLengthAndBlockSize`. The body must yield exactly
   * `to - from + 1` bytes; the caller checks and treats anything else as a
   * retryable failure. Aborting `signal` must end the request and the body.
   */
  getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
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
