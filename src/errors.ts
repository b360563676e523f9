/**
 * Typed errors with stable codes.
 *
 * Every error blockfetch throws on purpose is a {@link BlockfetchError} with a
 * stable `code` a caller can branch on (`err.code === 'BLOCKFETCH_REMOTE_CHANGED'`).
 * Subclasses exist only where a caller acts differently on them. Each error
 * also answers the {@link RetryResponse} questions, so a `Reader` can throw
 * one and the downloader knows whether and when to try again. Whether is the
 * code's to say ({@link ERROR_CODES}), never the throw site's, and a value
 * that is not a `BlockfetchError` is never retried ({@link retryResponseOf}).
 *
 * Hints speak of library options and actions ("option `restart`"), never of
 * a command's flags: the CLI maps them to its own words in one place.
 *
 * Messages never contain credentials: URLs are passed through
 * {@link redactUrl} before they are put in a message.
 *
 * Every code is documented in `docs/errors.md`.
 */

import { formatBytes } from './format-bytes.js';

/** Every stable error code blockfetch uses; {@link ERROR_CODES} describes each. */
export type ErrorCode =
  // arguments and options
  | 'BLOCKFETCH_INVALID_ARGUMENT'
  // local disk and cache
  | 'BLOCKFETCH_NOT_ENOUGH_SPACE'
  | 'BLOCKFETCH_ALLOCATION_FAILED'
  | 'BLOCKFETCH_INDEX_CORRUPT'
  | 'BLOCKFETCH_INDEX_FOREIGN'
  | 'BLOCKFETCH_INDEX_VERSION'
  | 'BLOCKFETCH_INDEX_MISMATCH'
  | 'BLOCKFETCH_CACHE_MISSING'
  | 'BLOCKFETCH_CACHE_CLOSED'
  | 'BLOCKFETCH_LOCKED'
  | 'BLOCKFETCH_LOCK_FAILED'
  | 'BLOCKFETCH_UNCACHED_RANGE'
  | 'BLOCKFETCH_INVALID_WRITE'
  | 'BLOCKFETCH_DISK_WRITE'
  | 'BLOCKFETCH_DISK_READ'
  | 'BLOCKFETCH_TARGET_EXISTS'
  | 'BLOCKFETCH_UNSAFE_PATH'
  // the remote
  | 'BLOCKFETCH_REMOTE_CHANGED'
  | 'BLOCKFETCH_RANGE_NOT_SUPPORTED'
  | 'BLOCKFETCH_BAD_RESPONSE'
  | 'BLOCKFETCH_UNUSABLE_RESPONSE'
  | 'BLOCKFETCH_HTTP_STATUS'
  | 'BLOCKFETCH_HTTP_TRANSIENT'
  | 'BLOCKFETCH_NETWORK'
  | 'BLOCKFETCH_HOST_NOT_FOUND'
  | 'BLOCKFETCH_TLS'
  | 'BLOCKFETCH_BODY_LENGTH'
  | 'BLOCKFETCH_TIMEOUT'
  | 'BLOCKFETCH_REDIRECT'
  | 'BLOCKFETCH_MIRRORS_DISAGREE'
  // the Hugging Face Hub
  | 'BLOCKFETCH_HUB_AUTH'
  | 'BLOCKFETCH_HUB_NOT_FOUND'
  // the download as a whole
  | 'BLOCKFETCH_RETRIES_EXHAUSTED'
  | 'BLOCKFETCH_DIGEST_MISMATCH'
  | 'BLOCKFETCH_ABORTED'
  | 'BLOCKFETCH_INTERNAL';

/** What is fixed about one {@link ErrorCode}, whatever raised it. */
export interface ErrorCodeInfo {
  /**
   * True when trying the same operation again may succeed. The code alone
   * decides: every site that raises a code means the same thing by it, so a
   * downloader can trust this without knowing who threw.
   */
  readonly retryable: boolean;
  /** One line: what the code means. */
  readonly meaning: string;
  /**
   * One line: what to do, for an error raised without a hint of its own.
   * Speaks of library options and actions (option `restart`), never of a
   * command's flags: a program maps those names to its own words.
   */
  readonly action: string;
}

const BUG = 'a bug in the calling code or in blockfetch: report it with the message and its cause';

/**
 * Every code, whether it is retryable, what it means and what to do. A
 * `Record` over the whole {@link ErrorCode} union, so a code cannot be added
 * without deciding these. `docs/errors.md` is this table with examples.
 *
 * @example
 * ```ts
 * ERROR_CODES.BLOCKFETCH_NETWORK.retryable   // true
 * ERROR_CODES.BLOCKFETCH_HTTP_STATUS.retryable // false (a 404 stays a 404)
 * ```
 */
export const ERROR_CODES: Readonly<Record<ErrorCode, ErrorCodeInfo>> = Object.freeze({
  BLOCKFETCH_INVALID_ARGUMENT: {
    retryable: false,
    meaning: 'an argument or option is not acceptable; the message names it, its value and what is allowed',
    action: 'fix the argument or option the message names',
  },
  BLOCKFETCH_NOT_ENOUGH_SPACE: {
    retryable: false,
    meaning: "the target's filesystem has less free space than the file needs; nothing was written",
    action: 'free some space on that filesystem, or download to another directory',
  },
  BLOCKFETCH_ALLOCATION_FAILED: {
    retryable: false,
    meaning: 'the filesystem did not really reserve the space asked for (sparse, compressed or copy-on-write)',
    action: 'download to a directory on another filesystem',
  },
  BLOCKFETCH_INDEX_CORRUPT: {
    retryable: false,
    meaning: 'the index file is truncated, not JSON, has a wrong checksum or disagrees with itself',
    action: 'restart the download (option `restart`) to discard the partial download and start over',
  },
  BLOCKFETCH_INDEX_FOREIGN: {
    retryable: false,
    meaning: 'the index path holds a file blockfetch did not write; it is never deleted',
    action: 'check the path; blockfetch never deletes a file it did not write',
  },
  BLOCKFETCH_INDEX_VERSION: {
    retryable: false,
    meaning: 'the index was written by a newer blockfetch, in a newer index format',
    action: 'upgrade blockfetch to resume this download',
  },
  BLOCKFETCH_INDEX_MISMATCH: {
    retryable: false,
    meaning: 'the index does not describe its data file (another size or block size)',
    action: 'restart the download (option `restart`) to discard the partial download and start over',
  },
  BLOCKFETCH_CACHE_MISSING: {
    retryable: false,
    meaning: 'a cache file that should exist does not',
    action: 'check the path',
  },
  BLOCKFETCH_CACHE_CLOSED: { retryable: false, meaning: 'a cache was used after close()', action: BUG },
  BLOCKFETCH_LOCKED: {
    retryable: false,
    meaning: 'another process (or cache object) holds the lock of this download',
    action: 'wait for the other download to finish, or stop it',
  },
  BLOCKFETCH_LOCK_FAILED: {
    retryable: false,
    meaning: 'the lock could not be taken, refreshed or released for a reason other than another holder (permissions, I/O)',
    action: 'fix the cause above (permissions, disk), then run the same download again to resume',
  },
  BLOCKFETCH_UNCACHED_RANGE: { retryable: false, meaning: 'readAt asked for bytes the cache does not have yet', action: BUG },
  BLOCKFETCH_INVALID_WRITE: { retryable: false, meaning: 'a write to the cache was outside the file or not a whole block', action: BUG },
  BLOCKFETCH_DISK_WRITE: {
    retryable: false,
    meaning: 'writing, fsyncing or renaming the data file or the index failed',
    action: 'fix the cause above (permissions, disk), then run the same download again to resume',
  },
  BLOCKFETCH_DISK_READ: {
    // A read changes nothing, and EIO or EMFILE may pass: a FileReader's
    // source is retried like a network read. (The cache's own reads are
    // never retried by the downloaders: they end the run.)
    retryable: true,
    meaning: 'reading, stat-ing or opening a local file (the data file, the index, a FileReader source) failed',
    action: 'fix the cause above (permissions, disk), then run the same download again to resume',
  },
  BLOCKFETCH_TARGET_EXISTS: {
    retryable: false,
    meaning: 'the target (or a cache file to be created) already exists',
    action: 'replace it (option `overwrite`), or choose another target path',
  },
  BLOCKFETCH_UNSAFE_PATH: {
    retryable: false,
    meaning:
      'a path blockfetch would create, open or replace is a symbolic link or not a regular file (a FIFO, a device, a socket); it is never followed or replaced',
    action: 'remove what the message names if it is not yours to keep, or choose another target path',
  },
  BLOCKFETCH_REMOTE_CHANGED: {
    retryable: false,
    meaning: 'the remote is not the revision the download started from (ETag, Last-Modified, size or digest changed)',
    action: 'restart the download (option `restart`) to fetch the new revision',
  },
  BLOCKFETCH_RANGE_NOT_SUPPORTED: {
    retryable: false,
    meaning: 'the server serves no byte ranges (and, for a download, does not tell the size either)',
    action: 'use a server or mirror that supports byte ranges',
  },
  BLOCKFETCH_BAD_RESPONSE: {
    retryable: true,
    meaning: 'a response did not match its request (another range, a wrong Content-Range or Content-Length); another attempt may reach a healthy server',
    action: 'run the same download again later; report the server if it persists',
  },
  BLOCKFETCH_UNUSABLE_RESPONSE: {
    retryable: false,
    meaning: 'the server answers in a form blockfetch can never use (a compressed body, a range without the total size)',
    action: 'use a server or mirror that sends identity-encoded byte ranges with their total size',
  },
  BLOCKFETCH_HTTP_STATUS: {
    retryable: false,
    meaning: 'the server answered with a status retrying cannot change (404, 401, 403, 410, 501, …); err.status has it',
    action: 'check the URL and the credentials (option `headers`)',
  },
  BLOCKFETCH_HTTP_TRANSIENT: {
    retryable: true,
    meaning: 'the server answered with a passing failure (408, 429, 500, 502, 503, 504), possibly with Retry-After; err.status has it',
    action: 'run the same download again later: it resumes',
  },
  BLOCKFETCH_NETWORK: {
    retryable: true,
    meaning: 'the connection failed: reset, refused, closed early, a temporary DNS failure',
    action: 'check the network, then run the same download again: it resumes',
  },
  BLOCKFETCH_HOST_NOT_FOUND: {
    retryable: false,
    meaning: 'the host name does not resolve (DNS answered that it does not exist)',
    action: 'check the host name in the URL',
  },
  BLOCKFETCH_TLS: {
    retryable: false,
    meaning: 'TLS could not be established: the certificate was rejected, or the server does not speak TLS there',
    action: 'trust the issuing CA (NODE_EXTRA_CA_CERTS=ca.pem), check the host name and the clock, or check the URL scheme and port',
  },
  BLOCKFETCH_BODY_LENGTH: {
    retryable: true,
    meaning: 'a body ended before, or ran past, the length asked for',
    action: 'run the same download again: it resumes',
  },
  BLOCKFETCH_TIMEOUT: {
    retryable: true,
    meaning: 'no response headers, or no body bytes, within the timeout',
    action: 'run the same download again; raise the timeout (option `timeoutMs`) on a very slow link',
  },
  BLOCKFETCH_REDIRECT: {
    retryable: false,
    meaning: 'a redirect could not be followed (no or invalid Location, another scheme, https to http, too many)',
    action: 'check the URL, or download the final URL directly',
  },
  BLOCKFETCH_MIRRORS_DISAGREE: {
    retryable: false,
    meaning: 'the mirrors given for one file do not serve the same file: they differ in size, or in a digest they advertise (the message names both mirrors)',
    action: 'drop the mirror that serves another file (or another version of it)',
  },
  BLOCKFETCH_HUB_AUTH: {
    retryable: false,
    meaning: 'the Hugging Face Hub refused access: a gated or private repository without a token, or a token it rejects',
    action: 'set a token with read access to the repository in HF_TOKEN (or log in with `huggingface-cli login`), and accept the conditions of a gated repository on its page',
  },
  BLOCKFETCH_HUB_NOT_FOUND: {
    retryable: false,
    meaning: 'the Hugging Face Hub has no such repository, revision or path (X-Error-Code RepoNotFound, RevisionNotFound, EntryNotFound)',
    action: 'check the repository id, its type (models, datasets/, spaces/), the revision and the path',
  },
  BLOCKFETCH_RETRIES_EXHAUSTED: {
    retryable: false,
    meaning: 'retries ran out; cause is the last failure and what arrived is kept',
    action: 'run the same download again: it resumes',
  },
  BLOCKFETCH_DIGEST_MISMATCH: {
    retryable: false,
    meaning: 'the bytes do not have the expected digest; the partial file is kept and not renamed',
    action: 'check the expected digest (option `expectedDigest`); if it is right, delete the partial download and download it again',
  },
  BLOCKFETCH_ABORTED: {
    retryable: false,
    meaning: 'the operation was stopped by its AbortSignal; progress was saved',
    action: 'run the same download again to resume',
  },
  BLOCKFETCH_INTERNAL: {
    retryable: false,
    meaning: 'an error that is not a BlockfetchError (a TypeError, a plain Error) ended the run: a bug in blockfetch or in a Reader, never retried',
    action: BUG,
  },
});

/**
 * Whether a failed operation may be tried again, and after how long.
 * The vocabulary of the Go `largefile` package: a `Reader` that fails says
 * so through this interface (every {@link BlockfetchError} implements it).
 */
export interface RetryResponse {
  /** True when trying the same operation again may succeed. */
  isRetryable(): boolean;
  /**
   * The delay the remote asked for (for example from `Retry-After`), in
   * milliseconds, or `undefined` when it asked for none and the caller's
   * exponential backoff applies.
   */
  backoffDuration(): number | undefined;
}

/** Options every {@link BlockfetchError} constructor accepts. */
export interface BlockfetchErrorOptions {
  /** The underlying error. */
  readonly cause?: unknown;
  /**
   * A delay the remote asked for, in milliseconds (a `Retry-After`). Whether
   * to retry at all is the code's to say ({@link ERROR_CODES}), not the site's.
   */
  readonly retryAfterMs?: number;
  /**
   * A short hint for a person: what to do about it. Name library options
   * as "option `restart`", never a command's flags.
   */
  readonly hint?: string;
}

/**
 * The base of every error blockfetch throws on purpose.
 *
 * @example
 * ```ts
 * try { await dl.run(); }
 * catch (err) {
 *   if (err instanceof BlockfetchError && err.code === 'BLOCKFETCH_LOCKED') { ... }
 * }
 * ```
 */
export class BlockfetchError extends Error implements RetryResponse {
  /** A stable code, one of {@link ErrorCode}. */
  readonly code: ErrorCode;
  /** True when the same operation may succeed if tried again: `ERROR_CODES[code].retryable`. */
  readonly retryable: boolean;
  /** A delay the remote asked for, in milliseconds, if any. */
  readonly retryAfterMs: number | undefined;
  /** What a person can do about it, if there is something to say. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: BlockfetchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.hint = options.hint;
  }

  /** {@inheritDoc RetryResponse.isRetryable} */
  isRetryable(): boolean {
    return this.retryable;
  }

  /** {@inheritDoc RetryResponse.backoffDuration} */
  backoffDuration(): number | undefined {
    return this.retryAfterMs;
  }
}

/**
 * An argument or option is not acceptable; the message names it and its value.
 *
 * @example
 * ```ts
 * try { new FileReader(''); }
 * catch (err) { if (err instanceof InvalidArgumentError) console.error(err.message); } // FileReader path must be …
 * ```
 */
export class InvalidArgumentError extends BlockfetchError {
  constructor(message: string, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_INVALID_ARGUMENT', message, options);
  }
}

/**
 * There is not enough free space on the target's filesystem. Nothing was written.
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof NotEnoughSpaceError) console.error(`need ${err.needed - err.available} more bytes`); }
 * ```
 */
export class NotEnoughSpaceError extends BlockfetchError {
  /** Bytes the operation needs. */
  readonly needed: number;
  /** Bytes available to this user on that filesystem. */
  readonly available: number;
  constructor(path: string, needed: number, available: number, options: BlockfetchErrorOptions = {}) {
    super(
      'BLOCKFETCH_NOT_ENOUGH_SPACE',
      `not enough space for ${path}: needs ${formatBytes(needed)} (${needed} bytes), ${formatBytes(available)} available`,
      { hint: 'free some space on that filesystem or choose another target directory', ...options },
    );
    this.needed = needed;
    this.available = available;
  }
}

/**
 * The index file of a cache cannot be used: torn, corrupt, foreign, of a newer
 * version, or not matching its data file. `code` says which. Nothing is deleted.
 *
 * @example
 * ```ts
 * catch (err) {
 *   if (err instanceof IndexError && err.code === 'BLOCKFETCH_INDEX_CORRUPT') await downloadFile(url, target, { restart: true });
 * }
 * ```
 */
export class IndexError extends BlockfetchError {
  /** The index file's path. */
  readonly path: string;
  constructor(
    code:
      | 'BLOCKFETCH_INDEX_CORRUPT'
      | 'BLOCKFETCH_INDEX_FOREIGN'
      | 'BLOCKFETCH_INDEX_VERSION'
      | 'BLOCKFETCH_INDEX_MISMATCH',
    path: string,
    message: string,
    options: BlockfetchErrorOptions = {},
  ) {
    super(code, `${path}: ${message}`, options);
    this.path = path;
  }
}

/**
 * Another process (or another cache object) holds the cache's lock.
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof LockHeldError) console.error(`${err.path} is being downloaded by another process`); }
 * ```
 */
export class LockHeldError extends BlockfetchError {
  /** The path whose lock is held. */
  readonly path: string;
  constructor(path: string, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_LOCKED', `${path} is in use by another blockfetch process`, {
      hint: 'wait for the other download to finish, or stop it; a lock left by a killed process is recovered automatically',
      ...options,
    });
    this.path = path;
  }
}

/** What changed about a remote between two looks at it. */
export interface RemoteChange {
  readonly field: 'etag' | 'lastModified' | 'size' | 'digest' | 'url';
  readonly before: string;
  readonly after: string;
}

/**
 * The remote file is not the revision this download started from (its ETag,
 * Last-Modified or size changed). Nothing from the new revision was written.
 *
 * @example
 * ```ts
 * catch (err) {
 *   if (err instanceof RemoteChangedError) console.error(err.changes.map((c) => c.field), `${err.bytesAtRisk} bytes would be discarded`);
 * }
 * ```
 */
export class RemoteChangedError extends BlockfetchError {
  /** What changed, old and new. */
  readonly changes: readonly RemoteChange[];
  /** Bytes already cached that a restart would discard. */
  readonly bytesAtRisk: number;
  constructor(url: string, changes: readonly RemoteChange[], bytesAtRisk: number, options: BlockfetchErrorOptions = {}) {
    const what = changes.map((c) => `${c.field} ${c.before || '(none)'} -> ${c.after || '(none)'}`).join(', ');
    super(
      'BLOCKFETCH_REMOTE_CHANGED',
      `${redactUrl(url)} changed since the download started (${what || 'revision no longer matches'})`,
      {
        hint:
          bytesAtRisk > 0
            ? `restart (option \`restart\`) to discard the ${formatBytes(bytesAtRisk)} already downloaded and fetch the new revision`
            : 'restart (option `restart`) to fetch the new revision',
        ...options,
      },
    );
    this.changes = changes;
    this.bytesAtRisk = bytesAtRisk;
  }
}

/**
 * Statuses worth asking again: request timeout, too many requests, and the
 * server-side failures that are usually transient. Every other 4xx is the
 * request's fault; 501 and 505 (and the rest of 5xx) say the server cannot
 * do this at all.
 */
export const TRANSIENT_HTTP_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/**
 * The remote answered a request with an HTTP status blockfetch cannot use.
 * The status decides the code: `BLOCKFETCH_HTTP_TRANSIENT` (retryable) for
 * {@link TRANSIENT_HTTP_STATUSES}, `BLOCKFETCH_HTTP_STATUS` for the rest.
 *
 * @example
 * ```ts
 * new HttpStatusError(503, url, 'Service Unavailable').code // 'BLOCKFETCH_HTTP_TRANSIENT'
 * new HttpStatusError(404, url, 'Not Found').retryable      // false
 * ```
 */
export class HttpStatusError extends BlockfetchError {
  /** The HTTP status code. */
  readonly status: number;
  constructor(status: number, url: string, message: string, options: BlockfetchErrorOptions = {}) {
    super(
      TRANSIENT_HTTP_STATUSES.has(status) ? 'BLOCKFETCH_HTTP_TRANSIENT' : 'BLOCKFETCH_HTTP_STATUS',
      `${redactUrl(url)}: HTTP ${status}${message ? `: ${message}` : ''}`,
      options,
    );
    this.status = status;
  }
}

/**
 * Retries ran out; `cause` is the last failure. The cache is left resumable.
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof RetriesExhaustedError) console.error(`gave up after ${err.attempts} attempts:`, err.cause); }
 * ```
 */
export class RetriesExhaustedError extends BlockfetchError {
  /** How many attempts were made in all. */
  readonly attempts: number;
  constructor(message: string, attempts: number, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_RETRIES_EXHAUSTED', message, { hint: 'run the same download again to resume', ...options });
    this.attempts = attempts;
  }
}

/**
 * The downloaded bytes do not have the expected digest. The file is not complete.
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof DigestMismatchError) console.error(`${err.algorithm}: expected ${err.expected}, got ${err.actual}`); }
 * ```
 */
export class DigestMismatchError extends BlockfetchError {
  /** The hash algorithm, e.g. `sha256`. */
  readonly algorithm: string;
  /** The digest that was expected, hex. */
  readonly expected: string;
  /** The digest of the bytes received, hex. */
  readonly actual: string;
  constructor(algorithm: string, expected: string, actual: string, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_DIGEST_MISMATCH', `${algorithm} mismatch: expected ${expected}, got ${actual}`, options);
    this.algorithm = algorithm;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * The operation was stopped by its `AbortSignal`.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * process.once('SIGINT', () => controller.abort());
 * catch (err) { if (err instanceof AbortedError) console.error('stopped; run again to resume'); }
 * ```
 */
export class AbortedError extends BlockfetchError {
  constructor(message = 'the operation was aborted', options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_ABORTED', message, options);
  }
}

/**
 * Query parameter names that make a URL "signed" (S3 and GCS presigned URLs,
 * Azure SAS, CloudFront, HMAC-signed links): in such a URL every value is
 * redacted, since the signature covers them all and which of them is the
 * secret differs by service.
 */
const SIGNED_URL_PARAMETER = /sig|signature|hmac|^x-amz-|^x-goog-|^se$|^sp$|^policy$|^key-pair-id$/i;

/** Query parameter names whose value is redacted in any URL: credentials, sessions, one-time codes. */
const SECRET_URL_PARAMETER = /sig|token|key|credential|auth|pass|secret|session|sid|code|jwt|otp|nonce|ticket/i;

/**
 * Returns `url` with any user name and password removed and the secrets of
 * its query replaced by `REDACTED`, for use in messages, logs, printed
 * commands and the index: every value of a signed URL (one with any
 * signature-like parameter), else the value of each parameter whose name
 * looks like a credential (`token`, `sessionid`, `code`, `pass`, ...).
 *
 * @example
 * ```ts
 * redactUrl('https://u:p@host/f?X-Amz-Signature=abc&file=a') // 'https://host/f?X-Amz-Signature=REDACTED&file=REDACTED'
 * redactUrl('https://host/f?sessionid=s&lang=en')           // 'https://host/f?sessionid=REDACTED&lang=en'
 * ```
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//');
  }
  parsed.username = '';
  parsed.password = '';
  const keys = [...parsed.searchParams.keys()];
  const signed = keys.some((key) => SIGNED_URL_PARAMETER.test(key));
  for (const key of new Set(keys)) {
    if (signed || SECRET_URL_PARAMETER.test(key)) parsed.searchParams.set(key, 'REDACTED');
  }
  return parsed.toString();
}

const NOT_RETRYABLE: RetryResponse = Object.freeze({
  isRetryable: () => false,
  backoffDuration: () => undefined,
});

/**
 * The {@link RetryResponse} for any thrown value: a {@link BlockfetchError}
 * answers by its code (and its `Retry-After`); anything else is never
 * retried. An abort, a `TypeError` from a bug or a plain `Error` would fail
 * the same way again, and retrying it six times only hides it; a `Reader`
 * turns each transient failure into a `BlockfetchError` with a retryable code.
 *
 * @example
 * ```ts
 * retryResponseOf(new BlockfetchError('BLOCKFETCH_NETWORK', 'reset')).isRetryable() // true
 * retryResponseOf(new TypeError('x is undefined')).isRetryable()                     // false
 * ```
 */
export function retryResponseOf(err: unknown): RetryResponse {
  return err instanceof BlockfetchError ? err : NOT_RETRYABLE;
}

/**
 * True when `err` is a {@link BlockfetchError} with the given code.
 *
 * @example
 * ```ts
 * if (hasCode(err, 'BLOCKFETCH_LOCKED')) console.error('another process is downloading it');
 * ```
 */
export function hasCode(err: unknown, code: ErrorCode): err is BlockfetchError {
  return err instanceof BlockfetchError && err.code === code;
}
