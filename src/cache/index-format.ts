/**
 * The index file's format: JSON a person can read with `jq`, with a format
 * marker, a version and a SHA-256 checksum, so that a torn, edited, foreign
 * or newer file is recognised and refused with a typed error instead of
 * being trusted. The format is documented field by field in
 * `docs/index-format.md`.
 *
 * This module only turns bytes into checked values and back; it does no I/O.
 */
import { createHash } from 'node:crypto';
import { IndexError, InvalidArgumentError } from '../errors.js';
import { validateSizes } from '../ranges/byte-range.js';
import { ByteRanges } from '../ranges/byte-ranges.js';
import { isBootId } from './boot-id.js';
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest, type MirrorIdentity, type RemoteIdentity } from './types.js';

/** The value of the index's `format` field: "this JSON is a blockfetch index". */
export const INDEX_FORMAT = 'blockfetch-index';

/**
 * The newest version of the index format this code reads and writes. It
 * writes the LOWEST version that can hold what it records (see
 * {@link indexVersionFor}): version 1 unless the remote's digests include
 * a `git-sha1`, which only version 2 may hold. So an index a blockfetch of
 * version 1 can read is still written as version 1, and one it could not
 * check (an algorithm it does not know) carries a version it refuses with
 * `BLOCKFETCH_INDEX_VERSION` ("upgrade blockfetch") instead of calling it
 * corrupt, or, worse, ignoring a digest it does not know.
 */
export const INDEX_VERSION = 2;

/**
 * Digest algorithms each format version may record. Version 2 added
 * `git-sha1` (git's blob id, for Hugging Face's small files).
 */
const DIGEST_ALGORITHMS_BY_VERSION: Readonly<Record<number, readonly DigestAlgorithm[]>> = Object.freeze({
  1: Object.freeze(['sha256', 'sha512', 'sha1', 'md5'] as const),
  2: Object.freeze(['sha256', 'sha512', 'sha1', 'md5', 'git-sha1'] as const),
});

/**
 * The format version an index recording `remote` is written with: the
 * lowest that can hold every digest in it (1, or 2 for a `git-sha1`).
 *
 * @example
 * ```ts
 * indexVersionFor({ url, size: 3, digest: { algorithm: 'sha256', hex } })   // 1
 * indexVersionFor({ url, size: 3, digest: { algorithm: 'git-sha1', hex } }) // 2
 * ```
 */
export function indexVersionFor(remote: RemoteIdentity | undefined): number {
  const digests = remote === undefined ? [] : [remote.digest, ...(remote.extraDigests ?? [])];
  return digests.some((d) => d?.algorithm === 'git-sha1') ? 2 : 1;
}

/**
 * The largest index file blockfetch will read: the worst case of the format
 * (2^32 - 1 blocks with every other one set: 65536 roaring bitset containers
 * of 8 KiB, about 537 MB, about 716 MB in base64) with room to spare. A
 * larger file is not an index (a data file given as the index, say) and is
 * refused as `BLOCKFETCH_INDEX_FOREIGN` without being read.
 */
export const MAX_INDEX_BYTES = 768 * 1024 * 1024;

/**
 * The deepest nesting of arrays and objects an index may have. The format
 * itself goes four levels deep (the index, `remote`, `remote.extraDigests`,
 * each of its digests); a
 * deeper value is damage or forgery, and checking the depth before anything
 * walks the parsed value keeps a value nested a million levels deep (checksum
 * resealed or not) from overflowing the stack of the recursive canonical
 * writer: it is a corrupt index, not a crash.
 */
const MAX_INDEX_DEPTH = 32;

/** Everything an index file records, decoded and checked. */
export interface IndexContents {
  /** The size of the remote file and of the data file, in bytes. */
  readonly contentLength: number;
  /** The block size, in bytes. */
  readonly blockSize: number;
  /** `ceil(contentLength / blockSize)`. */
  readonly numBlocks: number;
  /** Blocks marked cached in `bitmap`. */
  readonly cachedBlocks: number;
  /** Bytes in those blocks (the last block may be short). */
  readonly cachedBytes: number;
  /** The remote revision the bytes belong to; undefined until a reader has looked. */
  readonly remote: RemoteIdentity | undefined;
  /** The cached blocks: a roaring bitmap in its portable serialization. */
  readonly bitmap: Uint8Array;
  /** When the index was written, ISO 8601 (for people; not used by the code). */
  readonly updatedAt: string;
  /**
   * Every block whose bytes were written (the write returned) when the index
   * was saved, fsynced or not, and the boot they were written in: a kill -9
   * keeps them (they are in the page cache), a reboot may not. Trusted only
   * on the same boot (`docs/index-format.md`). Absent when every written
   * block was already fsynced, or the boot cannot be told.
   */
  readonly written?: WrittenThisBoot;
}

/** The `written` field of an index: see {@link IndexContents.written}. */
export interface WrittenThisBoot {
  /** The kernel's boot id when the blocks were written (`/proc/sys/kernel/random/boot_id`). */
  readonly bootId: string;
  /** Blocks set in `bitmap`: at least the index's own `cachedBlocks`. */
  readonly cachedBlocks: number;
  /** Bytes in those blocks. */
  readonly cachedBytes: number;
  /** Every written block, the fsynced ones included, in the same encoding as the index's `bitmap`. */
  readonly bitmap: Uint8Array;
}

const HINTS = {
  corrupt:
    'the data file was not changed; check that this is the right index path, then restore the index from a backup or start the download over (option `restart`) to fetch everything again',
  foreign: 'this file was not written by blockfetch: check the index path; nothing was changed',
} as const;

/**
 * Serializes `contents` as the index file's bytes: pretty-printed JSON
 * ending in a newline, with the checksum computed over the canonical form of
 * every other field (see {@link canonicalJson}).
 *
 * @example
 * ```ts
 * const bytes = encodeIndex({ contentLength: 10, blockSize: 4, numBlocks: 3, cachedBlocks: 0,
 *   cachedBytes: 0, remote: undefined, bitmap: ranges.serialize(), updatedAt: new Date().toISOString() });
 * ```
 */
export function encodeIndex(contents: IndexContents): Uint8Array {
  const body: Record<string, unknown> = {
    format: INDEX_FORMAT,
    version: indexVersionFor(contents.remote),
    contentLength: contents.contentLength,
    blockSize: contents.blockSize,
    numBlocks: contents.numBlocks,
    cachedBlocks: contents.cachedBlocks,
    cachedBytes: contents.cachedBytes,
    remote: contents.remote === undefined ? null : identityToJson(contents.remote),
    updatedAt: contents.updatedAt,
    bitmap: base64Of(contents.bitmap),
  };
  if (contents.written !== undefined) {
    body['written'] = {
      bootId: contents.written.bootId,
      cachedBlocks: contents.written.cachedBlocks,
      cachedBytes: contents.written.cachedBytes,
      bitmap: base64Of(contents.written.bitmap),
    };
  }
  body['checksum'] = checksumOf(body);
  // Buffer.from is several times faster than TextEncoder for megabytes of ASCII.
  return Buffer.from(`${JSON.stringify(body, null, 2)}\n`, 'utf8');
}

function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Parses and checks an index file's bytes. `path` is only used in messages.
 *
 * Throws an {@link IndexError}: `BLOCKFETCH_INDEX_CORRUPT` for an empty,
 * truncated or damaged file (bad JSON, bad checksum, a field of the wrong
 * type or value), `BLOCKFETCH_INDEX_FOREIGN` for JSON that is not a
 * blockfetch index, `BLOCKFETCH_INDEX_VERSION` for a newer format version.
 * It never throws anything else for bad input.
 */
export function decodeIndex(bytes: Uint8Array, path: string): IndexContents {
  const corrupt = (what: string): IndexError =>
    new IndexError('BLOCKFETCH_INDEX_CORRUPT', path, `index file is corrupt: ${what}`, { hint: HINTS.corrupt });

  if (bytes.length === 0) throw corrupt('it is empty (truncated)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw corrupt('it is not UTF-8 text');
  }
  if (nestingExceeds(text, MAX_INDEX_DEPTH)) {
    throw corrupt(`it nests arrays or objects more than ${MAX_INDEX_DEPTH} levels deep, which no index does`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corrupt(`it is not valid JSON (${err instanceof Error ? err.message : String(err)}); it may be truncated`);
  }
  if (!isPlainObject(parsed) || parsed['format'] !== INDEX_FORMAT) {
    throw new IndexError(
      'BLOCKFETCH_INDEX_FOREIGN',
      path,
      `not a blockfetch index: the JSON has no "format": "${INDEX_FORMAT}" field`,
      { hint: HINTS.foreign },
    );
  }

  // The version decides how the rest is read, the checksum included, so it
  // is checked before the checksum.
  const version = parsed['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw corrupt(`"version" must be a whole number >= 1, got ${JSON.stringify(version) ?? 'nothing'}`);
  }
  if (version > INDEX_VERSION) {
    throw new IndexError(
      'BLOCKFETCH_INDEX_VERSION',
      path,
      `index format version ${version} is newer than this blockfetch reads (${INDEX_VERSION})`,
      { hint: 'upgrade blockfetch to resume this download; nothing was changed' },
    );
  }

  const { checksum, ...rest } = parsed;
  if (typeof checksum !== 'string') throw corrupt('the "checksum" field is missing');
  const expected = checksumOf(rest);
  if (checksum !== expected) {
    throw corrupt(`checksum mismatch (recorded ${checksum}, content hashes to ${expected}): the file was edited or damaged`);
  }

  const contentLength = wholeNumber(rest, 'contentLength', corrupt);
  const blockSize = wholeNumber(rest, 'blockSize', corrupt);
  try {
    validateSizes(contentLength, blockSize);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw corrupt(err.message);
    throw err;
  }
  const numBlocks = wholeNumber(rest, 'numBlocks', corrupt);
  if (numBlocks !== Math.ceil(contentLength / blockSize)) {
    throw corrupt(`"numBlocks" is ${numBlocks} but ${contentLength} bytes in blocks of ${blockSize} make ${Math.ceil(contentLength / blockSize)}`);
  }
  const cachedBlocks = wholeNumber(rest, 'cachedBlocks', corrupt);
  const cachedBytes = wholeNumber(rest, 'cachedBytes', corrupt);
  if (cachedBlocks > numBlocks || cachedBytes > contentLength) {
    throw corrupt(`"cachedBlocks" ${cachedBlocks} / "cachedBytes" ${cachedBytes} exceed the file's ${numBlocks} blocks / ${contentLength} bytes`);
  }
  const updatedAt = rest['updatedAt'];
  if (typeof updatedAt !== 'string') throw corrupt('"updatedAt" must be a string');
  const bitmap = base64Field(rest, 'bitmap', '"bitmap"', corrupt);
  const remote = identityFromJson(rest['remote'], corrupt, DIGEST_ALGORITHMS_BY_VERSION[version] ?? DIGEST_ALGORITHMS);
  const written = writtenFromJson(rest['written'], { numBlocks, contentLength, cachedBlocks, cachedBytes }, corrupt);
  return {
    contentLength,
    blockSize,
    numBlocks,
    cachedBlocks,
    cachedBytes,
    remote,
    bitmap,
    updatedAt,
    ...(written === undefined ? {} : { written }),
  };
}

function base64Field(obj: Record<string, unknown>, key: string, name: string, corrupt: (what: string) => IndexError): Uint8Array {
  const text = obj[key];
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw corrupt(`${name} must be a base64 string`);
  }
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function writtenFromJson(
  value: unknown,
  limits: { numBlocks: number; contentLength: number; cachedBlocks: number; cachedBytes: number },
  corrupt: (what: string) => IndexError,
): WrittenThisBoot | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw corrupt('"written" must be an object');
  const { bootId } = value;
  if (!isBootId(bootId)) throw corrupt('"written.bootId" must be 1 to 64 letters, digits or "-"');
  const cachedBlocks = wholeNumber(value, 'cachedBlocks', (what) => corrupt(`"written": ${what}`));
  const cachedBytes = wholeNumber(value, 'cachedBytes', (what) => corrupt(`"written": ${what}`));
  if (cachedBlocks > limits.numBlocks || cachedBytes > limits.contentLength || cachedBlocks < limits.cachedBlocks || cachedBytes < limits.cachedBytes) {
    throw corrupt(
      `"written" claims ${cachedBlocks} blocks / ${cachedBytes} bytes: it must hold at least the ${limits.cachedBlocks} / ${limits.cachedBytes} cached and at most the file's ${limits.numBlocks} / ${limits.contentLength}`,
    );
  }
  return { bootId, cachedBlocks, cachedBytes, bitmap: base64Field(value, 'bitmap', '"written.bitmap"', corrupt) };
}

/**
 * True when the JSON `text` opens more than `max` arrays or objects inside
 * one another. Strings are jumped over with `indexOf` (a bracket inside one
 * does not count), so the multi-megabyte base64 bitmap costs one search, not
 * a loop per character. Malformed text is left to `JSON.parse` to name.
 */
function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let from = i + 1;
      for (;;) {
        const quote = text.indexOf('"', from);
        if (quote < 0) return false;
        let backslashes = 0;
        while (text.charCodeAt(quote - 1 - backslashes) === 0x5c /* \ */) backslashes++;
        if (backslashes % 2 === 0) {
          i = quote;
          break;
        }
        from = quote + 1;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}

/**
 * The canonical serialization the checksum is computed over: JSON with no
 * whitespace and the keys of every object in sorted order. It depends only
 * on the values, not on how a writer ordered or indented them, so a reader
 * can recompute it from the parsed file.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  writeCanonical(value, (part) => parts.push(part));
  return parts.join('');
}

/**
 * Emits the canonical JSON of `value` piece by piece, so the checksum of a
 * multi-megabyte bitmap is hashed without building the whole string again.
 */
function writeCanonical(value: unknown, out: (part: string) => void): void {
  if (Array.isArray(value)) {
    out('[');
    value.forEach((item, i) => {
      if (i > 0) out(',');
      writeCanonical(item, out);
    });
    out(']');
  } else if (isPlainObject(value)) {
    out('{');
    Object.keys(value)
      .sort()
      .forEach((key, i) => {
        out(`${i > 0 ? ',' : ''}${JSON.stringify(key)}:`);
        writeCanonical(value[key], out);
      });
    out('}');
  } else {
    out(JSON.stringify(value) ?? 'null');
  }
}

/**
 * Characters of canonical JSON joined before one `hash.update`: each update
 * is a call into OpenSSL, and an index of a few hundred blocks is some fifty
 * small parts (an update per part made the checksum most of a 90 us save).
 */
const CHECKSUM_BATCH_CHARS = 64 * 1024;

/** `sha256:` and the hex SHA-256 of the canonical JSON of `body` (which must not contain `checksum`). */
function checksumOf(body: Record<string, unknown>): string {
  const hash = createHash('sha256');
  let joined = '';
  writeCanonical(body, (part) => {
    if (joined.length + part.length <= CHECKSUM_BATCH_CHARS) {
      joined += part;
      return;
    }
    if (joined !== '') hash.update(joined);
    joined = '';
    // A large part (a multi-megabyte bitmap) is hashed as it is, not copied.
    if (part.length > CHECKSUM_BATCH_CHARS) hash.update(part);
    else joined = part;
  });
  if (joined !== '') hash.update(joined);
  return `sha256:${hash.digest('hex')}`;
}

function identityToJson(identity: RemoteIdentity): Record<string, unknown> {
  const out: Record<string, unknown> = { url: identity.url, size: identity.size };
  if (identity.etag !== undefined) out['etag'] = identity.etag;
  if (identity.lastModified !== undefined) out['lastModified'] = identity.lastModified;
  if (identity.digest !== undefined) out['digest'] = { algorithm: identity.digest.algorithm, hex: identity.digest.hex };
  if (identity.extraDigests !== undefined && identity.extraDigests.length > 0) {
    out['extraDigests'] = identity.extraDigests.map((d) => ({ algorithm: d.algorithm, hex: d.hex }));
  }
  if (identity.mirrors !== undefined && identity.mirrors.length > 0) {
    out['mirrors'] = identity.mirrors.map((m) => ({
      url: m.url,
      ...(m.etag === undefined ? {} : { etag: m.etag }),
      ...(m.lastModified === undefined ? {} : { lastModified: m.lastModified }),
    }));
  }
  return out;
}

/** Every algorithm the newest format version may record. */
const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = DIGEST_ALGORITHMS_BY_VERSION[INDEX_VERSION] ?? [];

/**
 * True when `digest` can be recorded in an index: a known algorithm and
 * lower-case hex of exactly that algorithm's length (DIGEST_HEX_LENGTH).
 * The reader calls a digest that is not one corrupt, so the writers check
 * with this first: an index blockfetch wrote is always one it can read.
 *
 * @example
 * ```ts
 * isIndexDigest({ algorithm: 'sha256', hex: 'ab'.repeat(32) }) // true
 * isIndexDigest({ algorithm: 'sha256', hex: 'abc' })           // false
 * ```
 */
export function isIndexDigest(digest: unknown, algorithms: readonly DigestAlgorithm[] = DIGEST_ALGORITHMS): digest is ExpectedDigest {
  if (!isPlainObject(digest)) return false;
  const { algorithm, hex } = digest;
  return (
    algorithms.includes(algorithm as DigestAlgorithm) &&
    typeof hex === 'string' &&
    hex.length === DIGEST_HEX_LENGTH[algorithm as DigestAlgorithm] &&
    /^[0-9a-f]+$/.test(hex)
  );
}

/**
 * Throws an {@link InvalidArgumentError} naming `where` unless `identity`'s
 * digest (if any) passes {@link isIndexDigest}: for the writers of an index.
 *
 * @example
 * ```ts
 * checkIdentityDigest('setRemoteIdentity', { url, size, digest: { algorithm: 'md5', hex: '00' } });
 * // throws: setRemoteIdentity identity.digest must be ... md5 has 32 hex digits, got "00" (2 digits)
 * ```
 */
export function checkIdentityDigest(where: string, identity: RemoteIdentity): void {
  const lengths = DIGEST_ALGORITHMS.map((a) => `${a}: ${DIGEST_HEX_LENGTH[a]}`).join(', ');
  const { digest, extraDigests = [] } = identity;
  if (digest !== undefined && !isIndexDigest(digest)) {
    throw new InvalidArgumentError(
      `${where} identity.digest must be a known algorithm with lower-case hex of its length (${lengths}), got ${describeDigest(digest)}`,
    );
  }
  const problem = extraDigestsProblem(digest, extraDigests);
  if (problem !== undefined) throw new InvalidArgumentError(`${where} identity.extraDigests ${problem}`);
}

/**
 * Why `extra` cannot sit beside `digest` in an index, or undefined: every
 * entry an index digest, and no two (`digest` included) of one algorithm.
 */
function extraDigestsProblem(
  digest: ExpectedDigest | undefined,
  extra: unknown,
  algorithms: readonly DigestAlgorithm[] = DIGEST_ALGORITHMS,
): string | undefined {
  if (!Array.isArray(extra)) return 'must be an array';
  const seen = new Set<string>(digest === undefined ? [] : [digest.algorithm]);
  for (const entry of extra as unknown[]) {
    if (!isIndexDigest(entry, algorithms)) return `must hold { "algorithm": one of ${algorithms.join('/')}, "hex": lower-case hex of its length }, got ${describeDigest(entry)}`;
    if (seen.has(entry.algorithm)) return `must name each algorithm once (with "digest"), got ${entry.algorithm} twice`;
    seen.add(entry.algorithm);
  }
  return undefined;
}

function describeDigest(digest: unknown): string {
  if (!isPlainObject(digest)) return String(digest);
  const hex = digest['hex'];
  return `algorithm ${JSON.stringify(digest['algorithm'])}, hex of ${typeof hex === 'string' ? `${hex.length} characters` : typeof hex}`;
}

/** `algorithms`: those the index's format version may record (a version-1 index never holds a git-sha1). */
function identityFromJson(
  value: unknown,
  corrupt: (what: string) => IndexError,
  algorithms: readonly DigestAlgorithm[],
): RemoteIdentity | undefined {
  if (value === null || value === undefined) return undefined;
  if (!isPlainObject(value)) throw corrupt('"remote" must be an object or null');
  const { url, size, etag, lastModified, digest, extraDigests, mirrors } = value;
  if (typeof url !== 'string') throw corrupt('"remote.url" must be a string');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw corrupt('"remote.size" must be a whole number >= 0');
  if (etag !== undefined && typeof etag !== 'string') throw corrupt('"remote.etag" must be a string');
  if (lastModified !== undefined && typeof lastModified !== 'string') throw corrupt('"remote.lastModified" must be a string');
  let parsedDigest: ExpectedDigest | undefined;
  if (digest !== undefined) {
    if (!isIndexDigest(digest, algorithms)) {
      throw corrupt(`"remote.digest" must be { "algorithm": one of ${algorithms.join('/')}, "hex": lower-case hex of its length }`);
    }
    parsedDigest = { algorithm: digest.algorithm, hex: digest.hex };
  }
  let parsedExtra: ExpectedDigest[] | undefined;
  if (extraDigests !== undefined) {
    const problem = extraDigestsProblem(parsedDigest, extraDigests, algorithms);
    if (problem !== undefined) throw corrupt(`"remote.extraDigests" ${problem}`);
    parsedExtra = (extraDigests as ExpectedDigest[]).map((d) => ({ algorithm: d.algorithm, hex: d.hex }));
  }
  const parsedMirrors = mirrors === undefined ? undefined : mirrorsFromJson(mirrors, corrupt);
  return {
    url,
    size,
    ...(etag === undefined ? {} : { etag }),
    ...(lastModified === undefined ? {} : { lastModified }),
    ...(parsedDigest === undefined ? {} : { digest: parsedDigest }),
    ...(parsedExtra === undefined ? {} : { extraDigests: parsedExtra }),
    ...(parsedMirrors === undefined ? {} : { mirrors: parsedMirrors }),
  };
}

/** `remote.mirrors`: a non-empty array of `{ url, etag?, lastModified? }`. */
function mirrorsFromJson(value: unknown, corrupt: (what: string) => IndexError): MirrorIdentity[] {
  if (!Array.isArray(value) || value.length === 0) throw corrupt('"remote.mirrors" must be a non-empty array');
  return (value as unknown[]).map((entry) => {
    if (!isPlainObject(entry)) throw corrupt('"remote.mirrors" must hold objects');
    const { url, etag, lastModified } = entry;
    if (typeof url !== 'string') throw corrupt('"remote.mirrors[].url" must be a string');
    if (etag !== undefined && typeof etag !== 'string') throw corrupt('"remote.mirrors[].etag" must be a string');
    if (lastModified !== undefined && typeof lastModified !== 'string') throw corrupt('"remote.mirrors[].lastModified" must be a string');
    return { url, ...(etag === undefined ? {} : { etag }), ...(lastModified === undefined ? {} : { lastModified }) };
  });
}

function wholeNumber(obj: Record<string, unknown>, key: string, corrupt: (what: string) => IndexError): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw corrupt(`"${key}" must be a whole number >= 0, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What an index records for `ranges`: the inverse of {@link rangesFromIndex}.
 * Serializes the bitmap now, so the result is a snapshot.
 *
 * @example
 * ```ts
 * await index.save(indexFromRanges(new ByteRanges(size, blockSize), identity)); // a new, empty cache
 * ```
 */
export function indexFromRanges(
  ranges: ByteRanges,
  remote: RemoteIdentity | undefined,
  updatedAt: Date = new Date(),
): IndexContents {
  return {
    contentLength: ranges.contentLength,
    blockSize: ranges.blockSize,
    numBlocks: ranges.numBlocks,
    cachedBlocks: ranges.setCount,
    cachedBytes: ranges.setBytes,
    remote,
    bitmap: ranges.serialize(),
    updatedAt: updatedAt.toISOString(),
  };
}

/**
 * The blocks a decoded index records as written on boot `bootId` (its
 * `written` field) as {@link ByteRanges}, checked like the main bitmap; or
 * undefined when it has none, or they were written on another boot (then
 * they may have been lost and are not trusted).
 *
 * @example
 * ```ts
 * const done = rangesFromIndex(contents, path);
 * const written = writtenRangesFromIndex(contents, path, currentBootId());
 * if (written !== undefined) done.addAll(written);
 * ```
 */
export function writtenRangesFromIndex(contents: IndexContents, path: string, bootId: string | null): ByteRanges | undefined {
  const written = contents.written;
  if (written === undefined || written.bootId !== bootId) return undefined;
  return bitmapOf(written.bitmap, written.cachedBlocks, written.cachedBytes, contents, path, 'written.');
}

/**
 * The bitmap of a decoded index as {@link ByteRanges}, checked against the
 * index's own counts. A bitmap that is not roaring's portable format, sets a
 * block past the end of the file, or disagrees with `cachedBlocks` /
 * `cachedBytes` gives `BLOCKFETCH_INDEX_CORRUPT`.
 */
export function rangesFromIndex(contents: IndexContents, path: string): ByteRanges {
  return bitmapOf(contents.bitmap, contents.cachedBlocks, contents.cachedBytes, contents, path, '');
}

function bitmapOf(
  bytes: Uint8Array,
  blocks: number,
  setBytes: number,
  sizes: { contentLength: number; blockSize: number },
  path: string,
  /** '' for the index's own fields, 'written.' for those of `written`. */
  prefix: string,
): ByteRanges {
  const corrupt = (what: string, cause?: unknown): IndexError =>
    new IndexError('BLOCKFETCH_INDEX_CORRUPT', path, `index file is corrupt: ${what}`, {
      hint: HINTS.corrupt,
      ...(cause === undefined ? {} : { cause }),
    });
  let ranges: ByteRanges;
  try {
    ranges = ByteRanges.deserialize(bytes, sizes.contentLength, sizes.blockSize);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw corrupt(`"${prefix}bitmap": ${err.message}`, err);
    throw err;
  }
  if (ranges.setCount !== blocks || ranges.setBytes !== setBytes) {
    throw corrupt(
      `the ${prefix}bitmap holds ${ranges.setCount} blocks / ${ranges.setBytes} bytes but "${prefix}cachedBlocks" / "${prefix}cachedBytes" say ${blocks} / ${setBytes}`,
    );
  }
  return ranges;
}
