/**
 * The values the command line and an input file (`-i FILE`) both take, read
 * by one rule each: a checksum in aria2c's `TYPE=DIGEST` spelling
 * (`--checksum` and `checksum=`) and a digest's hex digits (also `--sha256`
 * and `--sha512`).
 *
 * What is wrong is answered, not thrown: each caller words its own message
 * (`--checksum …` on the command line, `FILE:LINE: checksum= …` in an input
 * file), and none of them echoes more of the value than it means to.
 */
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';

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
