/**
 * The redirect policy: which redirects are followed, and which request
 * headers survive them. Redirects are followed by hand (not by undici) so
 * that every hop is checked and credentials never leak to another origin.
 */
import { BlockfetchError, redactUrl } from '../errors.js';

/** The statuses that redirect a GET: 301, 302, 303, 307, 308. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Request headers that carry credentials. Since every header outside
 * {@link CROSS_ORIGIN_HEADERS} is dropped when a redirect leaves the origin,
 * this list (with the callers' `sensitiveHeaders`) matters only for a name
 * that is also on that allowlist: it is dropped all the same.
 */
export const DEFAULT_SENSITIVE_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'cookie',
  'proxy-authorization',
]);

/**
 * The only request headers that follow a redirect to another origin (scheme,
 * host or port): content negotiation, which tells the other server nothing
 * about the caller. Every other header, and every header the caller added
 * (`X-Api-Key`, `X-Signature`, a session header of any name), stays with the
 * origin it was meant for: a name-based list of "secret" headers always misses one.
 */
export const CROSS_ORIGIN_HEADERS: ReadonlySet<string> = new Set(['user-agent', 'accept', 'accept-language', 'accept-encoding']);

/** Where a redirect leads and the headers to send there. */
export interface RedirectTarget {
  /** The absolute URL to request next. */
  readonly url: URL;
  /** The request headers for it: the same, minus credentials when the origin changed. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Decides one redirect hop. `location` is resolved against `from`; the new
 * URL must be http or https, and an https URL may not redirect to http (that
 * would send the rest of the exchange, and any credentials, in clear text).
 * When the origin changes, only the headers in {@link CROSS_ORIGIN_HEADERS}
 * are kept, less any named in `sensitive` (case-insensitive). Throws a non-retryable `BLOCKFETCH_REDIRECT`
 * error when the redirect cannot be followed.
 *
 * @example
 * ```ts
 * followRedirect(new URL('https://a.example/f'), 'https://b.example/f', { authorization: 'Bearer x' }, DEFAULT_SENSITIVE_HEADERS)
 * // { url: URL('https://b.example/f'), headers: {} }
 * followRedirect(new URL('https://a.example/f'), 'https://b.example/f', { 'x-api-key': 'k', accept: 'application/octet-stream' }, [])
 * // { url: URL('https://b.example/f'), headers: { accept: 'application/octet-stream' } }
 * ```
 */
export function followRedirect(
  from: URL,
  location: string | undefined,
  headers: Readonly<Record<string, string>>,
  sensitive: readonly string[],
): RedirectTarget {
  if (location === undefined || location.trim() === '') {
    throw new BlockfetchError('BLOCKFETCH_REDIRECT', `${redactUrl(from.href)} redirected without a Location header`);
  }
  let to: URL;
  try {
    to = new URL(location.trim(), from);
  } catch (cause) {
    throw new BlockfetchError('BLOCKFETCH_REDIRECT', `${redactUrl(from.href)} redirected to an invalid URL`, { cause });
  }
  if (to.protocol !== 'http:' && to.protocol !== 'https:') {
    throw new BlockfetchError(
      'BLOCKFETCH_REDIRECT',
      `${redactUrl(from.href)} redirected to a ${to.protocol} URL; only http and https are followed`,
    );
  }
  if (from.protocol === 'https:' && to.protocol === 'http:') {
    throw new BlockfetchError(
      'BLOCKFETCH_REDIRECT',
      `${redactUrl(from.href)} redirected from https to http (${redactUrl(to.href)}); refusing the downgrade`,
      { hint: 'use an http URL to begin with if an unencrypted download is acceptable' },
    );
  }
  if (to.origin === from.origin) return { url: to, headers };
  const drop = new Set(sensitive.map((name) => name.toLowerCase()));
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (CROSS_ORIGIN_HEADERS.has(key) && !drop.has(key)) kept[name] = value;
  }
  return { url: to, headers: kept };
}
