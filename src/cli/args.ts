/**
 * The command line, parsed and validated into one typed {@link Command}.
 *
 * Built on `node:util`'s `parseArgs` (no dependency): it rejects unknown
 * options and missing values; everything else (sizes, digests, headers) is
 * checked here, and every problem is an {@link InvalidArgumentError} whose
 * message names the option and the value, with a hint. Nothing here touches
 * the network or the disk.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { DIGEST_HEX_LENGTH, type ExpectedDigest } from '../cache/types.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import { InvalidArgumentError } from '../errors.js';
import { defaultRetryOptions } from '../download/backoff.js';
import { RESERVED_REQUEST_HEADERS } from '../http/reserved-headers.js';
import { formatSizeOption, parseByteSize, parseRate } from './units.js';

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
   * @default DEFAULT_MAX_REQUEST_BYTES (16 MiB)
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
  /** Stream to stdout in order (`-o -` or `--stdout`) instead of a file. */
  readonly toStdout: boolean;
  /** Requests at once (`-c`). */
  readonly concurrency: number;
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

/** Everything the command line can ask for. */
export type Command = DownloadCommand | InspectCommand | VerifyCommand | HelpCommand | VersionCommand;

const HELP_HINT = 'run `blockfetch --help` for usage';

const downloadOptions = {
  output: { type: 'string', short: 'o' },
  stdout: { type: 'boolean' },
  concurrency: { type: 'string', short: 'c' },
  'block-size': { type: 'string' },
  'request-size': { type: 'string' },
  rate: { type: 'string' },
  header: { type: 'string', short: 'H', multiple: true },
  sha256: { type: 'string' },
  sha512: { type: 'string' },
  restart: { type: 'boolean' },
  retries: { type: 'string' },
  timeout: { type: 'string' },
  'speed-limit': { type: 'string' },
  'speed-time': { type: 'string' },
  force: { type: 'boolean', short: 'f' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies ParseArgsConfig['options'];

const inspectOptions = {
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const verifyOptions = {
  sha256: { type: 'string' },
  sha512: { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

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
  const { values, positionals } = parseStrict(argv, downloadOptions);
  if (values.help) return { kind: 'help', topic: 'download' };
  if (values.version) return { kind: 'version' };
  if (positionals.length === 0) {
    throw new InvalidArgumentError('missing the URL to download', { hint: 'usage: blockfetch <url> [-o FILE]; ' + HELP_HINT });
  }
  if (positionals.length > 1) {
    throw new InvalidArgumentError(`expected one URL, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, {
      hint: 'download one file per command; quote a URL that contains spaces or &',
    });
  }
  const url = checkUrl(positionals[0] ?? '');
  const toStdout = values.stdout === true || values.output === '-';
  if (values.stdout === true && values.output !== undefined && values.output !== '-') {
    throw new InvalidArgumentError(`--stdout and -o ${JSON.stringify(values.output)} ask for two destinations`, {
      hint: 'use either --stdout (or -o -) or -o FILE',
    });
  }
  if (values.output === '') throw new InvalidArgumentError('-o/--output must be a file name, got an empty string');
  const digests = parseDigests(values.sha256, values.sha512);
  if (digests.length > 1) {
    throw new InvalidArgumentError('give one of --sha256 or --sha512 for a download, not both', {
      hint: 'check the other one afterwards with `blockfetch verify FILE --sha512 HEX`',
    });
  }
  if (values.quiet === true && values.json === true) {
    throw new InvalidArgumentError('--quiet and --json cannot be combined', {
      hint: '--json already prints nothing but JSON lines; drop one of them',
    });
  }
  return {
    kind: 'download',
    url,
    output: toStdout ? undefined : values.output,
    toStdout,
    concurrency: parseWholeNumber(values.concurrency, '-c/--concurrency', CONCURRENCY_LIMITS) ?? defaultCliOptions.concurrency,
    blockSize: values['block-size'] === undefined ? undefined : checkBlockSize(values['block-size'], '--block-size'),
    requestSize: values['request-size'] === undefined ? undefined : checkBlockSize(values['request-size'], '--request-size'),
    rateBytesPerSecond: values.rate === undefined ? undefined : parseRate(values.rate, '--rate'),
    headers: (values.header ?? []).map(parseHeader),
    digest: digests[0],
    restart: values.restart === true,
    retries: parseWholeNumber(values.retries, '--retries', RETRIES_LIMITS) ?? defaultCliOptions.retries,
    timeoutMs: values.timeout === undefined ? defaultCliOptions.timeoutMs : parseDurationMs(values.timeout, '--timeout'),
    speedLimitBytesPerSecond:
      values['speed-limit'] === undefined
        ? defaultCliOptions.speedLimitBytesPerSecond
        : values['speed-limit'].trim() === '0'
          ? 0
          : Math.floor(parseRate(values['speed-limit'], '--speed-limit')),
    speedTimeMs: values['speed-time'] === undefined ? defaultCliOptions.speedTimeMs : parseDurationMs(values['speed-time'], '--speed-time'),
    force: values.force === true,
    outputMode: values.json === true ? 'json' : values.quiet === true ? 'quiet' : 'auto',
    debug: values.debug === true,
  };
}

function parseInspect(argv: readonly string[]): Command {
  const { values, positionals } = parseStrict(argv, inspectOptions);
  if (values.help) return { kind: 'help', topic: 'inspect' };
  const path = onePath(positionals, 'inspect', 'blockfetch inspect <FILE|FILE.blockfetch.json> [--json]');
  return { kind: 'inspect', path, json: values.json === true, debug: values.debug === true };
}

function parseVerify(argv: readonly string[]): Command {
  const { values, positionals } = parseStrict(argv, verifyOptions);
  if (values.help) return { kind: 'help', topic: 'verify' };
  const path = onePath(positionals, 'verify', 'blockfetch verify <FILE> --sha256 HEX');
  const digests = parseDigests(values.sha256, values.sha512);
  if (digests.length === 0) {
    throw new InvalidArgumentError('verify needs the expected digest: --sha256 HEX or --sha512 HEX', {
      hint: 'usage: blockfetch verify <FILE> --sha256 HEX',
    });
  }
  return { kind: 'verify', path, digests, json: values.json === true, debug: values.debug === true };
}

/** parseArgs with its TypeErrors turned into one-line usage errors. */
function parseStrict<O extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
    throw new InvalidArgumentError(message.replace(/^Unknown option/, 'unknown option').replace(/\. To specify.*$/, ''), {
      hint: HELP_HINT,
      cause: err,
    });
  }
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
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidArgumentError(`unsupported URL scheme ${JSON.stringify(parsed.protocol)} in ${JSON.stringify(text)}`, {
      hint: 'blockfetch downloads http:// and https:// URLs; to inspect a partial download use `blockfetch inspect FILE`',
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

function checkHex(text: string, algorithm: 'sha256' | 'sha512'): ExpectedDigest {
  const length = DIGEST_HEX_LENGTH[algorithm];
  const hex = text.trim().toLowerCase();
  if (!new RegExp(`^[0-9a-f]{${length}}$`).test(hex)) {
    throw new InvalidArgumentError(
      `--${algorithm} must be ${length} hexadecimal digits, got ${JSON.stringify(text)} (${text.length} characters)`,
      { hint: `copy the digest from the publisher's ${algorithm.toUpperCase()}SUMS file, without the file name` },
    );
  }
  return { algorithm, hex };
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function parseHeader(text: string): readonly [string, string] {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon).trim();
  const value = colon < 0 ? '' : text.slice(colon + 1).trim();
  if (colon < 0 || !TOKEN.test(name)) {
    // The value is not echoed: it may hold a credential.
    throw new InvalidArgumentError('-H/--header must look like "Name: value", got a value without a valid "Name:" before a colon', {
      hint: 'e.g. -H "Authorization: Bearer $TOKEN"',
    });
  }
  // eslint-disable-next-line no-control-regex -- CR/LF would split the header
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
    throw new InvalidArgumentError(`-H/--header ${name} has a control character in its value`);
  }
  // The HTTP layer's list: a header it refuses is refused here first, with a CLI hint.
  if (RESERVED_REQUEST_HEADERS.has(name.toLowerCase())) {
    throw new InvalidArgumentError(`-H/--header cannot set ${name}: blockfetch sets it on every request`, {
      hint: 'Range and the If-* headers pin each request to one revision of the file',
    });
  }
  return [name, value] as const;
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
