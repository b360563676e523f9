/**
 * The values the command line and an input file (`-i FILE`) both take, read
 * by one rule each: a checksum in aria2c's `TYPE=DIGEST` spelling
 * (`--checksum` and `checksum=`), a digest's hex digits (also `--sha256`
 * and `--sha512`), and an extra request header (`-H` and `header=`).
 *
 * What is wrong is answered, not thrown: each caller words its own message
 * (`--checksum …` on the command line, `FILE:LINE: checksum= …` in an input
 * file), and none of them echoes more of the value than it means to.
 */
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';
import { RESERVED_REQUEST_HEADERS } from '../http/reserved-headers.js';

/**
 * aria2c's algorithm names in `--checksum TYPE=DIGEST` and an input file's
 * `checksum=TYPE=DIGEST`, as blockfetch's.
 *
 * @example
 * ```ts
 * CHECKSUM_ALGORITHMS['sha-256'] // 'sha256'
 * Object.keys(CHECKSUM_ALGORITHMS).join(', ') // 'sha-256, sha-512, sha-1, md5'
 * ```
 */
export const CHECKSUM_ALGORITHMS: Readonly<Record<string, DigestAlgorithm>> = Object.freeze({
  'sha-256': 'sha256',
  'sha-512': 'sha512',
  'sha-1': 'sha1',
  md5: 'md5',
});

/** A `TYPE=DIGEST` split at its first `=`, its TYPE known. */
export interface ChecksumParts {
  /** TYPE as given, trimmed and lower-cased (`sha-256`): for messages. */
  readonly type: string;
  /** The algorithm TYPE names. */
  readonly algorithm: DigestAlgorithm;
  /** Everything after the first `=`, untouched: check it with {@link hexDigest}. */
  readonly digest: string;
}

/**
 * Splits aria2c's `TYPE=DIGEST` at its first `=`; `undefined` when there is
 * no `=` or TYPE is not one of {@link CHECKSUM_ALGORITHMS} (case and
 * surrounding white space do not matter). DIGEST is not checked here.
 *
 * @example
 * ```ts
 * splitChecksum('SHA-256= 9f86…') // { type: 'sha-256', algorithm: 'sha256', digest: ' 9f86…' }
 * splitChecksum('sha256=9f86…')   // undefined (aria2c spells it sha-256)
 * ```
 */
export function splitChecksum(text: string): ChecksumParts | undefined {
  const at = text.indexOf('=');
  const type = text.slice(0, Math.max(0, at)).trim().toLowerCase();
  const algorithm = CHECKSUM_ALGORITHMS[type];
  if (at < 0 || algorithm === undefined) return undefined;
  return { type, algorithm, digest: text.slice(at + 1) };
}

/**
 * `text` as a digest of `algorithm` when it is exactly as many hex digits
 * as that algorithm has ({@link DIGEST_HEX_LENGTH}), after trimming; upper
 * case is accepted and lower-cased. `undefined` otherwise.
 *
 * @example
 * ```ts
 * hexDigest(' 9F86…08 ', 'sha256') // { algorithm: 'sha256', hex: '9f86…08' } (64 digits)
 * hexDigest('abc', 'sha256')       // undefined
 * ```
 */
export function hexDigest(text: string, algorithm: DigestAlgorithm): ExpectedDigest | undefined {
  const hex = text.trim().toLowerCase();
  return new RegExp(`^[0-9a-f]{${DIGEST_HEX_LENGTH[algorithm]}}$`).test(hex) ? { algorithm, hex } : undefined;
}

/** An HTTP field name (RFC 9110 `token`). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const C0_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const C0_OR_C1_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

/** A `Name: value` header as read by {@link readHeader}. */
export interface HeaderReading {
  /** The name before the first colon, trimmed; `''` when there is no colon. */
  readonly name: string;
  /** The value after the first colon, trimmed; `''` when there is no colon. */
  readonly value: string;
  /**
   * The first rule it breaks, `undefined` when none: `shape` (no colon, or
   * a name that is not an HTTP token), `control` (a control character in
   * the value: CR/LF would split the header), `reserved` (a header
   * blockfetch sets itself, {@link RESERVED_REQUEST_HEADERS}).
   */
  readonly problem: 'shape' | 'control' | 'reserved' | undefined;
}

/** Which control characters {@link readHeader} refuses in a value besides C0 (TAB allowed) and DEL. */
export interface HeaderControlRule {
  /**
   * Also U+0080–U+009F (C1): an input file refuses them in every value, as
   * its `out=` and `dir=` do; `-H` takes them (a byte of obs-text to HTTP).
   */
  readonly refuseC1: boolean;
}

/**
 * Reads an extra request header, `Name: value` (`-H`, and an input file's
 * `header=`): split at the first colon, both sides trimmed, and checked in
 * this order: the shape, the value's control characters, then whether
 * blockfetch sets the header itself. The caller words the message; the
 * value is never in it (it may hold a credential).
 *
 * @example
 * ```ts
 * readHeader('Authorization: Bearer t', { refuseC1: false }) // { name: 'Authorization', value: 'Bearer t', problem: undefined }
 * readHeader('no colon', { refuseC1: false })                // { name: '', value: '', problem: 'shape' }
 * readHeader('Range: bytes=0-1', { refuseC1: true })         // { name: 'Range', value: 'bytes=0-1', problem: 'reserved' }
 * ```
 */
export function readHeader(text: string, controls: HeaderControlRule): HeaderReading {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon).trim();
  const value = colon < 0 ? '' : text.slice(colon + 1).trim();
  const problem =
    colon < 0 || !TOKEN.test(name)
      ? 'shape'
      : (controls.refuseC1 ? C0_OR_C1_CONTROL : C0_CONTROL).test(value)
        ? 'control'
        : RESERVED_REQUEST_HEADERS.has(name.toLowerCase())
          ? 'reserved'
          : undefined;
  return { name, value, problem };
}
