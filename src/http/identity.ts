/**
 * Revision identity: comparing what a cache recorded about the remote with
 * what the remote says now, and the request headers that pin a request to
 * one revision.
 */
import type { RemoteIdentity } from '../cache/types.js';
import type { RemoteChange } from '../errors.js';
import { isStrongEtag } from './headers.js';

/**
 * The differences between two identities of a remote, for a
 * `RemoteChangedError`. The size is always compared; the ETag, Last-Modified
 * and digest are compared when `before` has them (a value `before` recorded
 * that `after` lacks is a change: the revision can no longer be confirmed).
 * A field `before` lacks cannot show a change and is skipped. The URL is not
 * compared: the same file may be reached by another URL.
 *
 * Nothing here is HTTP-specific beyond the field names; a file reader can
 * use it with size and mtime.
 *
 * @example
 * ```ts
 * compareIdentity({ url, size: 10, etag: '"a"' }, { url, size: 10, etag: '"b"' })
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
  if (before.digest !== undefined && after.digest !== undefined && before.digest.algorithm === after.digest.algorithm) {
    if (before.digest.hex !== after.digest.hex) {
      changes.push({
        field: 'digest',
        before: `${before.digest.algorithm}:${before.digest.hex}`,
        after: `${after.digest.algorithm}:${after.digest.hex}`,
      });
    }
  }
  return changes;
}

/** How requests are pinned to the revision of an identity. */
export type PinKind = 'etag' | 'last-modified' | 'none';

/**
 * How requests for `identity` can be pinned: by a strong ETag in `If-Match`,
 * else by Last-Modified in `If-Unmodified-Since` (a weak ETag promises
 * equivalent content, not identical bytes, so it cannot pin byte ranges),
 * else not at all.
 */
export function pinKind(identity: RemoteIdentity): PinKind {
  if (isStrongEtag(identity.etag)) return 'etag';
  if (identity.lastModified !== undefined) return 'last-modified';
  return 'none';
}

/**
 * The conditional request headers that make a server refuse (412) to answer
 * from any other revision than `identity`'s. Empty when it cannot be pinned.
 */
export function pinHeaders(identity: RemoteIdentity): Record<string, string> {
  switch (pinKind(identity)) {
    case 'etag':
      return { 'if-match': identity.etag ?? '' };
    case 'last-modified':
      return { 'if-unmodified-since': identity.lastModified ?? '' };
    case 'none':
      return {};
  }
}
