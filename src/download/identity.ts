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
 * - A digest is compared when both have one of the same algorithm.
 * - The URL is not compared: the same file may be reached by another URL
 *   (a mirror, a renewed signed link).
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
  const b = before.digest;
  const a = after.digest;
  if (b !== undefined && a !== undefined && b.algorithm === a.algorithm && b.hex.toLowerCase() !== a.hex.toLowerCase()) {
    changes.push({ field: 'digest', before: `${b.algorithm}:${b.hex}`, after: `${a.algorithm}:${a.hex}` });
  }
  return changes;
}
