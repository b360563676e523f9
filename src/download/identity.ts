/**
 * Comparing two looks at a remote: is it still the revision the cached bytes
 * came from? Pure, and free of HTTP, so every Reader (HTTP, local file) and
 * the downloaders share one rule.
 */
import type { RemoteIdentity } from '../cache/types.js';
import type { RemoteChange } from '../errors.js';

/**
 * The differences between the identity a cache recorded (`before`) and the
 * one the remote shows now (`after`), as {@link RemoteChange}s for a
 * `RemoteChangedError`; empty when they agree.
 *
 * - The size is always compared.
 * - The ETag and Last-Modified are compared exactly (as the server sent
 *   them) when `before` has them; a value `before` recorded that `after`
 *   lacks is a change too, because the revision can no longer be confirmed.
 *   A field `before` lacks cannot show a change and is skipped.
 * - A digest is compared when both have one of the same algorithm (any of
 *   `before`'s, `extraDigests` included).
 * - The URL is compared only when `before` has no validator (no ETag, no
 *   Last-Modified): then the URL and the size are all that say two looks
 *   are of one file, so a partial of URL A is never continued from URL B.
 *   "The same URL" is the same origin and path ({@link sameRemoteUrl}): the
 *   query is not compared, since a renewed signed URL changes only that.
 *   With a validator the URL is not compared: the same revision may be
 *   reached by another URL (a mirror, a renewed signed link).
 *
 * @example
 * ```ts
 * compareIdentity({ url: 'u', size: 10, etag: '"a"' }, { url: 'u', size: 10, etag: '"b"' })
 * // [{ field: 'etag', before: '"a"', after: '"b"' }]
 * ```
 */
export function compareIdentity(before: RemoteIdentity, after: RemoteIdentity): RemoteChange[] {
  const changes: RemoteChange[] = [];
  if (before.size !== after.size) {
    changes.push({ field: 'size', before: String(before.size), after: String(after.size) });
  }
  if (before.etag !== undefined && before.etag !== after.etag) {
    changes.push({ field: 'etag', before: before.etag, after: after.etag ?? '' });
  }
  if (before.lastModified !== undefined && before.lastModified !== after.lastModified) {
    changes.push({ field: 'lastModified', before: before.lastModified, after: after.lastModified ?? '' });
  }
  if (before.etag === undefined && before.lastModified === undefined && !sameRemoteUrl(before.url, after.url)) {
    changes.push({ field: 'url', before: before.url, after: after.url });
  }
  const a = after.digest;
  const b = [before.digest, ...(before.extraDigests ?? [])].find((d) => d !== undefined && d.algorithm === a?.algorithm);
  if (b !== undefined && a !== undefined && b.hex.toLowerCase() !== a.hex.toLowerCase()) {
    changes.push({ field: 'digest', before: `${b.algorithm}:${b.hex}`, after: `${a.algorithm}:${a.hex}` });
  }
  return changes;
}

/**
 * True when two recorded URLs name the same remote file: the same origin
 * (scheme, host, port) and path. The query and fragment are ignored, so a
 * signed URL renewed with a new signature and expiry is the same remote.
 * Strings that are not URLs (a local path) are compared exactly.
 *
 * @example
 * ```ts
 * sameRemoteUrl('https://h/f.iso?X-Amz-Signature=1', 'https://h/f.iso?X-Amz-Signature=2') // true
 * sameRemoteUrl('https://h/a.iso', 'https://h/b.iso') // false
 * ```
 */
export function sameRemoteUrl(a: string, b: string): boolean {
  if (!URL.canParse(a) || !URL.canParse(b)) return a === b;
  const x = new URL(a);
  const y = new URL(b);
  return x.origin === y.origin && x.pathname === y.pathname;
}
