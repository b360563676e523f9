/**
 * How the command reports a failure: one line `blockfetch: <message>`, one
 * `hint: <what to do>` line, and with `--debug` (or `NODE_DEBUG=blockfetch`)
 * the error's code, stack and chain of causes. Never a stack trace by
 * default: a person needs to know what happened and what to do, not where
 * in our code it was noticed.
 */
import { debuglog } from 'node:util';

import { BlockfetchError, ERROR_CODES, HttpStatusError, redactUrl, type ErrorCode } from '../errors.js';
import { exitCodeFor, type ExitCodeValue } from './exit-codes.js';
import { jsonLine, type JsonOutcome } from './json-lines.js';

/** True when `NODE_DEBUG` includes `blockfetch`, as `util.debuglog` reads it. */
export const debugFromEnvironment: boolean = debuglog('blockfetch').enabled;

/**
 * The command's flag for each library option a library hint may name. Library
 * hints speak of options ("restart (option `restart`) to ..."), never of
 * flags; this is the one place those names become the command's own words.
 */
const FLAG_FOR_OPTION: Readonly<Record<string, string>> = Object.freeze({
  restart: '--restart',
  overwrite: '--force',
  timeoutMs: '--timeout',
  headers: '-H',
  blockSize: '--block-size',
  expectedDigest: '--sha256',
  noSignRequest: '--no-sign-request',
});

/** "option `name`" in a library hint, and the same in parentheses. */
const OPTION_MENTION = /\(option `(\w+)`\)|option `(\w+)`/g;

/**
 * Hints the command words itself for a code, from the error's details, where
 * the library's (an option's name, a cache figure) would not tell a person
 * at a terminal what to type.
 */
const CLI_HINTS: { readonly [C in ErrorCode]?: (err: BlockfetchError) => string } = Object.freeze({
  BLOCKFETCH_INVALID_ARGUMENT: (err: BlockfetchError) => (err.hint === undefined ? 'run `blockfetch --help` for usage' : toFlags(err.hint)),
  BLOCKFETCH_TARGET_EXISTS: () => 'pass --force to replace it, or choose another name with -o',
  // A source that knows what the status means (S3's error codes) says so in its own hint.
  BLOCKFETCH_HTTP_STATUS: (err: BlockfetchError) => (err.hint !== undefined ? toFlags(err.hint) : statusHint(err instanceof HttpStatusError ? err.status : undefined)),
  BLOCKFETCH_TLS: (err: BlockfetchError) =>
    /certificate/i.test(err.message)
      ? 'trust the issuing CA with --cacert ca.pem (or NODE_EXTRA_CA_CERTS=ca.pem); check the host name and the clock; -k/--insecure skips the check, for test servers only'
      : toFlags(err.hint ?? ERROR_CODES[err.code].action),
  BLOCKFETCH_DIGEST_MISMATCH: (err: BlockfetchError) =>
    err.hint === undefined
      ? 'check the digest you gave; the partial file is kept (delete FILE.blockfetch* to download it again)'
      : toFlags(err.hint),
});

/**
 * What to do about a status retrying cannot change, by status: a 404 is a
 * wrong URL, a 401 or 403 missing (or expired) credentials.
 */
function statusHint(status: number | undefined): string {
  switch (status) {
    case 404:
      return 'the server has no file at this URL (404 Not Found): check the URL';
    case 410:
      return 'the server says the file is gone for good (410 Gone): find its new URL';
    case 401:
      return "the server wants credentials (401): pass them as a header (-H), e.g. -H 'Authorization: ...'";
    case 403:
      return 'the server refuses access (403): check the credentials (-H), or get a fresh URL if it was a signed one that expired';
    case 416:
      return 'the server refused the byte range (416): check the URL; retrying will not change it';
    default:
      return `the server will answer the same to a retry${status === undefined ? '' : ` (HTTP ${status})`}: check the URL and the credentials (-H)`;
  }
}

/**
 * A hint for a run that stopped with nothing on disk: there is nothing to
 * resume, so "run it again: it resumes" would promise what is not there.
 *
 * @example
 * ```ts
 * withoutResume('check the network, then run the same download again: it resumes')
 * // 'check the network, then run the same download again'
 * ```
 */
export function withoutResume(hint: string): string {
  return hint
    .replace(/:\s*it resumes\b/g, '')
    .replace(/\s+to resume\b/g, '')
    .replace(/;\s*the download resumes from what is on disk/g, '')
    .replace(/\bresumes\b/g, 'starts again');
}

/**
 * The `hint:` line for `err`: the command's own hint for its code if it has
 * one; else the error's hint, or the library's "what to do" for the code
 * (`ERROR_CODES`), with every option it names replaced by the command's flag.
 *
 * @example
 * ```ts
 * cliHint(new RemoteChangedError(url, changes, 4096))
 * // 'restart (--restart) to discard the 4.00 KiB already downloaded and fetch the new revision'
 * cliHint(new BlockfetchError('BLOCKFETCH_TIMEOUT', 'slow'))
 * // 'run the same download again; raise the timeout (--timeout) on a very slow link'
 * ```
 */
export function cliHint(err: BlockfetchError): string {
  const own = CLI_HINTS[err.code];
  if (own !== undefined) return own(err);
  return toFlags(err.hint ?? ERROR_CODES[err.code].action);
}

/** Replaces "option `restart`" (and "(option `restart`)") with the flag that sets it. */
function toFlags(hint: string): string {
  return hint.replace(OPTION_MENTION, (whole: string, inParens: string | undefined, bare: string | undefined) => {
    const flag = FLAG_FOR_OPTION[inParens ?? bare ?? ''];
    if (flag === undefined) return whole;
    return inParens !== undefined ? `(${flag})` : flag;
  });
}

/** A failure, ready to print or to serialize as JSON. */
export interface FailureReport {
  /** The exit code the command ends with. */
  readonly exitCode: ExitCodeValue;
  /** The stable error code (`BLOCKFETCH_*`), or `undefined` for an unexpected error. */
  readonly code: string | undefined;
  /** One line: what went wrong. */
  readonly message: string;
  /** One line: what to do about it, if there is something to say. */
  readonly hint: string | undefined;
}

/** What the report may take into account beyond the error itself. */
export interface FailureOptions {
  /** Nothing is on disk to resume from: the hint must not promise a resume. */
  readonly nothingDownloaded?: boolean;
}

/**
 * Describes `err` for a person. A {@link BlockfetchError} carries its own
 * message, and its hint is {@link cliHint}'s; anything else is an unexpected failure, described by
 * its message with a hint to re-run with `--debug` and report it.
 */
export function describeFailure(err: unknown, options: FailureOptions = {}): FailureReport {
  const exitCode = exitCodeFor(err);
  if (err instanceof BlockfetchError) {
    // Every error gets a hint, even one raised deep in a layer without one.
    const hint = oneLine(cliHint(err));
    return { exitCode, code: err.code, message: oneLine(err.message), hint: options.nothingDownloaded === true ? withoutResume(hint) : hint };
  }
  const message = err instanceof Error ? err.message : String(err);
  const errno = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  return {
    exitCode,
    code: undefined,
    message: oneLine(redactUrls(message)) || 'unknown error',
    hint:
      errno === 'ENOSPC' || errno === 'EDQUOT'
        ? 'free some space on the target filesystem, then run the same command again to resume'
        : errno === 'EACCES' || errno === 'EPERM'
          ? 'check the permissions of the target directory'
          : 'this looks like a bug in blockfetch: run again with --debug and report what it prints',
  };
}

/**
 * The text printed to stderr for a failure: `blockfetch: message`, then
 * `hint: ...`, then (with `debug`) the code, the stack and every cause.
 */
export function formatFailure(err: unknown, debug: boolean, options: FailureOptions = {}): string {
  const report = describeFailure(err, options);
  const lines = [`blockfetch: ${report.message}`];
  if (report.hint !== undefined) lines.push(`hint: ${report.hint}`);
  if (debug) {
    lines.push(`debug: code ${report.code ?? '(none)'}, exit status ${report.exitCode}`);
    let current: unknown = err;
    // A cause chain is short; the bound keeps a cycle from hanging us.
    for (let depth = 0; depth < 8 && current !== undefined; depth++) {
      const stack = current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current);
      lines.push(`${depth === 0 ? 'debug: ' : 'debug: caused by '}${redactUrls(stack)}`);
      current = current instanceof Error ? current.cause : undefined;
    }
  }
  return `${lines.join('\n')}\n`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Removes credentials from any URL inside a message from a library we do not control. */
function redactUrls(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s'"<>]+/g, (url) => redactUrl(url));
}

/** The `--json` line for a failure (`"outcome": "failed"`): code, message, hint, exit status and, when resumable, the command. */
export function writeJsonError(stream: NodeJS.WritableStream, err: unknown, resume?: string, options: FailureOptions = {}): void {
  const report = describeFailure(err, options);
  stream.write(
    jsonLine({
      type: 'error',
      outcome: 'failed' satisfies JsonOutcome,
      code: report.code ?? null,
      message: report.message,
      hint: report.hint ?? null,
      exitCode: report.exitCode,
      ...(resume === undefined ? {} : { resume }),
    }),
  );
}
