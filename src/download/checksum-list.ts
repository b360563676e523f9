/**
 * A publisher's checksum list (`SHA256SUMS`, `SHA512SUMS`, `MD5SUMS`,
 * Fedora's `CHECKSUM`), parsed, and the lookup of one file's digests in it.
 *
 * Formats read, line by line (each may be mixed with the others):
 * - GNU (`sha256sum`, `sha512sum`, `sha1sum`, `md5sum`): `HEX  NAME` (text
 *   mode) or `HEX *NAME` (binary mode), and `HEX NAME` (one space, as
 *   `md5 -r` writes); the algorithm is told by the digest's length: 32 hex
 *   digits md5, 40 sha1, 64 sha256, 128 sha512.
 * - BSD tags (`sha256sum --tag`, `shasum --tag`, `openssl dgst`):
 *   `SHA256 (NAME) = HEX`, also SHA512, SHA1 and MD5 (`SHA256(NAME)= HEX`
 *   too).
 * - GNU's escaped form of either: a line that starts with `\` has a NAME in
 *   which `\\` is a backslash, `\n` a newline and `\r` a carriage return.
 * Blank lines and lines starting with `#` are skipped, as are the armour
 * lines of a PGP clear-signed list (the signature is NOT checked here).
 * CRLF line ends and a UTF-8 byte order mark are accepted. Anything else is
 * a malformed line: an error naming the source and the line number
 * (`SHA256SUMS:3: ...`), never a line silently skipped.
 *
 * Pure functions: no I/O (reading the list from a file or URL is the
 * caller's), no option names in messages.
 */
import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';
import { InvalidArgumentError } from '../errors.js';

/** One line of a checksum list: a file name and its digest. */
export interface ChecksumEntry {
  /** The file name as the list gives it (unescaped), path included if it has one. */
  readonly name: string;
  /** The digest, lower-case hex. */
  readonly digest: ExpectedDigest;
  /** The line it came from, counting from 1. */
  readonly line: number;
}

/** A parsed checksum list; look a file up with {@link digestsFor}. */
export interface ChecksumList {
  /** What the list was read from, for messages (`SHA256SUMS`, a URL without its secrets). */
  readonly source: string;
  /** Every entry, in the order of the list. */
  readonly entries: readonly ChecksumEntry[];
}

/** BSD tag names, upper case, to node:crypto names. */
const TAG_ALGORITHMS: Readonly<Record<string, DigestAlgorithm>> = Object.freeze({
  SHA256: 'sha256',
  SHA512: 'sha512',
  SHA1: 'sha1',
  MD5: 'md5',
});

/** Stronger first: the order {@link digestsFor} returns a file's digests in. */
const STRENGTH: readonly DigestAlgorithm[] = ['sha512', 'sha256', 'sha1', 'md5'];

/**
 * The algorithm of an untagged (GNU) line, by the digest's number of hex
 * digits: only the list tools' algorithms, so that another 40-digit digest
 * blockfetch knows (a Git blob's `git-sha1`) never takes sha1's place.
 */
const ALGORITHM_BY_HEX_LENGTH: ReadonlyMap<number, DigestAlgorithm> = new Map(STRENGTH.map((algorithm) => [DIGEST_HEX_LENGTH[algorithm], algorithm]));

/** The most of a malformed line quoted in a message. */
const QUOTE_CHARS = 80;

const TAGGED = /^([A-Za-z][A-Za-z0-9-]*) ?\((.*)\) ?= ?([0-9A-Za-z]+)$/;
const GNU_WITH_MARKER = /^([0-9A-Fa-f]+) ([ *])(.+)$/;
/** `md5 -r`'s form; as in coreutils, its name cannot start with a space or `*` (that is the two-column form). */
const GNU_ONE_SPACE = /^([0-9A-Fa-f]+)[ \t]([^ *].*)$/;

/**
 * Parses the text of a checksum list (see the module comment for the
 * formats). `sourceName` is what messages call it: a malformed line is an
 * {@link InvalidArgumentError} `SHA256SUMS:3: ...`. Two lines may name the
 * same file (with different algorithms, or even conflicting digests): that
 * only matters when the file is looked up ({@link digestsFor}).
 *
 * @example
 * ```ts
 * const list = parseChecksumList(await readFile('SHA256SUMS', 'utf8'), 'SHA256SUMS');
 * digestsFor(list, 'debian-12.iso') // [{ algorithm: 'sha256', hex: '…' }]
 * ```
 */
export function parseChecksumList(text: string, sourceName: string): ChecksumList {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const entries: ChecksumEntry[] = [];
  let armour: 'none' | 'header' | 'signature' = 'none';
  for (const [i, raw] of lines.entries()) {
    const number = i + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    // A clear-signed list: skip the armour header (up to its blank line)
    // and the signature block; the signed text between is read as usual.
    if (armour === 'header') {
      if (line.trim() === '') armour = 'none';
      continue;
    }
    if (armour === 'signature') {
      if (line.startsWith('-----END PGP SIGNATURE-----')) armour = 'none';
      continue;
    }
    if (line.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) {
      armour = 'header';
      continue;
    }
    if (line.startsWith('-----BEGIN PGP SIGNATURE-----')) {
      armour = 'signature';
      continue;
    }
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    entries.push(parseLine(trimmed, sourceName, number));
  }
  return Object.freeze({ source: sourceName, entries: Object.freeze(entries) });
}

/** One non-blank, non-comment line. */
function parseLine(text: string, source: string, number: number): ChecksumEntry {
  const fail = (what: string): InvalidArgumentError =>
    new InvalidArgumentError(`${source}:${number}: ${what}`, {
      hint: 'a checksum list has lines "HEX  NAME" (as sha256sum writes them) or "SHA256 (NAME) = HEX" (BSD tags); # starts a comment',
    });
  const escaped = text.startsWith('\\');
  const body = escaped ? text.slice(1) : text;
  const unescape = (name: string): string => (escaped ? unescapeName(name, () => fail(`bad escape in the escaped name ${quote(name)}`)) : name);

  const tagged = TAGGED.exec(body);
  if (tagged !== null) {
    const tag = (tagged[1] ?? '').toUpperCase();
    const algorithm = TAG_ALGORITHMS[tag];
    if (algorithm === undefined) {
      throw fail(`the algorithm ${tagged[1] ?? ''} is not one blockfetch can check (${Object.keys(TAG_ALGORITHMS).join(', ')})`);
    }
    const hex = (tagged[3] ?? '').toLowerCase();
    if (!isHex(hex, DIGEST_HEX_LENGTH[algorithm])) {
      throw fail(`a ${tag} digest is ${DIGEST_HEX_LENGTH[algorithm]} hex digits, got ${quote(tagged[3] ?? '')}`);
    }
    return entry(unescape(tagged[2] ?? ''), algorithm, hex, number, fail);
  }

  const gnu = GNU_WITH_MARKER.exec(body) ?? GNU_ONE_SPACE.exec(body);
  if (gnu === null) throw fail(`not a checksum line: ${quote(text)}`);
  const digits = gnu[1] ?? '';
  const name = gnu.length === 4 ? (gnu[3] ?? '') : (gnu[2] ?? '');
  const algorithm = ALGORITHM_BY_HEX_LENGTH.get(digits.length);
  if (algorithm === undefined) {
    const lengths = STRENGTH.map((a) => `${DIGEST_HEX_LENGTH[a]} for ${a}`).join(', ');
    throw fail(`a digest of ${digits.length} hex digits is not one blockfetch can check (${lengths})`);
  }
  return entry(unescape(name), algorithm, digits.toLowerCase(), number, fail);
}

function entry(name: string, algorithm: DigestAlgorithm, hex: string, line: number, fail: (what: string) => InvalidArgumentError): ChecksumEntry {
  if (name === '') throw fail('the line names no file');
  return Object.freeze({ name, digest: Object.freeze({ algorithm, hex }), line });
}

function isHex(text: string, length: number): boolean {
  return text.length === length && /^[0-9a-f]+$/.test(text);
}

/** GNU's escapes: `\\`, `\n`, `\r`; any other backslash is a malformed name. */
function unescapeName(name: string, bad: () => Error): string {
  return name.replace(/\\(.?)/g, (_all, next: string) => {
    if (next === '\\') return '\\';
    if (next === 'n') return '\n';
    if (next === 'r') return '\r';
    throw bad();
  });
}

function quote(text: string): string {
  return JSON.stringify(text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text);
}

/** A name without leading `./` (sha256sum run as `sha256sum ./*` writes them). */
function withoutDotSlash(name: string): string {
  return name.replace(/^(?:\.\/)+/, '');
}

/** The last `/`-separated segment: the file name of a path. */
function finalName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/**
 * The digests `list` gives for the file `fileName`, strongest algorithm
 * first, one per algorithm; `[]` when the list does not name it.
 *
 * The matching rule: the entries whose name is `fileName` exactly (a
 * leading `./` on either ignored) are used if there are any, so that
 * `sub/a.iso` can tell two `a.iso` in different directories apart;
 * otherwise the entries whose final name (after the last `/`) is
 * `fileName`'s final name, so that `a.iso` finds `./images/a.iso`. Case
 * matters; nothing else is normalised.
 *
 * Throws an {@link InvalidArgumentError} when the matching entries give two
 * different digests of one algorithm (naming both lines): they cannot both
 * be right, and which one the publisher meant cannot be told.
 *
 * @example
 * ```ts
 * const list = parseChecksumList(`${sha256}  a.iso\n${sha512}  a.iso\n`, 'SUMS');
 * digestsFor(list, 'a.iso')       // [{ algorithm: 'sha512', … }, { algorithm: 'sha256', … }]
 * digestsFor(list, 'out/a.iso')   // the same: matched by its final name
 * digestsFor(list, 'b.iso')       // []
 * ```
 */
export function digestsFor(list: ChecksumList, fileName: string): ExpectedDigest[] {
  const wanted = withoutDotSlash(fileName);
  let matches = list.entries.filter((e) => withoutDotSlash(e.name) === wanted);
  if (matches.length === 0) {
    const base = finalName(wanted);
    matches = list.entries.filter((e) => finalName(e.name) === base);
  }
  const byAlgorithm = new Map<DigestAlgorithm, ChecksumEntry>();
  for (const match of matches) {
    const earlier = byAlgorithm.get(match.digest.algorithm);
    if (earlier === undefined) {
      byAlgorithm.set(match.digest.algorithm, match);
    } else if (earlier.digest.hex !== match.digest.hex) {
      throw new InvalidArgumentError(
        `${list.source}:${earlier.line} and ${list.source}:${match.line} give two different ${match.digest.algorithm} digests for ${JSON.stringify(finalName(wanted))}`,
        { hint: 'the list contradicts itself: get a correct one from the publisher, or give the digest yourself' },
      );
    }
  }
  return STRENGTH.flatMap((algorithm) => {
    const found = byAlgorithm.get(algorithm);
    return found === undefined ? [] : [found.digest];
  });
}
