/**
 * Revision pinning: the request headers that make a server answer only from
 * one revision. (Comparing two identities is not HTTP-specific and lives in
 * `src/download/identity.ts` as `compareIdentity`.)
 */
import type { RemoteIdentity } from '../cache/types.js';
import { isStrongEtag } from './headers.js';

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
