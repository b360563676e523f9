/**
 * Comparing two looks at a remote: is it still the revision the cached bytes
 * came from? Pure, and free of HTTP, so every Reader (HTTP, local file) and
 * the downloaders share one rule.
 */
import type { MirrorIdentity, RemoteIdentity } from '../cache/types.js';
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
 * - When either side is a set of mirrors (`mirrors`), see
 *   {@link compareMirrors}: validators are compared mirror by mirror.
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
  if (before.mirrors !== undefined || after.mirrors !== undefined) {
    return [...changes, ...compareMirrors(before, after), ...compareDigests(before, after)];
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
  return [...changes, ...compareDigests(before, after)];
}

/** A digest of `after`'s that `before` recorded differently (for the same algorithm). */
function compareDigests(before: RemoteIdentity, after: RemoteIdentity): RemoteChange[] {
  const a = after.digest;
  const b = [before.digest, ...(before.extraDigests ?? [])].find((d) => d !== undefined && d.algorithm === a?.algorithm);
  if (b !== undefined && a !== undefined && b.hex.toLowerCase() !== a.hex.toLowerCase()) {
    return [{ field: 'digest', before: `${b.algorithm}:${b.hex}`, after: `${a.algorithm}:${a.hex}` }];
  }
  return [];
}

/**
 * The mirrors of an identity: its `mirrors`, or the one URL with its
 * validators for a download from one URL (so a single-URL partial can be
 * continued with mirrors added, and the other way round).
 *
 * @example
 * ```ts
 * mirrorsOf({ url: 'https://a/f', size: 3, etag: '"x"' }) // [{ url: 'https://a/f', etag: '"x"' }]
 * ```
 */
export function mirrorsOf(identity: RemoteIdentity): readonly MirrorIdentity[] {
  if (identity.mirrors !== undefined && identity.mirrors.length > 0) return identity.mirrors;
  return [
    {
      url: identity.url,
      ...(identity.etag === undefined ? {} : { etag: identity.etag }),
      ...(identity.lastModified === undefined ? {} : { lastModified: identity.lastModified }),
    },
  ];
}

/**
 * Mirror sets compared (docs/design.md, "Mirrors"): every mirror of `after`
 * that `before` also lists (same origin and path) must still carry the
 * validators `before` recorded for it: its own ETag and Last-Modified, as
 * for one URL. The order does not matter and a subset is fine. A mirror
 * `before` does not list may join only with proof that it serves the same
 * bytes: a digest recorded in `before` (checked at the end of the run), or
 * the strong ETag every recorded mirror shared; without either it is a
 * `url` change, since nothing says its bytes are the recorded ones.
 */
function compareMirrors(before: RemoteIdentity, after: RemoteIdentity): RemoteChange[] {
  const recorded = mirrorsOf(before);
  const changes: RemoteChange[] = [];
  const digestKnown = before.digest !== undefined || (before.extraDigests ?? []).length > 0;
  for (const mirror of mirrorsOf(after)) {
    const was = recorded.find((m) => sameRemoteUrl(m.url, mirror.url));
    if (was === undefined) {
      const sharedEtag = before.etag !== undefined && !before.etag.startsWith('W/') && before.etag === mirror.etag;
      if (!digestKnown && !sharedEtag) {
        changes.push({ field: 'url', before: recorded.map((m) => m.url).join(' '), after: mirror.url });
      }
      continue;
    }
    if (was.etag !== undefined && was.etag !== mirror.etag) {
      changes.push({ field: 'etag', before: `${was.etag} at ${was.url}`, after: mirror.etag ?? '' });
    }
    if (was.lastModified !== undefined && was.lastModified !== mirror.lastModified) {
      changes.push({ field: 'lastModified', before: `${was.lastModified} at ${was.url}`, after: mirror.lastModified ?? '' });
    }
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
