/**
 * `S3Reader`: the {@link Reader} for one S3 object. A signed HEAD first
 * (size, ETag, version, full-object checksum), then one signed ranged GET
 * per request, each pinned with `If-Match` to the ETag the HEAD saw (and to
 * its `versionId` in a versioned bucket), each response checked before a
 * byte of it is handed on.
 *
 * Why not `HttpReader` with a signing hook: HttpReader discovers with a
 * ranged GET of block 0 and revalidates with `bytes=0-0`, and S3 wants a
 * HEAD (the checksum comes only with `x-amz-checksum-mode`; s3rver answers
 * `bytes=0-0` with the whole object); it follows redirects, which S3 does
 * not send for reads; and it refuses `Content-Encoding`, which S3 sends back
 * as stored metadata while serving the stored bytes unchanged. The HTTP
 * parts that are the same are shared: undici, `exactBody`, the status and
 * network error mapping, the header parsers, the digest headers.
 */
import type { Readable } from 'node:stream';

import type { Dispatcher } from 'undici';
import { request } from '../http/undici.js';

import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_MAX_RETRY_AFTER_MS, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import type { ContentInfo, Reader } from '../download/reader.js';
import { BlockfetchError, InvalidArgumentError, RemoteChangedError, type RemoteChange } from '../errors.js';
import { exactBody, release } from '../http/body.js';
import { digestFromHeaders } from '../http/digest-headers.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { networkError, RETRYABLE_STATUSES } from '../http/failures.js';
import { headerValue, parseContentLength, parseContentRange } from '../http/headers.js';
import { pinHeaders, pinKind } from '../http/identity.js';
import { DEFAULT_USER_AGENT } from '../http/version.js';
import { wholeNumber } from '../validate.js';
import type { S3Config } from './config.js';
import { readS3ErrorBody, s3StatusError } from './s3-errors.js';
import { S3Signer } from './signer.js';
import { bucketUrl, s3UrlOf } from './url.js';
import { idleMs } from '../download/idle-time.js';
import { SharedLook, checkReaderRange, emptyBody } from '../download/reader-parts.js';

/** What an {@link S3Reader} reads and how. `bucket`, `key` and `config` are required. */
export interface S3ReaderOptions {
  readonly bucket: string;
  /** The object's key (as stored: not percent-encoded). */
  readonly key: string;
  /** Region, endpoint and credentials (see `resolveS3Config`). */
  readonly config: S3Config;
  /** The block size the reader prefers, in bytes. @default DEFAULT_BLOCK_SIZE (1 MiB) */
  readonly blockSize?: number;
  /** The undici dispatcher to send requests through; the caller keeps it. @default a new Agent per reader, closed by `close()` */
  readonly dispatcher?: Dispatcher;
  /** Time to wait for a response's headers, in ms. @default DEFAULT_TIMEOUT_MS (30000) */
  readonly requestTimeoutMs?: number;
  /** Time a body may go without a byte while it is read, in ms. @default DEFAULT_TIMEOUT_MS (30000) */
  readonly idleTimeoutMs?: number;
  /** The longest Retry-After passed on, in ms. @default DEFAULT_MAX_RETRY_AFTER_MS (120000) */
  readonly maxRetryAfterMs?: number;
  /** The `User-Agent` header. @default `blockfetch/<version>` */
  readonly userAgent?: string;
}

/**
 * The defaults of {@link S3ReaderOptions}.
 *
 * @example
 * ```ts
 * new S3Reader({ bucket, key, config, blockSize: defaultS3ReaderOptions.blockSize * 4 });
 * ```
 */
export const defaultS3ReaderOptions = Object.freeze({
  blockSize: DEFAULT_BLOCK_SIZE,
  requestTimeoutMs: DEFAULT_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_TIMEOUT_MS,
  maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS,
  userAgent: DEFAULT_USER_AGENT,
});

const OWNER = 'S3Reader';

/**
 * A {@link Reader} of one S3 object (AWS or any S3-compatible server).
 *
 * - The first look is a signed HEAD with `x-amz-checksum-mode: ENABLED`:
 *   the size from Content-Length, the identity from ETag and Last-Modified,
 *   the version from `x-amz-version-id`, and the whole-object SHA-256 from
 *   `x-amz-checksum-sha256` when it is a full-object checksum (a multipart
 *   composite cannot be checked against the bytes and is ignored).
 * - Every GET asks for exactly one range, signed (Range and If-Match are
 *   among the signed headers), pinned with If-Match (and `versionId`); a 412
 *   or another ETag or size is a {@link RemoteChangedError}, never retried.
 * - A server that answers a range with MORE than was asked (s3rver answers
 *   `bytes=N-0` with everything from N) is read for the bytes asked and the
 *   connection closed at once: nothing past them is downloaded.
 * - Error statuses are read for their S3 code: a wrong secret, an unknown
 *   key id, a missing key or bucket are clear, non-retryable errors.
 * - `name` and the identity's URL are `s3://BUCKET/KEY`: no endpoint, no
 *   signature, no credential ever reaches a message or the index.
 *
 * @example
 * ```ts
 * const config = await resolveS3Config();
 * const reader = new S3Reader({ bucket: 'my-bucket', key: 'big.iso', config });
 * await downloadFile(reader, 'big.iso');
 * await reader.close();
 * ```
 */
export class S3Reader implements Reader {
  /** `s3://BUCKET/KEY`. */
  readonly name: string;
  readonly #options: Required<Omit<S3ReaderOptions, 'dispatcher'>>;
  readonly #signer: S3Signer | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #url: URL;
  /** The first look, shared by every caller until it fails. */
  readonly #look = new SharedLook((signal) => this.#discover(signal));
  #digest: ExpectedDigest | undefined;
  /** The version the HEAD saw, in a versioned bucket: every GET asks for it. */
  #versionId: string | undefined;
  readonly #open = new Set<Readable>();

  /** @throws InvalidArgumentError when an option is not acceptable (the message names it). */
  constructor(options: S3ReaderOptions) {
    if (options === null || typeof options !== 'object' || typeof options.bucket !== 'string' || typeof options.key !== 'string' || options.key === '') {
      throw new InvalidArgumentError('S3Reader options must be an object with a bucket, a non-empty key and a config');
    }
    const d = defaultS3ReaderOptions;
    this.#options = {
      bucket: options.bucket,
      key: options.key,
      config: options.config,
      blockSize: wholeNumber(OWNER, 'blockSize', options.blockSize ?? d.blockSize, { min: 1 }),
      requestTimeoutMs: wholeNumber(OWNER, 'requestTimeoutMs', options.requestTimeoutMs ?? d.requestTimeoutMs, { min: 1 }),
      idleTimeoutMs: wholeNumber(OWNER, 'idleTimeoutMs', options.idleTimeoutMs ?? d.idleTimeoutMs, { min: 1 }),
      maxRetryAfterMs: wholeNumber(OWNER, 'maxRetryAfterMs', options.maxRetryAfterMs ?? d.maxRetryAfterMs, { min: 0 }),
      userAgent: options.userAgent ?? d.userAgent,
    };
    this.name = s3UrlOf(options.bucket, options.key);
    const { credentials, region, endpoint } = options.config;
    this.#signer = credentials === undefined ? undefined : new S3Signer(credentials, region);
    this.#url = bucketUrl(endpoint, options.bucket, options.key);
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? createDefaultDispatcher();
  }

  /** The HEAD (once; concurrent and later calls share its answer, and a failure is forgotten so the next call tries again). */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    return this.#look.get(signal);
  }

  /** {@inheritDoc Reader.digest} The object's full SHA-256 checksum, when S3 keeps one. */
  digest(): ExpectedDigest | undefined {
    return this.#digest;
  }

  /** A signed, pinned GET of exactly `from..to`; an empty range sends nothing. */
  async getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    if (signal?.aborted) throw signal.reason;
    const info = await this.contentLengthAndBlockSize(signal);
    if (checkReaderRange(this.name, from, to, info.contentLength) === 'empty') return emptyBody(signal);
    const response = await this.#send('GET', { range: `bytes=${from}-${to}`, ...pinHeaders(info.identity) }, signal);
    let beyond: 'error' | 'discard';
    try {
      beyond = await this.#check(response, from, to, info);
    } catch (err) {
      release(response.body);
      throw err;
    }
    this.#open.add(response.body);
    response.body.once('close', () => this.#open.delete(response.body));
    return exactBody(response.body, { length: to - from + 1, beyond, url: this.name, signal });
  }

  /**
   * Confirms the object is still the revision first seen: a signed HEAD
   * pinned with If-Match (412 if it changed), whose ETag and size are
   * compared too (a server that ignores If-Match, as s3rver does, still
   * shows the new ETag).
   */
  async revalidate(signal: AbortSignal): Promise<void> {
    const info = await this.contentLengthAndBlockSize(signal);
    const response = await this.#send('HEAD', pinHeaders(info.identity), signal);
    release(response.body);
    const { statusCode: status, headers } = response;
    if (status === 412) throw this.#preconditionFailed(headers, info.identity);
    if (status !== 200) throw await this.#explain(status, headers, signal);
    const changes = this.#changes(headers, info.identity, parseContentLength(headerValue(headers, 'content-length')));
    if (changes.length > 0) throw new RemoteChangedError(this.name, changes, 0);
  }

  /** Destroys every body still open and closes the reader's own dispatcher. Idempotent. */
  async close(): Promise<void> {
    for (const body of this.#open) release(body);
    this.#open.clear();
    if (this.#ownsDispatcher && !(this.#dispatcher as { closed?: boolean }).closed) await this.#dispatcher.close();
  }

  /** The object's URL, with `versionId` once the HEAD saw a version. */
  #objectUrl(): URL {
    const url = new URL(this.#url);
    if (this.#versionId !== undefined) url.searchParams.set('versionId', this.#versionId);
    return url;
  }

  /** One signed request (unsigned when anonymous), signed at the moment it is sent. */
  async #send(method: 'GET' | 'HEAD', extra: Readonly<Record<string, string>>, signal: AbortSignal | undefined, url: URL = this.#objectUrl()): Promise<Dispatcher.ResponseData> {
    if (signal?.aborted) throw signal.reason;
    const headers = { 'user-agent': this.#options.userAgent, ...extra };
    const sent = this.#signer === undefined ? headers : await this.#signer.sign({ method, url, headers });
    try {
      return await request(url, {
        method,
        headers: sent,
        dispatcher: this.#dispatcher,
        signal: signal ?? null,
        headersTimeout: this.#options.requestTimeoutMs,
        bodyTimeout: this.#options.idleTimeoutMs,
      });
    } catch (err) {
      throw networkError(err, this.name, signal);
    }
  }

  async #discover(signal: AbortSignal | undefined): Promise<ContentInfo> {
    const idleBefore = idleMs();
    const response = await this.#send('HEAD', { 'x-amz-checksum-mode': 'ENABLED' }, signal);
    const firstAnswerIdleMs = idleMs() - idleBefore;
    release(response.body);
    const { statusCode: status, headers } = response;
    if (status !== 200) throw await this.#explain(status, headers, signal);
    const size = parseContentLength(headerValue(headers, 'content-length'));
    if (size === undefined) {
      throw new BlockfetchError('BLOCKFETCH_UNUSABLE_RESPONSE', `${this.name}: the HEAD answer has no usable Content-Length, so the object's size is unknown`);
    }
    const version = headerValue(headers, 'x-amz-version-id');
    // "null" is the version of an object written before versioning was enabled: not addressable by id everywhere.
    this.#versionId = version === undefined || version === 'null' || version === '' ? undefined : version;
    const digest = digestFromHeaders(headers);
    this.#digest = digest;
    const etag = headerValue(headers, 'etag');
    const lastModified = headerValue(headers, 'last-modified');
    const identity: RemoteIdentity = Object.freeze({
      url: this.name,
      size,
      ...(etag === undefined ? {} : { etag }),
      ...(lastModified === undefined ? {} : { lastModified }),
      ...(digest === undefined ? {} : { digest }),
    });
    return Object.freeze({
      contentLength: size,
      blockSize: this.#options.blockSize,
      identity,
      rangesSupported: true,
      pinned: pinKind(identity) !== 'none',
      firstAnswerIdleMs,
    });
  }

  /**
   * The error for a failed status. A HEAD's error has no body, so for a
   * non-transient one the same object is asked once with a GET, whose
   * error body names the S3 code (NoSuchKey or NoSuchBucket,
   * SignatureDoesNotMatch or InvalidAccessKeyId): one request more, once,
   * for a message that says what to fix.
   */
  async #explain(status: number, headers: Dispatcher.ResponseData['headers'], signal: AbortSignal | undefined): Promise<BlockfetchError> {
    if (RETRYABLE_STATUSES.has(status)) return s3StatusError(status, headers, this.name, { code: undefined, message: undefined }, this.#options.maxRetryAfterMs);
    let body = { code: headerValue(headers, 'x-amz-error-code'), message: undefined as string | undefined };
    if (body.code === undefined && status >= 400) {
      try {
        const get = await this.#send('GET', {}, signal);
        if (get.statusCode >= 300) body = await readS3ErrorBody(get);
        else release(get.body); // Readable after all: the status still says what the HEAD met.
      } catch {
        // The explanation is a courtesy; the HEAD's status stands.
      }
    }
    return s3StatusError(status, headers, this.name, body, this.#options.maxRetryAfterMs);
  }

  /**
   * Checks a GET's response for `from..to`; answers how the body's end is
   * read: `'error'` (it must end after the range) or `'discard'` (it runs
   * on past the range, and is cut there).
   */
  async #check(response: Dispatcher.ResponseData, from: number, to: number, info: ContentInfo): Promise<'error' | 'discard'> {
    const { statusCode: status, headers } = response;
    const identity = info.identity;
    if (status === 412) throw this.#preconditionFailed(headers, identity);
    if (status >= 300) {
      const body = await readS3ErrorBody(response);
      throw s3StatusError(status, headers, this.name, body, this.#options.maxRetryAfterMs);
    }
    // Content-Encoding is deliberately not refused: S3 returns it as the
    // object's stored metadata and serves the stored bytes as they are.
    if (status === 200) {
      const length = parseContentLength(headerValue(headers, 'content-length'));
      if (from === 0 && to === identity.size - 1 && length === identity.size) {
        const changes = this.#changes(headers, identity, length);
        if (changes.length > 0) throw new RemoteChangedError(this.name, changes, 0);
        return 'error';
      }
      throw this.#bad(`answered 200 (the whole object) to bytes=${from}-${to}`);
    }
    if (status !== 206) throw this.#bad(`answered ${status} to bytes=${from}-${to}`);
    const range = parseContentRange(headerValue(headers, 'content-range'));
    const changes = this.#changes(headers, identity, range?.size);
    if (changes.length > 0) throw new RemoteChangedError(this.name, changes, 0);
    if (range === undefined || range.from !== from || range.to < to) {
      throw this.#bad(`answered Content-Range ${headerValue(headers, 'content-range') ?? '(none)'} to bytes=${from}-${to}`);
    }
    const length = parseContentLength(headerValue(headers, 'content-length'));
    if (length !== undefined && length !== range.to - range.from + 1) {
      throw this.#bad(`sent Content-Length ${length} for Content-Range ${headerValue(headers, 'content-range') ?? ''}`);
    }
    return range.to === to ? 'error' : 'discard';
  }

  /** The ETag and size of a response against the pinned identity. */
  #changes(headers: Dispatcher.ResponseData['headers'], identity: RemoteIdentity, size: number | undefined): RemoteChange[] {
    const changes: RemoteChange[] = [];
    const etag = headerValue(headers, 'etag');
    // A response without the pinned ETag is no evidence of that revision.
    if (identity.etag !== undefined && etag !== identity.etag) changes.push({ field: 'etag', before: identity.etag, after: etag ?? '(none sent)' });
    if (size !== undefined && size !== identity.size) changes.push({ field: 'size', before: String(identity.size), after: String(size) });
    return changes;
  }

  #preconditionFailed(headers: Dispatcher.ResponseData['headers'], identity: RemoteIdentity): RemoteChangedError {
    return new RemoteChangedError(this.name, [{ field: 'etag', before: identity.etag ?? '', after: headerValue(headers, 'etag') ?? '(412 Precondition Failed)' }], 0);
  }

  #bad(what: string): BlockfetchError {
    return new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${this.name} ${what}`);
  }
}
