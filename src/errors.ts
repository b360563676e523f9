/**
 * Typed errors with stable codes.
 *
 * Every error blockfetch throws on purpose is a {@link BlockfetchError} with a
 * stable `code` a caller can branch on (`err.code === 'BLOCKFETCH_REMOTE_CHANGED'`).
 * Subclasses exist only where a caller acts differently on them. Each error
 * also answers the {@link RetryResponse} questions, so a `Reader` can throw
 * one and the downloader knows whether and when to try again.
 *
 * Messages never contain credentials: URLs are passed through
 * {@link redactUrl} before they are put in a message.
 *
 * Every code is documented in `docs/errors.md`.
 */

/** Every stable error code blockfetch uses. */
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
  | 'BLOCKFETCH_TARGET_EXISTS'
  // the remote
  | 'BLOCKFETCH_REMOTE_CHANGED'
  | 'BLOCKFETCH_RANGE_NOT_SUPPORTED'
  | 'BLOCKFETCH_BAD_RESPONSE'
  | 'BLOCKFETCH_HTTP_STATUS'
  | 'BLOCKFETCH_NETWORK'
  | 'BLOCKFETCH_BODY_LENGTH'
  | 'BLOCKFETCH_TIMEOUT'
  | 'BLOCKFETCH_REDIRECT'
  // the download as a whole
  | 'BLOCKFETCH_RETRIES_EXHAUSTED'
  | 'BLOCKFETCH_DIGEST_MISMATCH'
  | 'BLOCKFETCH_ABORTED';

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
  /** True when retrying may succeed. @default false */
  readonly retryable?: boolean;
  /** A delay the remote asked for, in milliseconds. */
  readonly retryAfterMs?: number;
  /** A short hint for a person: what to do about it. */
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
  /** True when the same operation may succeed if tried again. */
  readonly retryable: boolean;
  /** A delay the remote asked for, in milliseconds, if any. */
  readonly retryAfterMs: number | undefined;
  /** What a person can do about it, if there is something to say. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: BlockfetchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
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

/** An argument or option is not acceptable; the message names it and its value. */
export class InvalidArgumentError extends BlockfetchError {
  constructor(message: string, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_INVALID_ARGUMENT', message, options);
  }
}

/** There is not enough free space on the target's filesystem. Nothing was written. */
export class NotEnoughSpaceError extends BlockfetchError {
  /** Bytes the operation needs. */
  readonly needed: number;
  /** Bytes available to this user on that filesystem. */
  readonly available: number;
  constructor(path: string, needed: number, available: number, options: BlockfetchErrorOptions = {}) {
    super(
      'BLOCKFETCH_NOT_ENOUGH_SPACE',
      `not enough space for ${path}: needs ${needed} bytes, ${available} available`,
      { hint: 'free some space on that filesystem or choose another target directory', ...options },
    );
    this.needed = needed;
    this.available = available;
  }
}

/**
 * The index file of a cache cannot be used: torn, corrupt, foreign, of a newer
 * version, or not matching its data file. `code` says which. Nothing is deleted.
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

/** Another process (or another cache object) holds the cache's lock. */
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
  readonly field: 'etag' | 'lastModified' | 'size' | 'digest';
  readonly before: string;
  readonly after: string;
}

/**
 * The remote file is not the revision this download started from (its ETag,
 * Last-Modified or size changed). Nothing from the new revision was written.
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
            ? `restart (--restart) to discard the ${bytesAtRisk} bytes already downloaded and fetch the new revision`
            : 'restart (--restart) to fetch the new revision',
        ...options,
      },
    );
    this.changes = changes;
    this.bytesAtRisk = bytesAtRisk;
  }
}

/** The remote answered a request with an HTTP status blockfetch cannot use. */
export class HttpStatusError extends BlockfetchError {
  /** The HTTP status code. */
  readonly status: number;
  constructor(status: number, url: string, message: string, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_HTTP_STATUS', `${redactUrl(url)}: HTTP ${status}${message ? `: ${message}` : ''}`, options);
    this.status = status;
  }
}

/** Retries ran out; `cause` is the last failure. The cache is left resumable. */
export class RetriesExhaustedError extends BlockfetchError {
  /** How many attempts were made in all. */
  readonly attempts: number;
  constructor(message: string, attempts: number, options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_RETRIES_EXHAUSTED', message, { hint: 'run the same download again to resume', ...options });
    this.attempts = attempts;
  }
}

/** The downloaded bytes do not have the expected digest. The file is not complete. */
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

/** The operation was stopped by its `AbortSignal`. */
export class AbortedError extends BlockfetchError {
  constructor(message = 'the operation was aborted', options: BlockfetchErrorOptions = {}) {
    super('BLOCKFETCH_ABORTED', message, options);
  }
}

/**
 * Returns `url` with any user name, password and the query string's
 * signature-like parameters removed, for use in messages and logs.
 *
 * @example
 * ```ts
 * redactUrl('https://u:p@host/f?X-Amz-Signature=abc') // 'https://host/f?X-Amz-Signature=REDACTED'
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
  for (const key of [...parsed.searchParams.keys()]) {
    if (/sig|signature|token|key|credential|auth|password|secret/i.test(key)) {
      parsed.searchParams.set(key, 'REDACTED');
    }
  }
  return parsed.toString();
}

/**
 * The {@link RetryResponse} for any thrown value: a {@link BlockfetchError}
 * answers for itself; an abort is never retried; any other error (a socket
 * reset, a DNS failure) is assumed transient and retryable.
 */
export function retryResponseOf(err: unknown): RetryResponse {
  if (err instanceof BlockfetchError) return err;
  const aborted = err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
  return {
    isRetryable: () => !aborted,
    backoffDuration: () => undefined,
  };
}

/** True when `err` is a {@link BlockfetchError} with the given code. */
export function hasCode(err: unknown, code: ErrorCode): err is BlockfetchError {
  return err instanceof BlockfetchError && err.code === code;
}
