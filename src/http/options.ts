/**
 * The options of {@link HttpReader}: one readonly object, every field
 * documented with its default, and one function that fills the defaults in
 * and rejects bad values with a message naming the option, value and type.
 */
import type { Dispatcher } from 'undici';
import type { RemoteIdentity } from '../cache/types.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_MAX_RETRY_AFTER_MS, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import { InvalidArgumentError } from '../errors.js';
import { booleanOption, describeValue, wholeNumber } from '../validate.js';
import { guardPausedParserAtSocketEnd } from './paused-parser-guard.js';
import { DEFAULT_SENSITIVE_HEADERS } from './redirect.js';
import { RESERVED_REQUEST_HEADERS as RESERVED_HEADERS } from './reserved-headers.js';
import { DEFAULT_USER_AGENT } from './version.js';

/** What an {@link HttpReader} reads and how. Only `url` is required. */
export interface HttpReaderOptions {
  /**
   * The http or https URL of the file. User info in it
   * (`https://user:pass@host/f`) becomes a Basic `Authorization` header and
   * is never sent in the URL nor shown in messages.
   */
  readonly url: string | URL;
  /**
   * Extra request headers sent with every request, e.g.
   * `{ authorization: 'Bearer …' }`. The headers the reader controls
   * (`RESERVED_REQUEST_HEADERS` in `./reserved-headers.ts`: the range, the
   * conditional and the framing headers) may not be set here.
   * @default {}
   */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Names of further request headers that carry credentials: like
   * `Authorization` and `Cookie`, they are dropped when a redirect leaves
   * the origin. Case-insensitive.
   * @default []
   */
  readonly sensitiveHeaders?: readonly string[];
  /**
   * The block size the reader prefers, in bytes, and the size of the first
   * request (`Range: bytes=0-(blockSize-1)`), whose body is reused for
   * block 0.
   * @default `DEFAULT_BLOCK_SIZE` (1 MiB), the block size every other part
   * of blockfetch starts a download with
   */
  readonly blockSize?: number;
  /**
   * The undici dispatcher to send requests through (an `Agent`, `Pool`,
   * `ProxyAgent`, …). The caller keeps ownership of it.
   * @default a new Agent (connections 64, pipelining 1, keep-alive), or an
   * EnvHttpProxyAgent when HTTP_PROXY/HTTPS_PROXY are set; closed by {@link HttpReader.close}
   */
  readonly dispatcher?: Dispatcher;
  /** Time to wait for a response's headers, in ms; then a retryable `BLOCKFETCH_TIMEOUT`. @default `DEFAULT_TIMEOUT_MS` (30000) */
  readonly requestTimeoutMs?: number;
  /**
   * Time a body may go without delivering a byte, in ms (while the consumer
   * is waiting for one): then the request is aborted with a retryable
   * `BLOCKFETCH_TIMEOUT`. A consumer that is slow to read does not count.
   * @default `DEFAULT_TIMEOUT_MS` (30000)
   */
  readonly idleTimeoutMs?: number;
  /** Redirects followed per request, at most. @default 10 */
  readonly maxRedirects?: number;
  /** The `User-Agent` header. @default `blockfetch/<version>` */
  readonly userAgent?: string;
  /**
   * The longest `Retry-After` the reader passes on as a retryable delay, in
   * ms; a server asking for longer is waited for this long, then asked again.
   * @default `DEFAULT_MAX_RETRY_AFTER_MS` (120000), as `RetryOptions.maxRetryAfterMs`
   */
  readonly maxRetryAfterMs?: number;
  /**
   * The identity recorded when the download began (from the cache's index),
   * when resuming. `contentLengthAndBlockSize` compares it with what the
   * remote says now and throws a `RemoteChangedError` listing every change,
   * before any byte is fetched.
   */
  readonly expected?: RemoteIdentity;
  /**
   * How long the body of the first response is kept for the first
   * `getReader` that falls inside it, in ms. It is dropped (its socket
   * closed) after this, or as soon as another range is asked for first.
   * While kept, undici buffers at most its highWaterMark (64 KiB) of it;
   * the rest waits in the socket.
   * @default 5000
   */
  readonly firstBodyHoldMs?: number;
  /**
   * Offer HTTP/2 to an https server (undici's `allowH2`, negotiated by ALPN;
   * a server that does not choose h2 is read over HTTP/1.1). Only for the
   * dispatcher the reader makes itself: a caller's `dispatcher` decides for
   * itself. Off by default: see docs/benchmarks.md, "HTTP/2".
   * @default false
   */
  readonly http2?: boolean;
}

/**
 * The defaults of {@link HttpReaderOptions}.
 *
 * @example
 * ```ts
 * new HttpReader({ url, idleTimeoutMs: defaultHttpReaderOptions.idleTimeoutMs * 4 });
 * ```
 */
export const defaultHttpReaderOptions = Object.freeze({
  headers: Object.freeze({}) as Readonly<Record<string, string>>,
  sensitiveHeaders: Object.freeze([]) as readonly string[],
  blockSize: DEFAULT_BLOCK_SIZE,
  requestTimeoutMs: DEFAULT_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_TIMEOUT_MS,
  maxRedirects: 10,
  userAgent: DEFAULT_USER_AGENT,
  maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS,
  firstBodyHoldMs: 5_000,
  http2: false,
});

/** An RFC 9110 token: what a header name may consist of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;


/** {@link HttpReaderOptions} checked, with defaults filled in and the URL split from its credentials. */
export interface ResolvedHttpReaderOptions {
  /** The URL to request, without user info. */
  readonly url: URL;
  /** Every request header, lower-case names, caller's and the reader's fixed ones. */
  readonly headers: Readonly<Record<string, string>>;
  /** Lower-case names of headers dropped on a cross-origin redirect. */
  readonly sensitiveHeaders: readonly string[];
  /** {@inheritDoc HttpReaderOptions.blockSize} */
  readonly blockSize: number;
  /** The caller's dispatcher, or undefined for the reader's own default. */
  readonly dispatcher: Dispatcher | undefined;
  /** {@inheritDoc HttpReaderOptions.requestTimeoutMs} */
  readonly requestTimeoutMs: number;
  /** {@inheritDoc HttpReaderOptions.idleTimeoutMs} */
  readonly idleTimeoutMs: number;
  /** {@inheritDoc HttpReaderOptions.maxRedirects} */
  readonly maxRedirects: number;
  /** {@inheritDoc HttpReaderOptions.maxRetryAfterMs} */
  readonly maxRetryAfterMs: number;
  /** {@inheritDoc HttpReaderOptions.expected} */
  readonly expected: RemoteIdentity | undefined;
  /** {@inheritDoc HttpReaderOptions.firstBodyHoldMs} */
  readonly firstBodyHoldMs: number;
  /** {@inheritDoc HttpReaderOptions.http2} */
  readonly http2: boolean;
}

const OWNER = 'HttpReader';

/** Parses and checks the URL; a bad one is an {@link InvalidArgumentError} that shows no credentials. */
function parseUrl(value: unknown): URL {
  if (typeof value !== 'string' && !(value instanceof URL)) {
    throw new InvalidArgumentError(`HttpReader option url must be a string or URL, got ${typeof value}`);
  }
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new InvalidArgumentError(`HttpReader option url must be an absolute http(s) URL, got an unparsable string`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`HttpReader option url must be http or https, got a ${url.protocol} URL`);
  }
  return url;
}

/** Fills in defaults and checks every option, naming a bad one. */
export function resolveHttpReaderOptions(options: HttpReaderOptions): ResolvedHttpReaderOptions {
  // Before any request: a caller's own dispatcher is guarded too.
  guardPausedParserAtSocketEnd();
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`HttpReader options must be an object with a url, got ${describeValue(options)}`);
  }
  const url = parseUrl(options.url);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name)) {
      throw new InvalidArgumentError(`HttpReader option headers has an invalid header name ${JSON.stringify(name)}`);
    }
    if (RESERVED_HEADERS.has(lower)) {
      throw new InvalidArgumentError(`HttpReader option headers may not set ${JSON.stringify(name)}: the reader controls it`);
    }
    if (typeof value !== 'string') {
      throw new InvalidArgumentError(`HttpReader option headers[${JSON.stringify(name)}] must be a string, got ${typeof value}`);
    }
    if (/[\r\n\0]/.test(value)) {
      // The value is not shown: it is likely a credential.
      throw new InvalidArgumentError(`HttpReader option headers[${JSON.stringify(name)}] contains a line break or NUL`);
    }
    headers[lower] = value;
  }
  if (url.username !== '' || url.password !== '') {
    if (headers['authorization'] === undefined) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      headers['authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    url.username = '';
    url.password = '';
  }
  const userAgent = options.userAgent ?? defaultHttpReaderOptions.userAgent;
  if (typeof userAgent !== 'string') {
    throw new InvalidArgumentError(`HttpReader option userAgent must be a string, got ${describeValue(userAgent)}`);
  }
  headers['user-agent'] ??= userAgent;
  // Byte ranges only make sense on the stored bytes: a compressed
  // representation would have other offsets and another length.
  headers['accept-encoding'] = 'identity';

  const sensitive = options.sensitiveHeaders ?? defaultHttpReaderOptions.sensitiveHeaders;
  if (!Array.isArray(sensitive) || sensitive.some((h) => typeof h !== 'string')) {
    throw new InvalidArgumentError(`HttpReader option sensitiveHeaders must be an array of header names, got ${describeValue(sensitive)}`);
  }
  const d = defaultHttpReaderOptions;
  const blockSize = wholeNumber(OWNER, 'blockSize', options.blockSize ?? d.blockSize, { min: 1 });
  const dispatcher = options.dispatcher;
  if (dispatcher !== undefined && (dispatcher === null || typeof (dispatcher as { dispatch?: unknown }).dispatch !== 'function')) {
    throw new InvalidArgumentError(`HttpReader option dispatcher must be an undici Dispatcher, got ${describeValue(dispatcher)}`);
  }
  const expected = options.expected;
  if (expected !== undefined && (expected === null || typeof expected !== 'object' || typeof expected.size !== 'number')) {
    throw new InvalidArgumentError(`HttpReader option expected must be a RemoteIdentity with a numeric size, got ${describeValue(expected)}`);
  }
  return {
    url,
    headers,
    sensitiveHeaders: [...new Set([...DEFAULT_SENSITIVE_HEADERS, ...sensitive.map((h) => h.toLowerCase())])],
    blockSize,
    dispatcher,
    requestTimeoutMs: wholeNumber(OWNER, 'requestTimeoutMs', options.requestTimeoutMs ?? d.requestTimeoutMs, { min: 1 }),
    idleTimeoutMs: wholeNumber(OWNER, 'idleTimeoutMs', options.idleTimeoutMs ?? d.idleTimeoutMs, { min: 1 }),
    maxRedirects: wholeNumber(OWNER, 'maxRedirects', options.maxRedirects ?? d.maxRedirects, { min: 0 }),
    maxRetryAfterMs: wholeNumber(OWNER, 'maxRetryAfterMs', options.maxRetryAfterMs ?? d.maxRetryAfterMs, { min: 0 }),
    expected,
    firstBodyHoldMs: wholeNumber(OWNER, 'firstBodyHoldMs', options.firstBodyHoldMs ?? d.firstBodyHoldMs, { min: 0 }),
    http2: booleanOption(OWNER, 'http2', options.http2 ?? d.http2),
  };
}
