/**
 * Choosing a local file name for a download when the user gave none.
 *
 * The name comes from the server (`Content-Disposition`) or from the URL's
 * last path segment, both of which a hostile server controls. So every name
 * is passed through {@link sanitizeFilename}: the result is always a single
 * plain file name in the current directory, never a path.
 */

import { MAX_TARGET_NAME_BYTES } from '../download-file.js';

/** The name used when neither the server nor the URL offers a usable one. */
export const FALLBACK_FILENAME = 'download';

/**
 * The longest name kept, in UTF-8 bytes: 234. 255 is the limit of ext4, XFS,
 * btrfs, APFS and NTFS, and the longest name blockfetch puts next to the
 * target is the index's temp file `.NAME.blockfetch.json.tmp`, 21 bytes more
 * (a name of 235-239 bytes, cut for `NAME.blockfetch.json` only, failed with
 * ENAMETOOLONG when the index was first saved). The same limit as a
 * user-given target's ({@link MAX_TARGET_NAME_BYTES}).
 */
export const MAX_FILENAME_BYTES = MAX_TARGET_NAME_BYTES;

/**
 * Makes `name` safe to use as a file name in the current directory, or
 * returns `undefined` when nothing usable is left.
 *
 * - Only the last path segment is kept (`../../etc/passwd` → `passwd`;
 *   both `/` and `\` count as separators, for names meant for Windows).
 * - Control characters (C0, DEL, C1) are removed: they could rewrite the
 *   terminal when the name is printed.
 * - Leading dots and surrounding white space are removed, so a server cannot
 *   create a hidden file, `.` or `..`.
 * - The name is cut to {@link MAX_FILENAME_BYTES} UTF-8 bytes, keeping the
 *   extension when it is short.
 *
 * @example
 * ```ts
 * sanitizeFilename('../../etc/passwd')   // 'passwd'
 * sanitizeFilename('a\u001b[2Jb.iso')    // 'a[2Jb.iso'
 * sanitizeFilename('..')                 // undefined
 * ```
 */
export function sanitizeFilename(name: string): string | undefined {
  const lastSegment = name.split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  const printable = lastSegment.replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
  const trimmed = printable.trim().replace(/^\.+/, '').trim();
  if (trimmed === '') return undefined;
  return truncateUtf8(trimmed, MAX_FILENAME_BYTES);
}

/**
 * The file name a `Content-Disposition` header suggests, sanitized, or
 * `undefined` when it suggests none (or only an unusable one).
 *
 * `filename*` (RFC 6266 / RFC 8187, `UTF-8''percent-encoded`) wins over
 * `filename`, as the RFC says. Quoted strings may contain `;` and escaped
 * quotes.
 *
 * @example
 * ```ts
 * filenameFromContentDisposition('attachment; filename="data.tar"') // 'data.tar'
 * filenameFromContentDisposition("attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt") // 'été.txt'
 * ```
 */
export function filenameFromContentDisposition(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const params = parseParameters(header);
  const extended = params.get('filename*');
  if (extended !== undefined) {
    const decoded = decodeExtendedValue(extended);
    const safe = decoded === undefined ? undefined : sanitizeFilename(decoded);
    if (safe !== undefined) return safe;
  }
  const plain = params.get('filename');
  return plain === undefined ? undefined : sanitizeFilename(plain);
}

/**
 * The file name a URL suggests: its last non-empty path segment,
 * percent-decoded and sanitized, or `undefined` (for `https://host/`).
 *
 * @example
 * ```ts
 * filenameFromUrl('https://example.com/isos/debian%2012.iso?x=1') // 'debian 12.iso'
 * ```
 */
export function filenameFromUrl(url: string): string | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const segment = pathname.split('/').filter((s) => s !== '').pop();
  if (segment === undefined) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    decoded = segment;
  }
  return sanitizeFilename(decoded);
}

/**
 * The local name for a download: the server's `Content-Disposition` name if
 * it gave a usable one, else the URL's last segment, else
 * {@link FALLBACK_FILENAME}.
 */
export function chooseFilename(url: string, contentDisposition?: string): string {
  return filenameFromContentDisposition(contentDisposition) ?? filenameFromUrl(url) ?? FALLBACK_FILENAME;
}

/** Splits `type; a=1; b="x; y"` into its parameters, names lower-cased. */
function parseParameters(header: string): Map<string, string> {
  const params = new Map<string, string>();
  // name = token or quoted-string; a quoted string may contain \" and ;.
  const pattern = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const match of header.matchAll(pattern)) {
    const name = (match[1] ?? '').toLowerCase();
    let value = (match[2] ?? '').trim();
    if (value.startsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    if (!params.has(name)) params.set(name, value);
  }
  return params;
}

/** Decodes an RFC 8187 value `charset'language'percent-encoded`. */
function decodeExtendedValue(value: string): string | undefined {
  const match = /^([^']*)'[^']*'(.*)$/.exec(value);
  if (!match) return undefined;
  const charset = (match[1] ?? '').toLowerCase();
  const encoded = match[2] ?? '';
  try {
    if (charset === 'utf-8') return decodeURIComponent(encoded);
    if (charset === 'iso-8859-1') {
      return encoded.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a character, keeping a short extension. */
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const dot = text.lastIndexOf('.');
  const extension = dot > 0 && text.length - dot <= 16 ? text.slice(dot) : '';
  const budget = maxBytes - Buffer.byteLength(extension);
  let stem = '';
  let used = 0;
  for (const char of text.slice(0, text.length - extension.length)) {
    const size = Buffer.byteLength(char);
    if (used + size > budget) break;
    stem += char;
    used += size;
  }
  return stem + extension;
}
