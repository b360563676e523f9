/**
 * The redirect policy: which redirects are followed, and which request
 * headers survive them. Redirects are followed by hand (not by undici) so
 * that every hop is checked and credentials never leak to another origin.
 */
import { BlockfetchError, redactUrl } from '../errors.js';

/** The statuses that redirect a GET: 301, 302, 303, 307, 308. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Request headers that carry credentials and are dropped when a redirect
 * leaves the origin (scheme, host and port), as browsers and `fetch` do.
 * Callers add their own names with the `sensitiveHeaders` option.
 */
export const DEFAULT_SENSITIVE_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'cookie',
  'proxy-authorization',
]);

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
 * When the origin changes, every header named in `sensitive`
 * (case-insensitive) is removed. Throws a non-retryable `BLOCKFETCH_REDIRECT`
 * error when the redirect cannot be followed.
 *
 * @example
 * ```ts
 * followRedirect(new URL('https://a.example/f'), 'https://b.example/f', { authorization: 'Bearer x' }, DEFAULT_SENSITIVE_HEADERS)
 * // { url: URL('https://b.example/f'), headers: {} }
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
    if (!drop.has(name.toLowerCase())) kept[name] = value;
  }
  return { url: to, headers: kept };
}
