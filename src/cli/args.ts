/**
 * The command line, parsed and validated into one typed {@link Command}.
 *
 * One table per command ({@link DOWNLOAD_OPTIONS}, {@link INSPECT_OPTIONS},
 * {@link VERIFY_OPTIONS}) lists every option: its names, its value, its
 * default and its line of help. The parser reads nothing else, and `--help`
 * is printed from the same rows (see `help.ts`), so the two cannot drift.
 *
 * The tokenizer is ours rather than `node:util`'s `parseArgs`: parseArgs
 * takes `-c URL` as a concurrency of "URL", refuses `--retries -1` as
 * "ambiguous", and its messages quote its own internals ("Option '-o,
 * --output <value>' argument missing"). Here every problem is an
 * {@link InvalidArgumentError} whose message names the option as a person
 * types it (`-o/--output needs a FILE`), with a hint, and a misspelt option
 * suggests the nearest real one. Nothing here touches the network or the disk.
 */
import { isAbsolute, join } from 'node:path';

import { DIGEST_HEX_LENGTH, type DigestAlgorithm, type ExpectedDigest } from '../cache/types.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_CONCURRENT_FILES, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import { InvalidArgumentError, redactUrl } from '../errors.js';
import { defaultRetryOptions } from '../download/backoff.js';
import { editDistance } from './edit-distance.js';
import { CHECKSUM_ALGORITHMS, hexDigest, readHeader, splitChecksum } from './option-values.js';
import { formatDurationOption, formatSizeOption, parseByteSize, parseRate } from './units.js';

/**
 * Defaults of the download command's options. The shared ones are the
 * library's (`src/defaults.ts`), so that `blockfetch URL` and
 * `downloadFile({ url })` download alike; `--help` prints these values.
 *
 * @example
 * ```ts
 * defaultCliOptions.concurrency // 8
 * ```
 */
export const defaultCliOptions = Object.freeze({
  /** Parallel ranged requests. @default DEFAULT_CONCURRENCY (8) */
  concurrency: DEFAULT_CONCURRENCY,
  /**
   * The unit of resumption: a kill -9 loses at most one partly received
   * block per connection; fetched up to {@link requestSize} per request.
   * See docs/cli.md, "Block size and request size".
   * @default DEFAULT_BLOCK_SIZE (2 MiB)
   */
  blockSize: DEFAULT_BLOCK_SIZE,
  /**
   * The most one request fetches: a round trip (~100 ms across the world) is
   * small next to a 16 MiB transfer. With --stdout it is also the block size,
   * since nothing is resumed there (reorder memory: 2 x 8 x 16 MiB = 256 MiB).
   * @default DEFAULT_MAX_REQUEST_BYTES (64 MiB)
   */
  requestSize: DEFAULT_MAX_REQUEST_BYTES,
  /**
   * Retries of a request that makes no progress before the run gives up
   * (the downloader's `attemptsPerBlock` is this plus one; a request that
   * received bytes before failing starts counting again).
   * @default 5
   */
  retries: 5,
  /** How long a request may wait for the next bytes before it is retried, in ms. @default DEFAULT_TIMEOUT_MS (30 s) */
  timeoutMs: DEFAULT_TIMEOUT_MS,
  /** `--speed-limit`: the lowest speed of a request, bytes/s; 0 is off. @default defaultRetryOptions.lowestSpeedBytesPerSecond (1 KiB/s) */
  speedLimitBytesPerSecond: defaultRetryOptions.lowestSpeedBytesPerSecond,
  /** `--speed-time`: how long a request may run below it, in ms. @default defaultRetryOptions.lowestSpeedTimeMs (60 s) */
  speedTimeMs: defaultRetryOptions.lowestSpeedTimeMs,
  /** `-j`: files of a set downloaded at once (aria2c's `--max-concurrent-downloads`). @default 5 */
  maxConcurrentFiles: DEFAULT_MAX_CONCURRENT_FILES,
});

/** The range of `-c/--concurrency`. */
const CONCURRENCY_LIMITS = Object.freeze({ min: 1, max: 256 });
/** The range of `--retries`. */
const RETRIES_LIMITS = Object.freeze({ min: 0, max: 1000 });
/**
 * The range of `--block-size` and `--request-size`, in bytes: at least 4 KiB
 * (below that, request overhead dominates), at most 1 GiB (a block is
 * buffered per connection when streaming).
 */
const BLOCK_SIZE_LIMITS = Object.freeze({ min: 4096, max: 2 ** 30 });

/** How progress and results are shown. */
export type OutputMode = 'auto' | 'quiet' | 'json';

/** `blockfetch <url>`: download (or resume) one file. */
export interface DownloadCommand {
  readonly kind: 'download';
  /** The URL to fetch (http or https). */
  readonly url: string;
  /** The target file; `undefined` means "name it after the server or the URL". */
  readonly output: string | undefined;
  /**
   * Stream to stdout in order: `-o -` or `--stdout` alone (nothing on
   * disk), or `-o FILE --stdout` (stream while saving: `output` is set and
   * the download stays resumable).
   */
  readonly toStdout: boolean;
  /** Requests at once (`-c`). */
  readonly concurrency: number;
  /** `-j N`: files downloaded at once when the URL names several (a set, an `hf://` repository, an `s3://` prefix). */
  readonly maxConcurrentFiles: number;
  /** The block size in bytes, or `undefined` for the default. */
  readonly blockSize: number | undefined;
  /** The most one request asks for, in bytes, or `undefined` for the default. */
  readonly requestSize: number | undefined;
  /** A rate limit in bytes per second, if any. */
  readonly rateBytesPerSecond: number | undefined;
  /** Extra request headers, in order. */
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** A digest the finished file must have. */
  readonly digest: ExpectedDigest | undefined;
  /** `--checksums`: the file or http(s) URL of a checksum list to look the file's name up in. */
  readonly checksums: string | undefined;
  /** Discard a partial download whose remote changed, and start again. */
  readonly restart: boolean;
  /** Retries of a request that makes no progress (see {@link defaultCliOptions}). */
  readonly retries: number;
  /** Per-request inactivity timeout, in ms. */
  readonly timeoutMs: number;
  /** The lowest speed of a request (`--speed-limit`), bytes/s; 0 is off. */
  readonly speedLimitBytesPerSecond: number;
  /** How long a request may run below it (`--speed-time`), in ms. */
  readonly speedTimeMs: number;
  /** Overwrite an existing target. */
  readonly force: boolean;
  /** Progress bar or lines (`auto`), nothing (`--quiet`), or JSON lines (`--json`). */
  readonly outputMode: OutputMode;
  /** Show codes, stacks and causes on failure (`--debug`). */
  readonly debug: boolean;
  /** Say more of what happens: the remote's identity, the plan, the error code on failure (`-v`). */
  readonly verbose: boolean;
  /** How TLS certificates are checked for this run. */
  readonly tls: TlsChoice;
  /** Further URLs of the same file (`--mirror`), read alongside `url`. */
  readonly mirrors: readonly string[];
  /** Offer HTTP/2 to https servers (`--http2`); HTTP/1.1 otherwise. */
  readonly http2: boolean;
  /** `--include GLOB` (hf:// only): keep only repository paths matching one of these. */
  readonly include: readonly string[];
  /** `--exclude GLOB` (hf:// only): drop repository paths matching one of these. */
  readonly exclude: readonly string[];
  /** `--hf-cache` (hf:// only): write into the standard Hugging Face cache instead of a folder. */
  readonly hfCache: boolean;
  /** `--no-sign-request`: s3:// requests go unsigned (a public bucket). */
  readonly noSignRequest: boolean;
}

/**
 * How the run checks TLS certificates: `-k/--insecure` turns checking off
 * (with a warning), `--cacert FILE` trusts the CA certificates in FILE
 * instead of the system's, as curl's `--cacert` does.
 */
export interface TlsChoice {
  /** `-k/--insecure`: accept any certificate. */
  readonly insecure: boolean;
  /** `--cacert FILE`: a PEM file of CA certificates, read when the download starts. */
  readonly caFile: string | undefined;
}

/** `blockfetch inspect <FILE|INDEX>`: what a partial download's index says. */
export interface InspectCommand {
  readonly kind: 'inspect';
  /** The target, its `.blockfetch` file or its `.blockfetch.json` index. */
  readonly path: string;
  /** Print one JSON object instead of the report for a person. */
  readonly json: boolean;
  /** Show codes, stacks and causes on failure. */
  readonly debug: boolean;
}

/** `blockfetch verify <FILE> --sha256 HEX`: check a file's digest. */
export interface VerifyCommand {
  readonly kind: 'verify';
  /** The file to hash. */
  readonly path: string;
  /** Every digest it must have. */
  readonly digests: readonly ExpectedDigest[];
  /** Print one JSON object instead of a line per digest. */
  readonly json: boolean;
  /** Show codes, stacks and causes on failure. */
  readonly debug: boolean;
}

/** `blockfetch --help` / `blockfetch help [command]`. */
export interface HelpCommand {
  readonly kind: 'help';
  readonly topic: 'download' | 'inspect' | 'verify';
}

/** `blockfetch --version`. */
export interface VersionCommand {
  readonly kind: 'version';
}

/**
 * `blockfetch URL URL... [-d DIR]` or `blockfetch -i FILE`: a set of files,
 * each saved under its own name. Every option of {@link DownloadCommand}
 * applies to each file, except those that name one destination.
 */
export interface DownloadSetCommand extends Omit<DownloadCommand, 'kind' | 'url' | 'output' | 'toStdout'> {
  readonly kind: 'download-set';
  /** The URLs given on the command line, in order (the input file's come after them). */
  readonly urls: readonly string[];
  /** `-i FILE`: the input file, `-` for stdin; read when the command runs. */
  readonly inputFile: string | undefined;
  /** `-d DIR`: where the files go (an input file's `dir=` is relative to it). */
  readonly dir: string | undefined;
}

/** Everything the command line can ask for. */
export type Command = DownloadCommand | InspectCommand | VerifyCommand | HelpCommand | VersionCommand | DownloadSetCommand;

const HELP_HINT = 'run `blockfetch --help` for usage';

/**
 * One row of an option table: what the parser accepts and what `--help`
 * prints, from the same data.
 */
export interface OptionSpec {
  /** The long name, without `--`. */
  readonly long: string;
  /** The one-letter name, without `-`. */
  readonly short?: string;
  /**
   * The placeholder of its value in help and messages (`N`, `SIZE`, `FILE`),
   * or `undefined` for a flag, which takes no value.
   */
  readonly value?: string;
  /** May be given more than once, every value kept (`-H`). */
  readonly repeatable?: boolean;
  /** The default, as one would type it, for `--help`. */
  readonly default?: string;
  /** What it does, in one line (help wraps it). */
  readonly help: string;
}

const d = defaultCliOptions;

/**
 * Every option of the download command, in the order `--help` lists them.
 * The spellings people bring from curl, wget and aria2c are rows of their
 * own (docs/cli.md lists each with its equivalents).
 *
 * @example
 * ```ts
 * DOWNLOAD_OPTIONS.find((o) => o.short === 'c')?.long // 'concurrency'
 * ```
 */
export const DOWNLOAD_OPTIONS = [
  { long: 'output', short: 'o', value: 'FILE', help: "where to save (default: the server's file name or the URL's last path segment); '-' streams to stdout; a directory saves under the server's name inside it" },
  { long: 'dir', short: 'd', value: 'DIR', help: 'save in this existing directory (with -o FILE: DIR/FILE)' },
  { long: 'stdout', help: 'stream the file in order to stdout (same as -o -); with -o FILE, stream while saving FILE (resumable)' },
  { long: 'concurrency', short: 'c', value: 'N', default: String(d.concurrency), help: 'parallel requests' },
  { long: 'block-size', value: 'SIZE', default: formatSizeOption(d.blockSize), help: 'the unit of resumption: a kill loses at most one partly received block per connection' },
  { long: 'request-size', value: 'SIZE', default: formatSizeOption(d.requestSize), help: 'the most one request fetches (left out: sized from 4MiB by measured waits); with --stdout the unit of the stream' },
  { long: 'rate', value: 'RATE', help: 'limit the transfer rate, e.g. 50MB/s (powers of 10) or 8MiB/s (powers of 2)' },
  { long: 'limit-rate', value: 'RATE', help: "the same in curl's units: 500K, 8M, 1G are powers of 1024 bytes per second" },
  { long: 'header', short: 'H', value: "'N: V'", repeatable: true, help: 'send an extra request header (repeatable)' },
  { long: 'user-agent', short: 'A', value: 'TEXT', help: 'the User-Agent header (default blockfetch/VERSION)' },
  { long: 'insecure', short: 'k', help: 'do not check TLS certificates (prints a warning; for test servers only)' },
  { long: 'cacert', value: 'FILE', help: "trust the CA certificates in this PEM file instead of the system's" },
  { long: 'sha256', value: 'HEX', help: 'the SHA-256 the file must have (checked before the final rename; a mismatch keeps the partial file)' },
  { long: 'sha512', value: 'HEX', help: 'the SHA-512 the file must have (likewise)' },
  { long: 'checksum', value: 'ALGO=HEX', help: "the same in aria2c's spelling: sha-256=HEX, sha-512=HEX, sha-1=HEX or md5=HEX" },
  {
    long: 'checksums',
    value: 'FILE|URL',
    help: "a checksum list (sha256sum, sha512sum or BSD tag format): the digests it gives for the file's name are checked before the final rename (each file's, with several URLs or -i; read once)",
  },
  { long: 'restart', help: 'if the remote changed since the partial download began, discard it and download the new revision' },
  { long: 'continue', help: 'accepted for wget and aria2c: blockfetch always resumes what is on disk' },
  { long: 'continue-at', short: 'C', value: '-', help: "accepted as curl's -C -: blockfetch always resumes what is on disk" },
  { long: 'retries', value: 'N', default: String(d.retries), help: 'retries of a request that makes no progress before giving up' },
  { long: 'timeout', value: 'DURATION', default: formatDurationOption(d.timeoutMs), help: 'give up on a silent request after this, e.g. 30s; it is retried' },
  {
    long: 'speed-limit',
    value: 'RATE',
    default: `${d.speedLimitBytesPerSecond}B/s`,
    help: 'retry a request slower than this for --speed-time, e.g. 10KiB/s; 0 turns the rule off',
  },
  { long: 'speed-time', value: 'DURATION', default: formatDurationOption(d.speedTimeMs), help: 'how long a request may stay below --speed-limit' },
  { long: 'force', short: 'f', help: 'download again and overwrite FILE if it exists' },
  { long: 'quiet', short: 'q', help: 'print nothing but errors' },
  { long: 'verbose', short: 'v', help: "also print the remote's identity, the plan, and the error code on failure" },
  { long: 'json', help: 'print one JSON object per line (progress, retries, the final status) instead of a progress bar' },
  { long: 'debug', help: 'show error codes, stacks and causes (also: NODE_DEBUG=blockfetch)' },
  { long: 'help', short: 'h', help: 'show this help' },
  { long: 'version', short: 'V', help: 'show the version' },
  { long: 'input-file', short: 'i', value: 'FILE', help: "download the URLs listed in FILE, aria2c's format (out=, dir=, checksum=, header= lines; TAB-separated URLs are mirrors of one file); '-' reads stdin" },
  {
    long: 'max-concurrent-downloads',
    short: 'j',
    value: 'N',
    default: String(d.maxConcurrentFiles),
    help: 'with several URLs, -i, an hf:// repository or an s3:// prefix: files downloaded at once; -c counts connections across all of them',
  },
  { long: 'mirror', value: 'URL', repeatable: true, help: 'another URL of the same file (repeatable); requests are spread over all of them when a digest is known or they share a strong ETag; for several files, TAB-separate mirrors on -i lines' },
  { long: 'http2', help: 'offer HTTP/2 to https servers (ALPN); without it, HTTP/1.1' },
  { long: 'include', value: 'GLOB', repeatable: true, help: 'hf:// only: download only the repository paths matching GLOB (fnmatch: *.json, onnx/*; repeatable)' },
  { long: 'exclude', value: 'GLOB', repeatable: true, help: 'hf:// only: skip the repository paths matching GLOB (repeatable)' },
  { long: 'hf-cache', help: 'hf:// only: save into the Hugging Face cache (HF_HUB_CACHE, else $HF_HOME/hub) so transformers finds the files offline' },
  { long: 'no-sign-request', help: 's3:// URLs: send requests unsigned, for a public bucket, whatever AWS credentials are set (as the AWS CLI); no effect on http(s)' },
] as const satisfies readonly OptionSpec[];

/**
 * The options of `blockfetch inspect`.
 *
 * @example
 * ```ts
 * INSPECT_OPTIONS.map((o) => o.long) // ['json', 'debug', 'help']
 * ```
 */
export const INSPECT_OPTIONS = [
  { long: 'json', help: 'print the report as one JSON object' },
  { long: 'debug', help: 'show error codes, stacks and causes' },
  { long: 'help', short: 'h', help: 'show this help' },
] as const satisfies readonly OptionSpec[];

/**
 * The options of `blockfetch verify`.
 *
 * @example
 * ```ts
 * VERIFY_OPTIONS.map((o) => o.long) // ['sha256', 'sha512', 'json', 'debug', 'help']
 * ```
 */
export const VERIFY_OPTIONS = [
  { long: 'sha256', value: 'HEX', help: `the expected SHA-256 (${DIGEST_HEX_LENGTH.sha256} hex digits)` },
  { long: 'sha512', value: 'HEX', help: `the expected SHA-512 (${DIGEST_HEX_LENGTH.sha512} hex digits)` },
  { long: 'json', help: 'print the result as one JSON object' },
  { long: 'debug', help: 'show error codes, stacks and causes' },
  { long: 'help', short: 'h', help: 'show this help' },
] as const satisfies readonly OptionSpec[];

/** An option as a person types it: `-o/--output`, or `--stdout`. */
export function optionDisplayName(spec: OptionSpec): string {
  return spec.short === undefined ? `--${spec.long}` : `-${spec.short}/--${spec.long}`;
}

/** What the tokenizer found: every value by long name (a flag's is `''`), and the positionals. */
interface ParsedOptions<Name extends string> {
  /** Every value given, in order; a flag given once has `['']`. */
  readonly values: ReadonlyMap<Name, readonly string[]>;
  readonly positionals: readonly string[];
}

/** The last value given for `name` (options are "last one wins", as in curl), or undefined. */
function lastValue<Name extends string>(parsed: ParsedOptions<Name>, name: Name): string | undefined {
  return parsed.values.get(name)?.at(-1);
}

function flag<Name extends string>(parsed: ParsedOptions<Name>, name: Name): boolean {
  return parsed.values.has(name);
}

/** A value that reads as an option rather than a value: `--json`, `-q`, but not `-` or `-1`. */
function looksLikeOption(word: string): boolean {
  return word.startsWith('-') && word !== '-' && !/^-\d/.test(word);
}

/** A value that reads as a URL (`https://…`). */
function looksLikeUrl(word: string): boolean {
  return /^[a-z][a-z\d+.-]*:\/\//i.test(word);
}

/**
 * Splits `argv` by the option table: `--name value`, `--name=value`,
 * `-n value`, `-nvalue`, bundled flags (`-qf`), and `--` ending the options.
 * A value may start with `-` only when it is `-` itself or a number (so
 * `--retries -1` reaches the range check, and `-o --json` is caught as a
 * missing value); `--name=-x` passes anything.
 */
function tokenize<const Specs extends readonly OptionSpec[]>(
  argv: readonly string[],
  specs: Specs,
  command: string,
): ParsedOptions<Specs[number]['long']> {
  type Name = Specs[number]['long'];
  const byLong = new Map<string, OptionSpec>(specs.map((s) => [s.long, s]));
  const byShort = new Map<string, OptionSpec>(specs.flatMap((s) => (s.short === undefined ? [] : [[s.short, s] as const])));
  const values = new Map<Name, string[]>();
  const positionals: string[] = [];
  const add = (spec: OptionSpec, value: string): void => {
    const name = spec.long as Name;
    const list = values.get(name) ?? [];
    if (spec.repeatable !== true) list.length = 0;
    list.push(value);
    values.set(name, list);
  };
  const takeValue = (spec: OptionSpec, next: string | undefined): string => {
    const wanted = `${optionDisplayName(spec)} needs a value (${spec.value})`;
    if (next === undefined) throw new InvalidArgumentError(`${wanted}, got nothing after it`, { hint: usageOf(spec) });
    if (looksLikeOption(next)) {
      throw new InvalidArgumentError(`${wanted}, got the option ${next}`, {
        hint: `${usageOf(spec)}; for a value that starts with '-', write --${spec.long}=VALUE`,
      });
    }
    return next;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = byLong.get(name);
      if (spec === undefined) throw unknownOption(`--${name}`, specs, command);
      if (spec.value === undefined) {
        if (eq >= 0) throw new InvalidArgumentError(`--${name} takes no value, got ${JSON.stringify(arg)}`, { hint: `write --${name} alone` });
        add(spec, '');
      } else {
        add(spec, checkValue(spec, eq >= 0 ? arg.slice(eq + 1) : takeValue(spec, argv[++i])));
      }
      continue;
    }
    if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
      // -qf (flags), -c4 and -c 4 (a value), -qc 4 (flags, then one with a value).
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j] as string;
        const spec = byShort.get(letter);
        if (spec === undefined) throw unknownOption(j === 1 ? arg : `-${letter}`, specs, command, letter);
        if (spec.value === undefined) {
          add(spec, '');
          continue;
        }
        const attached = arg.slice(j + 1);
        add(spec, checkValue(spec, attached !== '' ? attached : takeValue(spec, argv[++i])));
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { values, positionals };
}

/** `-c/--concurrency N`: how the option is used, for hints. */
function usageOf(spec: OptionSpec): string {
  return `usage: ${optionDisplayName(spec)} ${spec.value ?? ''}`.trimEnd();
}

/**
 * A value that is a URL, given to an option that takes something else:
 * `blockfetch -c https://…` means the number was forgotten, not that the
 * URL is the concurrency.
 */
function checkValue(spec: OptionSpec, value: string): string {
  if (spec.value !== 'URL' && spec.value?.endsWith('|URL') !== true && looksLikeUrl(value)) {
    throw new InvalidArgumentError(`${optionDisplayName(spec)} takes ${VALUE_WORDS[spec.value ?? ''] ?? spec.value}, got the URL ${JSON.stringify(redactUrl(value))}`, {
      hint: `give ${optionDisplayName(spec)} its value, then the URL: blockfetch ${spec.short === undefined ? `--${spec.long}` : `-${spec.short}`} ${spec.value} URL`,
    });
  }
  return value;
}

/** What a value placeholder stands for, in a message. */
const VALUE_WORDS: Readonly<Record<string, string>> = Object.freeze({
  N: 'a number (N)',
  SIZE: 'a size (SIZE)',
  RATE: 'a rate (RATE)',
  DURATION: 'a duration (DURATION)',
  FILE: 'a file name (FILE)',
  DIR: 'a directory (DIR)',
  HEX: 'a hex digest (HEX)',
});

/** The most edits at which a typed name is taken for a misspelling of a real one. */
const MAX_SUGGESTION_DISTANCE = 2;

/**
 * "unknown option '--concurency'; did you mean --concurrency?": the nearest
 * long name (or, for one unknown letter, the long names starting with it)
 * within {@link MAX_SUGGESTION_DISTANCE} edits.
 */
function unknownOption(typed: string, specs: readonly OptionSpec[], command: string, letter?: string): InvalidArgumentError {
  const where = command === 'download' ? '' : `${command}: `;
  let suggestion: string | undefined;
  if (letter === undefined) {
    const name = typed.replace(/^-+/, '');
    let best = MAX_SUGGESTION_DISTANCE;
    for (const spec of specs) {
      const distance = editDistance(name, spec.long);
      // A prefix (--conc) is a misspelling too, however many letters are missing.
      if (distance <= best || (name.length >= 3 && spec.long.startsWith(name) && suggestion === undefined)) {
        best = Math.min(distance, best);
        suggestion = `--${spec.long}`;
        if (distance === 0) break;
      }
    }
  } else if (typed.length > 2 && specs.some((s) => s.long === typed.slice(1))) {
    // -stdout: a long name typed with one dash.
    suggestion = `-${typed}`;
  } else {
    // -O, -Q: the letter in the other case (wget's -O is our -o).
    const other = specs.find((s) => s.short !== undefined && s.short.toLowerCase() === letter.toLowerCase());
    if (other !== undefined) suggestion = optionDisplayName(other);
  }
  return new InvalidArgumentError(`${where}unknown option '${typed}'${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`, {
    hint: command === 'download' ? HELP_HINT : `run \`blockfetch help ${command}\` for its options`,
  });
}

/**
 * Parses `argv` (without `node` and the script) into a {@link Command}.
 * The first argument picks the command: `inspect`, `verify`, `help`, or
 * otherwise a URL to download.
 *
 * @throws {InvalidArgumentError} for anything the command cannot run with;
 *   its message names the option and value, its `hint` says what to do.
 *
 * @example
 * ```ts
 * parseCommandLine(['https://example.com/a.iso', '-c', '4', '--block-size', '8MiB'])
 * // { kind: 'download', url: 'https://example.com/a.iso', concurrency: 4, blockSize: 8388608, ... }
 * ```
 */
export function parseCommandLine(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === 'help') return { kind: 'help', topic: helpTopic(rest[0]) };
  if (first === 'inspect') return parseInspect(rest);
  if (first === 'verify') return parseVerify(rest);
  return parseDownload(argv);
}

function parseDownload(argv: readonly string[]): Command {
  const parsed = tokenize(argv, DOWNLOAD_OPTIONS, 'download');
  const { positionals } = parsed;
  const value = (name: (typeof DOWNLOAD_OPTIONS)[number]['long']): string | undefined => lastValue(parsed, name);
  const is = (name: (typeof DOWNLOAD_OPTIONS)[number]['long']): boolean => flag(parsed, name);
  if (is('help')) return { kind: 'help', topic: 'download' };
  if (is('version')) return { kind: 'version' };
  const inputFile = value('input-file');
  if (positionals.length === 0 && inputFile === undefined) {
    throw new InvalidArgumentError('missing the URL to download', { hint: 'usage: blockfetch <url> [-o FILE]; ' + HELP_HINT });
  }
  const urls = positionals.map((p) => checkUrl(p));
  const url = urls[0] ?? '';
  const hf = url.startsWith('hf://');
  checkHfOptions(hf, parsed.values);
  const output = value('output');
  const maxConcurrentFiles = parseWholeNumber(value('max-concurrent-downloads'), '-j/--max-concurrent-downloads', CONCURRENCY_LIMITS) ?? defaultCliOptions.maxConcurrentFiles;
  if (urls.length > 1 || inputFile !== undefined) checkSetDestination(urls.length, inputFile, output, is('stdout'));
  if ((urls.length > 1 || inputFile !== undefined) && is('mirror')) checkSetMirrors(urls.length, inputFile);
  const toStdout = is('stdout') || output === '-';
  if (output === '') throw new InvalidArgumentError('-o/--output must be a file name, got an empty string');
  // `-o FILE --stdout`: stream while saving FILE (see docs/cli.md).
  const saved = output === '-' ? undefined : output;
  const target = outputIn(value('dir'), saved, toStdout && saved === undefined);
  const continueAt = value('continue-at');
  if (continueAt !== undefined && continueAt !== '-') {
    throw new InvalidArgumentError(`-C/--continue-at takes '-' (resume automatically), got ${JSON.stringify(continueAt)}`, {
      hint: 'blockfetch always resumes from the blocks already on disk: write -C - or leave it out',
    });
  }
  const checksum = value('checksum');
  const digests = [...parseDigests(value('sha256'), value('sha512')), ...(checksum === undefined ? [] : [parseChecksum(checksum)])];
  if (digests.length > 1) {
    throw new InvalidArgumentError('give one of --sha256, --sha512 or --checksum for a download, not two', {
      hint: 'check the other one afterwards with `blockfetch verify FILE --sha512 HEX`',
    });
  }
  // With -o FILE too there is a file to hold back from its rename (stream while saving).
  const checksums = checkChecksums(value('checksums'), toStdout && saved === undefined);
  if (is('quiet') && is('json')) {
    throw new InvalidArgumentError('--quiet and --json cannot be combined', {
      hint: '--json already prints nothing but JSON lines; drop one of them',
    });
  }
  if (is('quiet') && is('verbose')) {
    throw new InvalidArgumentError('--quiet and --verbose cannot be combined', { hint: 'drop one of them' });
  }
  const rate = value('rate');
  const limitRate = value('limit-rate');
  if (rate !== undefined && limitRate !== undefined) {
    throw new InvalidArgumentError('give one of --rate or --limit-rate, not both', { hint: 'they set the same limit, in different units' });
  }
  if (is('insecure') && value('cacert') !== undefined) {
    throw new InvalidArgumentError('-k/--insecure and --cacert cannot be combined', {
      hint: '--cacert checks certificates against FILE; -k checks none: drop one of them',
    });
  }
  if (value('cacert') === '') throw new InvalidArgumentError('--cacert must be a file name, got an empty string');
  const headers = (parsed.values.get('header') ?? []).map((text) => parseHeader(text));
  const userAgent = value('user-agent');
  if (userAgent !== undefined) {
    // -H User-Agent wins over -A, as in curl.
    if (!headers.some(([name]) => name.toLowerCase() === 'user-agent')) headers.push(parseHeader(`User-Agent: ${userAgent}`, '-A/--user-agent'));
  }
  const command: DownloadCommand = {
    kind: 'download',
    url,
    output: target,
    toStdout,
    concurrency: parseWholeNumber(value('concurrency'), '-c/--concurrency', CONCURRENCY_LIMITS) ?? defaultCliOptions.concurrency,
    maxConcurrentFiles,
    blockSize: value('block-size') === undefined ? undefined : checkBlockSize(value('block-size') as string, '--block-size'),
    requestSize: value('request-size') === undefined ? undefined : checkBlockSize(value('request-size') as string, '--request-size'),
    rateBytesPerSecond: rate !== undefined ? parseRate(rate, '--rate') : limitRate !== undefined ? parseCurlRate(limitRate) : undefined,
    headers,
    digest: digests[0],
    checksums,
    restart: is('restart'),
    retries: parseWholeNumber(value('retries'), '--retries', RETRIES_LIMITS) ?? defaultCliOptions.retries,
    timeoutMs: value('timeout') === undefined ? defaultCliOptions.timeoutMs : parseDurationMs(value('timeout') as string, '--timeout'),
    speedLimitBytesPerSecond: parseSpeedLimit(value('speed-limit')),
    speedTimeMs: value('speed-time') === undefined ? defaultCliOptions.speedTimeMs : parseDurationMs(value('speed-time') as string, '--speed-time'),
    force: is('force'),
    outputMode: is('json') ? 'json' : is('quiet') ? 'quiet' : 'auto',
    debug: is('debug'),
    verbose: is('verbose'),
    tls: { insecure: is('insecure'), caFile: value('cacert') },
    mirrors: parseMirrors(url, parsed.values.get('mirror') ?? [], toStdout),
    http2: is('http2'),
    include: parsed.values.get('include') ?? [],
    exclude: parsed.values.get('exclude') ?? [],
    hfCache: is('hf-cache'),
    noSignRequest: is('no-sign-request'),
  };
  if (urls.length <= 1 && inputFile === undefined) return command;
  const { kind: _kind, url: _url, output: _output, toStdout: _toStdout, ...each } = command;
  if (each.digest !== undefined) {
    throw new InvalidArgumentError('--sha256, --sha512 and --checksum name one file, but several are downloaded', {
      hint: 'put each file\'s digest in the input file (checksum=sha-256=HEX on the line after its URL)',
    });
  }
  return { ...each, kind: 'download-set', urls, inputFile, dir: value('dir') };
}

/**
 * Several files take their names from the server, the URL or the input
 * file's `out=`: one `-o FILE` or `--stdout` cannot name them all.
 */
function checkSetDestination(urls: number, inputFile: string | undefined, output: string | undefined, toStdout: boolean): void {
  const what = inputFile === undefined ? `${urls} URLs` : `-i ${JSON.stringify(inputFile)}`;
  if (inputFile === '') throw new InvalidArgumentError('-i/--input-file must be a file name (or - for stdin), got an empty string');
  if (toStdout || output === '-') {
    throw new InvalidArgumentError(`--stdout streams one file, but ${what} ask${inputFile === undefined ? '' : 's'} for several`, {
      hint: 'stream one URL at a time with --stdout, or save the set with -d DIR',
    });
  }
  if (output !== undefined) {
    throw new InvalidArgumentError(`-o names one file, but ${what} ask${inputFile === undefined ? '' : 's'} for several`, {
      hint: 'use -d DIR to choose the directory; to name each file, list the URLs in a file for -i with an out=NAME line under each',
    });
  }
}

/**
 * `--mirror` names more URLs of ONE file: with several files it cannot say
 * which. A file's mirrors go on its own line of an input file instead.
 */
function checkSetMirrors(urls: number, inputFile: string | undefined): never {
  const what = inputFile === undefined ? `${urls} URLs ask` : `-i ${JSON.stringify(inputFile)} asks`;
  throw new InvalidArgumentError(`--mirror gives more URLs of one file, but ${what} for several files`, {
    hint: "put each file's mirrors on its line of an input file, separated by TAB characters (URL<TAB>MIRROR), and run blockfetch -i FILE",
  });
}

/** `--mirror URL`s: http(s) URLs, none of them the main URL or given twice, and not with --stdout. */
function parseMirrors(url: string, mirrors: readonly string[], toStdout: boolean): string[] {
  if (mirrors.length === 0) return [];
  if (toStdout) {
    throw new InvalidArgumentError('--mirror cannot be combined with --stdout', { hint: 'download to a file to use mirrors, or drop --mirror' });
  }
  const seen = new Set([url]);
  return mirrors.map((mirror) => {
    const checked = checkUrl(mirror);
    if (seen.has(checked)) {
      throw new InvalidArgumentError(`--mirror ${JSON.stringify(redactUrl(checked))} is given twice (or is the URL itself)`, { hint: 'give each mirror once' });
    }
    seen.add(checked);
    return checked;
  });
}

/**
 * The options only a `hf://` URL takes, and those it cannot: a repository
 * is a set of files, each with its own name and digest.
 */
function checkHfOptions(hf: boolean, values: ReadonlyMap<string, readonly string[]>): void {
  const given = (name: string): boolean => values.has(name);
  if (!hf) {
    const only = ['include', 'exclude', 'hf-cache'].find(given);
    if (only !== undefined) {
      throw new InvalidArgumentError(`--${only} applies to hf:// URLs only`, { hint: 'e.g. blockfetch hf://OWNER/NAME --include "*.json"' });
    }
    return;
  }
  const refused: Readonly<Record<string, string>> = {
    output: 'a repository is saved under its paths: choose the folder with -d DIR',
    stdout: 'a repository is a set of files: save them with -d DIR',
    sha256: 'every file is verified against the digest the Hub lists for it',
    sha512: 'every file is verified against the digest the Hub lists for it',
    checksum: 'every file is verified against the digest the Hub lists for it',
    header: 'the token comes from HF_TOKEN or the token file, and goes to the Hub only',
    checksums: 'every file is verified against the digest the Hub lists for it',
    mirror: 'the Hub and its CDN are the one source of a repository',
  };
  for (const [name, why] of Object.entries(refused)) {
    if (given(name)) throw new InvalidArgumentError(`--${name} cannot be used with a hf:// URL`, { hint: why });
  }
  if (given('hf-cache') && given('dir')) {
    throw new InvalidArgumentError('--hf-cache and -d/--dir ask for two destinations', { hint: 'the cache is HF_HUB_CACHE (else $HF_HOME/hub): set it to choose where' });
  }
}

/**
 * The target from `-d DIR` and `-o FILE`: `DIR/FILE`, or `DIR/` (a
 * directory, so the server's name is used inside it), as aria2c's `-d`
 * with `-o` and wget's `-P`.
 */
function outputIn(dir: string | undefined, output: string | undefined, toStdout: boolean): string | undefined {
  if (dir === undefined) return output;
  if (dir === '') throw new InvalidArgumentError('-d/--dir must be a directory, got an empty string');
  if (toStdout) {
    throw new InvalidArgumentError('-d/--dir and --stdout ask for two destinations', {
      hint: 'use either --stdout (or -o -) or -d DIR; to stream while saving, name the file: -d DIR -o FILE --stdout',
    });
  }
  if (output === undefined) return dir.endsWith('/') ? dir : `${dir}/`;
  if (isAbsolute(output)) {
    throw new InvalidArgumentError(`-o ${JSON.stringify(output)} is an absolute path, so -d ${JSON.stringify(dir)} would be ignored`, {
      hint: 'give -o a name inside -d DIR, or drop -d',
    });
  }
  return join(dir, output);
}

/**
 * `--checksums FILE|URL`: a file, or an http(s) URL. Not `-`: stdin is not
 * read by a download. Not with `--stdout` alone (`streamsOnly`): there the
 * bytes are out before any digest could stop them, and there is no file
 * name to look up; `-o FILE --stdout` has both.
 */
function checkChecksums(text: string | undefined, streamsOnly: boolean): string | undefined {
  if (text === undefined) return undefined;
  if (text === '') throw new InvalidArgumentError('--checksums must be a file name or URL, got an empty string');
  if (text === '-') {
    throw new InvalidArgumentError('--checksums - (standard input) is not supported', {
      hint: 'save the list to a file and give its name, or give its http(s) URL',
    });
  }
  if (looksLikeUrl(text) && !/^https?:\/\//i.test(text)) {
    throw new InvalidArgumentError(`--checksums takes a file or an http(s) URL, got ${JSON.stringify(redactUrl(text))}`, {
      hint: 'download the list first, then give its file name',
    });
  }
  if (streamsOnly) {
    throw new InvalidArgumentError('--checksums checks a file before it is renamed into place; --stdout has no file', {
      hint: 'save to a file too (-o FILE --stdout) to check it against the list, or give --sha256 HEX to check the stream at its end',
    });
  }
  return text;
}

/** curl's `--limit-rate` units: a number, optionally with K, M, G or T, each a power of 1024 (`1M` = 1 MiB/s). */
const CURL_RATE_FACTORS: Readonly<Record<string, number>> = Object.freeze({ '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 });

/**
 * `--limit-rate 500K`: curl's rate syntax, in bytes per second. An IEC or
 * SI unit (`8MiB/s`, `50MB`) is read as `--rate` reads it, so nothing
 * typed for one is misread by the other.
 */
function parseCurlRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)\s*$/i.exec(text);
  if (match === null) return parseRate(text, '--limit-rate');
  const bytes = Math.round(Number(match[1]) * (CURL_RATE_FACTORS[(match[2] ?? '').toLowerCase()] ?? 1));
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new InvalidArgumentError(`--limit-rate must be at least 1 byte per second, got ${JSON.stringify(text)}`, {
      hint: "e.g. --limit-rate 500K or --limit-rate 8M (curl's units: powers of 1024)",
    });
  }
  return bytes;
}

function parseInspect(argv: readonly string[]): Command {
  const parsed = tokenize(argv, INSPECT_OPTIONS, 'inspect');
  if (flag(parsed, 'help')) return { kind: 'help', topic: 'inspect' };
  const path = onePath(parsed.positionals, 'inspect', 'blockfetch inspect <FILE|FILE.blockfetch.json> [--json]');
  return { kind: 'inspect', path, json: flag(parsed, 'json'), debug: flag(parsed, 'debug') };
}

function parseVerify(argv: readonly string[]): Command {
  const parsed = tokenize(argv, VERIFY_OPTIONS, 'verify');
  if (flag(parsed, 'help')) return { kind: 'help', topic: 'verify' };
  const path = onePath(parsed.positionals, 'verify', 'blockfetch verify <FILE> --sha256 HEX');
  const digests = parseDigests(lastValue(parsed, 'sha256'), lastValue(parsed, 'sha512'));
  if (digests.length === 0) {
    throw new InvalidArgumentError('verify needs the expected digest: --sha256 HEX or --sha512 HEX', {
      hint: 'usage: blockfetch verify <FILE> --sha256 HEX',
    });
  }
  return { kind: 'verify', path, digests, json: flag(parsed, 'json'), debug: flag(parsed, 'debug') };
}

function helpTopic(word: string | undefined): HelpCommand['topic'] {
  return word === 'inspect' || word === 'verify' ? word : 'download';
}

function onePath(positionals: readonly string[], command: string, usage: string): string {
  if (positionals.length !== 1 || positionals[0] === '') {
    throw new InvalidArgumentError(
      positionals.length === 0 ? `${command}: missing the file` : `${command}: expected one file, got ${positionals.length}`,
      { hint: `usage: ${usage}` },
    );
  }
  return positionals[0] as string;
}

function checkUrl(text: string): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${JSON.stringify(text)}`, {
      hint: 'give a full http:// or https:// URL, e.g. blockfetch https://example.com/file.iso',
    });
  }
  if (parsed.protocol === 'hf:') return text;
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:' && parsed.protocol !== 's3:') {
    throw new InvalidArgumentError(`unsupported URL scheme ${JSON.stringify(parsed.protocol)} in ${JSON.stringify(text)}`, {
      hint: 'blockfetch downloads http://, https:// and s3:// URLs; to inspect a partial download use `blockfetch inspect FILE`',
    });
  }
  return text;
}

/** A block or request size, within {@link BLOCK_SIZE_LIMITS}. */
function checkBlockSize(text: string, option: '--block-size' | '--request-size'): number {
  const size = parseByteSize(text, option);
  const { min, max } = BLOCK_SIZE_LIMITS;
  if (size < min || size > max) {
    const fallback = option === '--block-size' ? defaultCliOptions.blockSize : defaultCliOptions.requestSize;
    throw new InvalidArgumentError(
      `${option} must be from ${formatSizeOption(min)} to ${formatSizeOption(max)}, got ${JSON.stringify(text)} (${size} bytes)`,
      { hint: `the default, ${formatSizeOption(fallback)}, suits most links` },
    );
  }
  return size;
}

/**
 * The one parser of a whole-number flag (`-c 8`, `--retries 0`). It reads
 * text, not a value, so it cannot use `wholeNumber` from validate.ts (whose
 * message describes a JavaScript value and its type); it quotes what was typed.
 */
function parseWholeNumber(text: string | undefined, option: string, limits: { readonly min: number; readonly max: number }): number | undefined {
  if (text === undefined) return undefined;
  const { min, max } = limits;
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${option} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** `30`, `30s`, `500ms`, `2m`: a duration, seconds when no unit is given. */
export function parseDurationMs(text: string, option: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!match) {
    throw new InvalidArgumentError(`${option} must be a duration such as 30s, 500ms or 2m, got ${JSON.stringify(text)}`);
  }
  const unit = (match[2] ?? 's').toLowerCase();
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  const ms = Math.round(Number(match[1]) * factor);
  if (ms < 1 || ms > 24 * 3_600_000) {
    throw new InvalidArgumentError(`${option} must be from 1ms to 24h, got ${JSON.stringify(text)}`);
  }
  return ms;
}

function parseDigests(sha256: string | undefined, sha512: string | undefined): ExpectedDigest[] {
  const digests: ExpectedDigest[] = [];
  if (sha256 !== undefined) digests.push(checkHex(sha256, 'sha256'));
  if (sha512 !== undefined) digests.push(checkHex(sha512, 'sha512'));
  return digests;
}

function checkHex(text: string, algorithm: DigestAlgorithm, option = `--${algorithm}`): ExpectedDigest {
  const digest = hexDigest(text, algorithm);
  if (digest === undefined) {
    throw new InvalidArgumentError(
      `${option} must be ${DIGEST_HEX_LENGTH[algorithm]} hexadecimal digits, got ${JSON.stringify(text)} (${text.length} characters)`,
      { hint: `copy the digest from the publisher's ${algorithm.toUpperCase()}SUMS file, without the file name` },
    );
  }
  return digest;
}

/** `--checksum sha-256=HEX` (aria2c's `--checksum=TYPE=DIGEST`). */
function parseChecksum(text: string): ExpectedDigest {
  const parts = splitChecksum(text);
  if (parts === undefined) {
    throw new InvalidArgumentError(`--checksum takes ALGO=HEX with ALGO one of ${Object.keys(CHECKSUM_ALGORITHMS).join(', ')}, got ${JSON.stringify(text)}`, {
      hint: 'for example --checksum sha-256=9f86d081884c7d65…',
    });
  }
  return checkHex(parts.digest, parts.algorithm, `--checksum ${parts.type}=`);
}

function parseHeader(text: string, option = '-H/--header'): [string, string] {
  const { name, value, problem } = readHeader(text, { refuseC1: false });
  if (problem === 'shape') {
    // The value is not echoed: it may hold a credential.
    throw new InvalidArgumentError(`${option} must look like "Name: value", got a value without a valid "Name:" before a colon`, {
      hint: 'e.g. -H "Authorization: Bearer $TOKEN"',
    });
  }
  if (problem === 'control') throw new InvalidArgumentError(`${option} ${name} has a control character in its value`);
  // The HTTP layer's list: a header it refuses is refused here first, with a CLI hint.
  if (problem === 'reserved') {
    throw new InvalidArgumentError(`-H/--header cannot set ${name}: blockfetch sets it on every request`, {
      hint: 'Range and the If-* headers pin each request to one revision of the file',
    });
  }
  return [name, value];
}

/** `-H` pairs as a header record; a repeated name is joined with ", " as HTTP allows. */
export function headerRecord(headers: DownloadCommand['headers']): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    record[key] = record[key] === undefined ? value : `${record[key]}, ${value}`;
  }
  return record;
}

/** `--speed-limit RATE`: the lowest-speed rule's rate in bytes per second; `0` turns it off. */
function parseSpeedLimit(text: string | undefined): number {
  if (text === undefined) return defaultCliOptions.speedLimitBytesPerSecond;
  return text.trim() === '0' ? 0 : Math.floor(parseRate(text, '--speed-limit'));
}
