/**
 * Whole-file digests: choosing the algorithm and the expected value,
 * hashing bytes strictly in file order, and checking the result.
 *
 * Both downloaders hash in order while they run (the CachingDownloader over
 * the cache's growing contiguous prefix, the StreamingDownloader over the
 * bytes it delivers), so a finished file is verified without a second pass.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';
import { DigestMismatchError, InvalidArgumentError } from '../errors.js';

/** The algorithm used when nobody names one. */
export const defaultDigestAlgorithm: DigestAlgorithm = 'sha256';

const HEX_LENGTH = DIGEST_HEX_LENGTH;

/** True when `value` names an algorithm blockfetch can verify with. */
export function isDigestAlgorithm(value: unknown): value is DigestAlgorithm {
  return typeof value === 'string' && Object.hasOwn(HEX_LENGTH, value);
}

/**
 * Checks an {@link ExpectedDigest} and returns it with its hex lower-cased.
 * Throws an {@link InvalidArgumentError} naming `what` when the algorithm is
 * unknown or the hex is not the algorithm's length.
 */
export function normalizeExpectedDigest(digest: ExpectedDigest, what = 'expectedDigest'): ExpectedDigest {
  if (typeof digest !== 'object' || digest === null) {
    throw new InvalidArgumentError(`${what} must be an object { algorithm, hex }, got ${String(digest)} (${typeof digest})`);
  }
  if (!isDigestAlgorithm(digest.algorithm)) {
    throw new InvalidArgumentError(
      `${what}.algorithm must be one of ${Object.keys(HEX_LENGTH).join(', ')}, got ${String(digest.algorithm)} (${typeof digest.algorithm})`,
    );
  }
  const hex = typeof digest.hex === 'string' ? digest.hex.trim().toLowerCase() : '';
  const length = HEX_LENGTH[digest.algorithm];
  if (!new RegExp(`^[0-9a-f]{${length}}$`).test(hex)) {
    throw new InvalidArgumentError(
      `${what}.hex must be ${length} hex digits for ${digest.algorithm}, got ${JSON.stringify(digest.hex)} (${typeof digest.hex})`,
    );
  }
  return Object.freeze({ algorithm: digest.algorithm, hex });
}

/**
 * Parses `algorithm:hex` (as a person would type it, e.g. `sha256:9f86d0…`).
 *
 * @example
 * ```ts
 * parseExpectedDigest('SHA256:' + 'AB'.repeat(32)) // { algorithm: 'sha256', hex: 'abab…' }
 * ```
 */
export function parseExpectedDigest(text: string): ExpectedDigest {
  const match = /^\s*([a-z0-9-]+)[:=](\S+)\s*$/i.exec(text);
  if (match === null) {
    throw new InvalidArgumentError(`a digest must look like sha256:<hex>, got ${JSON.stringify(text)}`);
  }
  const lower = match[1]!.toLowerCase();
  const algorithm = lower === 'git-sha1' ? lower : lower.replace('-', '');
  return normalizeExpectedDigest({ algorithm: algorithm as DigestAlgorithm, hex: match[2]! }, 'digest');
}

/**
 * Builds an {@link ExpectedDigest} from a base64 value (as in an HTTP
 * `Repr-Digest: sha-256=:…:` or `Digest: SHA-256=…` header).
 */
export function expectedDigestFromBase64(algorithm: DigestAlgorithm, base64: string): ExpectedDigest {
  const hex = Buffer.from(base64.replace(/^:|:$/g, ''), 'base64').toString('hex');
  return normalizeExpectedDigest({ algorithm, hex }, 'digest');
}

/**
 * Decides what to hash with and what to expect: the caller's digest wins
 * over the one the remote advertised (the caller may know better, e.g. from
 * a signed manifest); with neither, hash with {@link defaultDigestAlgorithm}
 * and expect nothing (the result is still reported).
 */
export function chooseDigest(
  fromCaller: ExpectedDigest | undefined,
  fromRemote: ExpectedDigest | undefined,
): { readonly algorithm: DigestAlgorithm; readonly expected: ExpectedDigest | undefined } {
  const expected =
    fromCaller !== undefined
      ? normalizeExpectedDigest(fromCaller, 'expectedDigest')
      : fromRemote !== undefined
        ? normalizeExpectedDigest(fromRemote, 'the remote digest')
        : undefined;
  return { algorithm: expected?.algorithm ?? defaultDigestAlgorithm, expected };
}

/**
 * Every digest in `digests` (undefined entries skipped), one per algorithm:
 * where two name one algorithm the first wins, so pass them in the order of
 * trust (the caller's, then the index's, then the remote's). Hex lower-cased.
 *
 * @example
 * ```ts
 * mergeDigests([given, stored, undefined, advertised]) // [given, advertised-of-another-algorithm]
 * ```
 */
export function mergeDigests(digests: readonly (ExpectedDigest | undefined)[]): ExpectedDigest[] {
  const byAlgorithm = new Map<DigestAlgorithm, ExpectedDigest>();
  for (const digest of digests) {
    if (digest === undefined) continue;
    const normal = normalizeExpectedDigest(digest, 'digest');
    if (!byAlgorithm.has(normal.algorithm)) byAlgorithm.set(normal.algorithm, normal);
  }
  return [...byAlgorithm.values()];
}

/**
 * A caller's digests, `expectedDigest` and `expectedDigests` together, as one
 * list with `expectedDigest` first: each checked and lower-cased, one per
 * algorithm (the same digest given twice counts once). Two different
 * digests of one algorithm cannot both be right, so that is an
 * {@link InvalidArgumentError} naming `owner`, before anything is fetched.
 *
 * @example
 * ```ts
 * combineExpectedDigests('downloadFile', sha256, [sha512, sha256]) // [sha256, sha512]
 * ```
 */
export function combineExpectedDigests(
  owner: string,
  expectedDigest: ExpectedDigest | undefined,
  expectedDigests: readonly ExpectedDigest[] | undefined,
): ExpectedDigest[] {
  if (expectedDigests !== undefined && !Array.isArray(expectedDigests)) {
    throw new InvalidArgumentError(`${owner} option expectedDigests must be an array of { algorithm, hex }, got ${typeof expectedDigests}`);
  }
  const given = [
    ...(expectedDigest === undefined ? [] : [normalizeExpectedDigest(expectedDigest, 'expectedDigest')]),
    ...(expectedDigests ?? []).map((digest, i) => normalizeExpectedDigest(digest, `expectedDigests[${i}]`)),
  ];
  const byAlgorithm = new Map<DigestAlgorithm, ExpectedDigest>();
  for (const digest of given) {
    const earlier = byAlgorithm.get(digest.algorithm);
    if (earlier === undefined) byAlgorithm.set(digest.algorithm, digest);
    else if (earlier.hex !== digest.hex) {
      throw new InvalidArgumentError(
        `${owner} was given two different ${digest.algorithm} digests (${earlier.hex} and ${digest.hex}); a file has only one`,
        { hint: 'give one digest per algorithm' },
      );
    }
  }
  return [...byAlgorithm.values()];
}

/**
 * A `node:crypto` hash for `algorithm`, ready for the file's bytes. For
 * `git-sha1` (git's blob id) it has already hashed the header git puts
 * before the content, `blob <contentLength>\0`, so the size must be known
 * up front; the other algorithms ignore it.
 *
 * @example
 * ```ts
 * const hash = createDigestHash('git-sha1', 3);
 * hash.update(Buffer.from('abc'));
 * hash.digest('hex') // 'f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f', as `git hash-object` prints
 * ```
 */
export function createDigestHash(algorithm: DigestAlgorithm, contentLength?: number): Hash {
  if (algorithm !== 'git-sha1') return createHash(algorithm);
  if (contentLength === undefined || !Number.isSafeInteger(contentLength) || contentLength < 0) {
    throw new InvalidArgumentError(`a git-sha1 digest needs the file's size before the first byte, got ${String(contentLength)}`);
  }
  return createHash('sha1').update(`blob ${contentLength}\0`);
}

/**
 * The digests of the file at `path`, one per algorithm, lower-case hex, in
 * one sequential read (1 MiB reads: the per-read cost is small next to the
 * hashing). `checkDigests` (`src/finished-file.ts`) compares them for
 * `verify` and every "already complete" check.
 *
 * @example
 * ```ts
 * const [sha256] = await hashFile('big.iso', ['sha256']);
 * ```
 */
export async function hashFile(path: string, algorithms: readonly DigestAlgorithm[], signal?: AbortSignal): Promise<string[]> {
  // git-sha1 hashes the size before the bytes; the others ignore it.
  const size = algorithms.includes('git-sha1') ? (await stat(path)).size : undefined;
  const hashes = algorithms.map((algorithm) => createDigestHash(algorithm, size));
  const stream = createReadStream(path, { highWaterMark: 2 ** 20, ...(signal === undefined ? {} : { signal }) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (const hash of hashes) hash.update(chunk);
  }
  return hashes.map((hash) => hash.digest('hex'));
}

/** The outcome of hashing a whole file. */
export interface DigestResult {
  /** The algorithm used. */
  readonly algorithm: DigestAlgorithm;
  /** The digest of the bytes, lower-case hex. */
  readonly hex: string;
  /** The digest that was expected, if any. */
  readonly expected?: string;
  /** True when an expected digest was given and matched. */
  readonly verified: boolean;
}

/**
 * Hashes bytes that must arrive strictly in order, and knows how many it
 * has seen, so a caller can feed it from wherever it left off.
 *
 * @example
 * ```ts
 * const d = new InOrderDigest('sha256');
 * d.update(new TextEncoder().encode('abc'));
 * d.finish(expected) // DigestResult, or throws DigestMismatchError
 * new InOrderDigest('git-sha1', 3) // git's blob id needs the size first
 * ```
 */
export class InOrderDigest {
  /** The algorithm. */
  readonly algorithm: DigestAlgorithm;
  readonly #hash: Hash;
  #bytes = 0;
  #hex: string | undefined;

  /** `contentLength` is needed by `git-sha1` only (see {@link createDigestHash}). */
  constructor(algorithm: DigestAlgorithm = defaultDigestAlgorithm, contentLength?: number) {
    if (!isDigestAlgorithm(algorithm)) {
      throw new InvalidArgumentError(
        `digest algorithm must be one of ${Object.keys(HEX_LENGTH).join(', ')}, got ${String(algorithm)} (${typeof algorithm})`,
      );
    }
    this.algorithm = algorithm;
    this.#hash = createDigestHash(algorithm, contentLength);
  }

  /** Bytes hashed so far: the file offset the next `update` must start at. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Adds the next bytes of the file. */
  update(chunk: Uint8Array): void {
    if (this.#hex !== undefined) throw new InvalidArgumentError('InOrderDigest.update called after finish');
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * Ends hashing and compares with `expected` (if given; its algorithm must
   * be this one). Returns the result, or throws a {@link DigestMismatchError}.
   * May be called again: it returns or throws the same.
   */
  finish(expected?: ExpectedDigest): DigestResult {
    this.#hex ??= this.#hash.digest('hex');
    return checkDigest(this.algorithm, this.#hex, expected);
  }
}

/**
 * Compares a computed digest with the expected one. Returns the
 * {@link DigestResult}, or throws a {@link DigestMismatchError} when they
 * differ. With no `expected`, returns an unverified result.
 */
export function checkDigest(algorithm: DigestAlgorithm, hex: string, expected?: ExpectedDigest): DigestResult {
  if (expected === undefined) return Object.freeze({ algorithm, hex, verified: false });
  const want = normalizeExpectedDigest(expected);
  if (want.algorithm !== algorithm) {
    throw new InvalidArgumentError(`expected a ${want.algorithm} digest but hashed with ${algorithm}`);
  }
  if (want.hex !== hex.toLowerCase()) throw new DigestMismatchError(algorithm, want.hex, hex);
  return Object.freeze({ algorithm, hex, expected: want.hex, verified: true });
}
