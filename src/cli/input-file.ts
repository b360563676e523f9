/**
 * `-i FILE`: a list of downloads in aria2c's input-file format
 * (https://aria2.github.io/manual/en/html/aria2c.html#input-file):
 *
 * ```text
 * # a comment
 * https://a.example/model-00001.bin<TAB>https://b.example/model-00001.bin
 *   out=model/00001.bin
 *   checksum=sha-256=9f86d081884c7d65…
 * https://a.example/README.md
 *   dir=docs
 *   header=Authorization: Bearer …
 * ```
 *
 * A line that does not start with white space starts an entry: one URL, or
 * several separated by TAB characters (mirrors of the same file). The lines
 * after it that start with white space (SPACE or TAB) are its options, one
 * `name=value` per line. Lines whose first non-blank character is `#` are
 * comments; blank lines are ignored. The options read are `out`, `dir`,
 * `checksum` and `header` (repeatable); any other is refused, so a typo is
 * not silently ignored.
 *
 * The whole file is checked before anything is downloaded: a problem is an
 * {@link InvalidArgumentError} whose message starts with `FILE:LINE:`.
 * `out=` and `dir=` are relative to the set's directory (`-d`, else the
 * working directory) and may not leave it: no absolute path, no `..`.
 */
import { isAbsolute, normalize, posix } from 'node:path';

import { DIGEST_HEX_LENGTH, type ExpectedDigest } from '../cache/types.js';
import { InvalidArgumentError } from '../errors.js';
import { CHECKSUM_ALGORITHMS, hexDigest, readHeader, splitChecksum } from './option-values.js';

/** One download of an input file. */
export interface InputEntry {
  /** The line of its URL (1-based), for messages. */
  readonly line: number;
  /** Its URLs: the first, and mirrors of the same file after it (TAB-separated on the line). */
  readonly urls: readonly string[];
  /** `out=`: the file's path relative to its directory, checked not to leave it. */
  readonly out: string | undefined;
  /** `dir=`: a directory relative to the set's directory, checked not to leave it. */
  readonly dir: string | undefined;
  /** `checksum=`: the digest the file must have. */
  readonly digest: ExpectedDigest | undefined;
  /** `header=` lines, in order. */
  readonly headers: readonly (readonly [name: string, value: string])[];
}

/** The options an entry may have. */
const OPTION_NAMES = ['out', 'dir', 'checksum', 'header'] as const;
type OptionName = (typeof OPTION_NAMES)[number];

// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Parses the text of an input file; `fileName` (or `-` for stdin) starts
 * every error message. Throws on the first problem.
 *
 * @example
 * ```ts
 * parseInputFile('https://h/a.bin\n  out=x.bin\n', 'list.txt')
 * // [{ line: 1, urls: ['https://h/a.bin'], out: 'x.bin', dir: undefined, digest: undefined, headers: [] }]
 * parseInputFile('  out=x\n', 'list.txt') // throws: list.txt:1: an option line before any URL …
 * ```
 */
export function parseInputFile(text: string, fileName: string): InputEntry[] {
  const where = fileName === '-' ? '(stdin)' : fileName;
  const entries: InputEntry[] = [];
  let current: MutableEntry | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fail = (message: string, hint?: string): never => {
      throw new InvalidArgumentError(`${where}:${line}: ${message}`, hint === undefined ? {} : { hint });
    };
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (/^[ \t]/.test(raw)) {
      if (current === undefined) fail('an option line before any URL', 'an entry starts with its URL at the start of a line; its options follow, indented');
      readOption(current as MutableEntry, trimmed, fail);
      return;
    }
    if (current !== undefined) entries.push(freeze(current));
    current = { line, urls: trimmed.split('\t').map((u) => u.trim()).filter((u) => u !== '').map((u) => checkUrl(u, fail)), headers: [] };
  });
  if (current !== undefined) entries.push(freeze(current));
  return entries;
}

interface MutableEntry {
  readonly line: number;
  readonly urls: string[];
  out?: string;
  dir?: string;
  digest?: ExpectedDigest;
  readonly headers: (readonly [string, string])[];
}

type Fail = (message: string, hint?: string) => never;

function freeze(entry: MutableEntry): InputEntry {
  return { line: entry.line, urls: entry.urls, out: entry.out, dir: entry.dir, digest: entry.digest, headers: entry.headers };
}

function checkUrl(text: string, fail: Fail): string {
  // The URL parser would take "https://a/x https://b/x" as one URL with a space in its path.
  if (/\s/.test(text)) fail('a URL with white space in it', 'separate mirrors of one file with a TAB; write a space inside a URL as %20');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text is not echoed whole: it may be a signed URL, or a secret pasted on the wrong line.
    return fail(`not a URL (${text.length} characters starting ${JSON.stringify(text.slice(0, 12))})`, 'a line per file: its URL, or its mirrors separated by TAB characters; options go on the indented lines below it');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`unsupported URL scheme ${JSON.stringify(url.protocol)}`, 'blockfetch downloads http:// and https:// URLs');
  return text;
}

function readOption(entry: MutableEntry, text: string, fail: Fail): void {
  const at = text.indexOf('=');
  if (at <= 0) fail('an option line must be NAME=VALUE', `the options are ${OPTION_NAMES.map((n) => `${n}=`).join(', ')}`);
  const name = text.slice(0, at).trim();
  const value = text.slice(at + 1).trim();
  if (!(OPTION_NAMES as readonly string[]).includes(name)) {
    fail(`unknown option ${JSON.stringify(name)}`, `the options blockfetch reads in an input file are ${OPTION_NAMES.map((n) => `${n}=`).join(', ')}; remove the line`);
  }
  const option = name as OptionName;
  if (option !== 'header' && entry[option === 'checksum' ? 'digest' : option] !== undefined) fail(`${option}= given twice for one entry`, 'keep one of them');
  switch (option) {
    case 'out':
      entry.out = checkRelativePath(value, 'out', fail);
      break;
    case 'dir':
      entry.dir = checkRelativePath(value, 'dir', fail);
      break;
    case 'checksum':
      entry.digest = parseChecksum(value, fail);
      break;
    case 'header':
      entry.headers.push(parseHeader(value, fail));
      break;
  }
}

/**
 * A path for `out=` or `dir=` that stays inside the set's directory: not
 * empty, not absolute, no `..` segment, no control character. Normalized
 * (`a//b/./c` → `a/b/c`), so two spellings of one file are seen as one.
 */
function checkRelativePath(value: string, option: 'out' | 'dir', fail: Fail): string {
  if (value === '') fail(`${option}= is empty`);
  if (CONTROL.test(value)) fail(`${option}= has a control character`);
  if (isAbsolute(value) || /^[a-zA-Z]:[\\/]/.test(value)) {
    fail(`${option}=${value} is an absolute path: ${option}= must stay inside the download directory`, 'give a path relative to -d DIR (or the working directory), or pass -d on the command line');
  }
  if (value.split(/[/\\]/).includes('..')) {
    fail(`${option}=${value} goes up with "..": ${option}= must stay inside the download directory`, 'give a path below -d DIR (or the working directory)');
  }
  const normal = normalize(value).split('\\').join(posix.sep);
  if (option === 'out' && (normal.endsWith('/') || normal === '.')) fail(`out=${value} names a directory, not a file`, 'give a file name, e.g. out=model.bin (dir= sets the directory)');
  return normal.replace(/\/$/, '');
}

/** `checksum=TYPE=DIGEST`, aria2c's spelling: `sha-256=…`, `sha-512=…` (also `sha-1`, `md5`). */
function parseChecksum(value: string, fail: Fail): ExpectedDigest {
  const parts = splitChecksum(value);
  if (parts === undefined) {
    return fail(`checksum= takes TYPE=DIGEST with TYPE one of ${Object.keys(CHECKSUM_ALGORITHMS).join(', ')}`, 'for example checksum=sha-256=9f86d081884c7d65…');
  }
  const digest = hexDigest(parts.digest, parts.algorithm);
  if (digest === undefined) {
    return fail(`checksum=${parts.type}= must be ${DIGEST_HEX_LENGTH[parts.algorithm]} hexadecimal digits, got ${parts.digest.trim().toLowerCase().length} characters`);
  }
  return digest;
}

/** `header=Name: value`; the value is never echoed (it may hold a credential). */
function parseHeader(value: string, fail: Fail): readonly [string, string] {
  const { name, value: content, problem } = readHeader(value, { refuseC1: true });
  if (problem === 'shape') fail('header= must look like "Name: value"', 'e.g. header=Authorization: Bearer TOKEN');
  if (problem === 'control') fail(`header=${name} has a control character in its value`);
  if (problem === 'reserved') {
    fail(`header= cannot set ${name}: blockfetch sets it on every request`, 'Range and the If-* headers pin each request to one revision of the file');
  }
  return [name, content];
}
