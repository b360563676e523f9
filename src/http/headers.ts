/**
 * Parsing of the HTTP response headers the reader depends on: Content-Range,
 * Content-Length, Retry-After and ETag strength. Pure functions; malformed
 * input gives `undefined`, never an exception, because a header is data from
 * the network and the caller decides what a missing value means.
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The value of header `name` (lower case) as one string, or undefined.
 * A header sent more than once is joined with `, ` (RFC 9110 §5.3), which
 * makes a repeated single-valued header such as Content-Range fail to parse
 * instead of silently taking one of the copies.
 */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : value;
}

/** A parsed `Content-Range` header. */
export interface ContentRange {
  /** First byte (inclusive), or -1 for `bytes *\/size` (an unsatisfied range). */
  readonly from: number;
  /** Last byte (inclusive), or -1 for `bytes *\/size`. */
  readonly to: number;
  /** The complete length, or undefined when the server sent `*` (unknown). */
  readonly size: number | undefined;
}

const DIGITS = /^\d{1,16}$/;

function safeInt(text: string): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Parses `Content-Range: bytes <from>-<to>/<size>`, `bytes <from>-<to>/*` or
 * `bytes *\/<size>` (RFC 9110 §14.4). Returns undefined for anything else,
 * including a range whose end is before its start or past the size.
 *
 * @example
 * ```ts
 * parseContentRange('bytes 0-99/1000') // { from: 0, to: 99, size: 1000 }
 * parseContentRange('bytes *\/0')      // { from: -1, to: -1, size: 0 }
 * ```
 */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes[ \t]+(?:(\d+)-(\d+)|(\*))\/(\d+|\*)$/i.exec(value.trim());
  if (!m) return undefined;
  const size = m[4] === '*' ? undefined : safeInt(m[4] ?? '');
  if (m[4] !== '*' && size === undefined) return undefined;
  if (m[3] === '*') {
    return size === undefined ? undefined : { from: -1, to: -1, size };
  }
  const from = safeInt(m[1] ?? '');
  const to = safeInt(m[2] ?? '');
  if (from === undefined || to === undefined || to < from) return undefined;
  if (size !== undefined && to >= size) return undefined;
  return { from, to, size };
}

/** Parses `Content-Length` (digits only); undefined when absent or malformed. */
export function parseContentLength(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return safeInt(value.trim());
}

/**
 * The delay a `Retry-After` header asks for, in milliseconds: either a number
 * of seconds or an HTTP date (a date in the past means 0). Undefined when
 * absent or malformed. A number of seconds too large to count in ms (say
 * `99999999999999999999`) gives `Number.MAX_SAFE_INTEGER`, for the caller
 * to cap (`maxRetryAfterMs`), not undefined: the server did ask to wait.
 *
 * @example
 * ```ts
 * parseRetryAfter('3') // 3000
 * parseRetryAfter(new Date(Date.now() + 5000).toUTCString()) // about 5000
 * ```
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    // A delay too long to count in ms is still a request to wait (long):
    // clamp it, so the caller's cap applies, rather than read it as absent.
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) ? ms : Number.MAX_SAFE_INTEGER;
  }
  // Only the IMF-fixdate family: Date.parse accepts much more, but a bare
  // number or a free-form string is not an HTTP date.
  if (!/^[A-Za-z]{3},? /.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * True for a strong ETag (`"abc"`), false for a weak one (`W/"abc"`) or an
 * absent one. Only a strong ETag may go in `If-Match` for byte ranges:
 * a weak one promises equivalent content, not identical bytes (RFC 9110 §8.8.1).
 */
export function isStrongEtag(etag: string | undefined): etag is string {
  return etag !== undefined && /^"[^"]*"$/.test(etag);
}
