/**
 * The request headers blockfetch sets itself, in one list that both the
 * `-H` flag and {@link HttpReader}'s `headers` option check against.
 *
 * Two lists (11 names in the CLI, 8 in the reader) let a library caller set
 * `Connection` or `Content-Length` that the CLI refused; one list means a
 * header is reserved everywhere or nowhere.
 *
 * @module
 */

/**
 * Request headers a caller may not set, lower-case: `Range` and the
 * conditional headers pin each request to one revision and one byte range;
 * `Accept-Encoding` must stay `identity` so that byte offsets are the file's;
 * the framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`,
 * `Host`) belong to the HTTP client.
 *
 * @example
 * ```ts
 * RESERVED_REQUEST_HEADERS.has('if-match') // true
 * RESERVED_REQUEST_HEADERS.has('authorization') // false
 * ```
 */
export const RESERVED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'range',
  'if-match',
  'if-none-match',
  'if-range',
  'if-modified-since',
  'if-unmodified-since',
  'accept-encoding',
  'content-length',
  'transfer-encoding',
  'connection',
  'host',
]);
