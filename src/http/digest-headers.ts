/**
 * Whole-file digests advertised by servers, read from response headers and
 * turned into an {@link ExpectedDigest} (lower-case hex).
 *
 * Which headers describe the WHOLE file matters with range requests:
 * `Repr-Digest` (RFC 9530) describes the selected representation, i.e. the
 * whole file, even in a 206; `Content-Digest` describes only the bytes of
 * this message (the part), so it is deliberately NOT used here. The legacy
 * `Digest` header (RFC 3230) is an instance digest, which is also the whole
 * file. `x-amz-checksum-sha256` is the whole object unless it is a multipart
 * composite (`...-N`, or `x-amz-checksum-type: COMPOSITE`), which is a hash
 * of part hashes and cannot be checked against the bytes. `x-goog-hash`
 * carries the object's MD5 (absent for composite objects; its crc32c is not
 * an algorithm blockfetch checks), and is ignored for an object stored
 * compressed (`x-goog-stored-content-encoding: gzip`), whose hashes are of
 * the stored bytes.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';
import { headerValue } from './headers.js';

/** Stronger first: when a server offers several, the strongest is kept. */
const PREFERENCE: readonly DigestAlgorithm[] = ['sha512', 'sha256', 'sha1', 'md5'];

/** RFC 9530 / RFC 3230 / IANA algorithm names, lower case, to node:crypto names. */
const ALGORITHM_NAMES: Readonly<Record<string, DigestAlgorithm>> = {
  'sha-512': 'sha512',
  'sha-256': 'sha256',
  sha: 'sha1',
  md5: 'md5',
};

/** Decodes strict base64 of exactly the algorithm's length to lower-case hex, or undefined. */
function base64ToHex(algorithm: DigestAlgorithm, text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) return undefined;
  const bytes = Buffer.from(trimmed, 'base64');
  return bytes.length * 2 === DIGEST_HEX_LENGTH[algorithm] ? bytes.toString('hex') : undefined;
}

function strongest(found: Map<DigestAlgorithm, string>): ExpectedDigest | undefined {
  for (const algorithm of PREFERENCE) {
    const hex = found.get(algorithm);
    if (hex !== undefined) return { algorithm, hex };
  }
  return undefined;
}

/**
 * Parses an RFC 9530 `Repr-Digest` value, a structured-field dictionary of
 * byte sequences: `sha-256=:<base64>:, sha-512=:<base64>:`. Returns the
 * strongest digest it understands, or undefined.
 *
 * @example
 * ```ts
 * parseReprDigest('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:')
 * // { algorithm: 'sha256', hex: 'e3b0c442...b855' }
 * ```
 */
export function parseReprDigest(value: string | undefined): ExpectedDigest | undefined {
  if (value === undefined) return undefined;
  const found = new Map<DigestAlgorithm, string>();
  for (const member of value.split(',')) {
    const m = /^\s*([a-z][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;.*)?$/.exec(member);
    if (!m) continue;
    const algorithm = ALGORITHM_NAMES[m[1] ?? ''];
    if (algorithm === undefined) continue;
    const hex = base64ToHex(algorithm, m[2] ?? '');
    if (hex !== undefined) found.set(algorithm, hex);
  }
  return strongest(found);
}

/**
 * Parses a legacy RFC 3230 `Digest` value: `SHA-256=<base64>, MD5=<base64>`
 * (algorithm names are case-insensitive). Returns the strongest, or undefined.
 */
export function parseLegacyDigest(value: string | undefined): ExpectedDigest | undefined {
  if (value === undefined) return undefined;
  const found = new Map<DigestAlgorithm, string>();
  for (const member of value.split(',')) {
    const eq = member.indexOf('=');
    if (eq < 0) continue;
    const algorithm = ALGORITHM_NAMES[member.slice(0, eq).trim().toLowerCase()];
    if (algorithm === undefined) continue;
    const hex = base64ToHex(algorithm, member.slice(eq + 1));
    if (hex !== undefined) found.set(algorithm, hex);
  }
  return strongest(found);
}

/**
 * The whole-file digest the response headers advertise, or undefined. In
 * order of preference: `Repr-Digest`, `Digest`, `x-amz-checksum-sha256`
 * (not composites), `x-goog-hash` md5. Never `Content-Digest` (see the
 * module comment).
 */
export function digestFromHeaders(headers: IncomingHttpHeaders): ExpectedDigest | undefined {
  const repr = parseReprDigest(headerValue(headers, 'repr-digest'));
  if (repr) return repr;
  const legacy = parseLegacyDigest(headerValue(headers, 'digest'));
  if (legacy) return legacy;
  const amz = headerValue(headers, 'x-amz-checksum-sha256');
  const amzType = headerValue(headers, 'x-amz-checksum-type');
  if (amz !== undefined && !/-\d+$/.test(amz.trim()) && amzType?.trim().toUpperCase() !== 'COMPOSITE') {
    const hex = base64ToHex('sha256', amz);
    if (hex !== undefined) return { algorithm: 'sha256', hex };
  }
  const goog = headerValue(headers, 'x-goog-hash');
  // An object stored gzip-compressed has the hashes of its stored bytes,
  // not of what a decompressive transcoding serves: not a digest of the file.
  const stored = headerValue(headers, 'x-goog-stored-content-encoding')?.trim().toLowerCase();
  if (goog !== undefined && (stored === undefined || stored === '' || stored === 'identity')) {
    for (const member of goog.split(',')) {
      const eq = member.indexOf('=');
      if (eq < 0 || member.slice(0, eq).trim().toLowerCase() !== 'md5') continue;
      const hex = base64ToHex('md5', member.slice(eq + 1));
      if (hex !== undefined) return { algorithm: 'md5', hex };
    }
  }
  return undefined;
}
