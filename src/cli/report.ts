/**
 * How the command reports a failure: one line `blockfetch: <message>`, one
 * `hint: <what to do>` line, and with `--debug` (or `NODE_DEBUG=blockfetch`)
 * the error's code, stack and chain of causes. Never a stack trace by
 * default: a person needs to know what happened and what to do, not where
 * in our code it was noticed.
 */
import { debuglog } from 'node:util';

import { BlockfetchError, redactUrl, type ErrorCode } from '../errors.js';
import { exitCodeFor, type ExitCodeValue } from './exit-codes.js';

/** True when `NODE_DEBUG` includes `blockfetch`, as `util.debuglog` reads it. */
export const debugFromEnvironment: boolean = debuglog('blockfetch').enabled;

/**
 * What to do, for errors raised without a hint of their own: the "what to
 * do" column of docs/errors.md, so every failure prints a `hint:` line.
 */
const FALLBACK_HINTS: Readonly<Record<ErrorCode, string>> = Object.freeze({
  BLOCKFETCH_INVALID_ARGUMENT: 'run `blockfetch --help` for usage',
  BLOCKFETCH_TARGET_EXISTS: 'pass --force to replace it, or choose another name with -o',
  BLOCKFETCH_NOT_ENOUGH_SPACE: 'free some space on that filesystem, or download to another directory',
  BLOCKFETCH_ALLOCATION_FAILED: 'download to a directory on another filesystem',
  BLOCKFETCH_INDEX_CORRUPT: '--restart discards the partial download and starts over',
  BLOCKFETCH_INDEX_FOREIGN: 'check the path; blockfetch never deletes a file it did not write',
  BLOCKFETCH_INDEX_VERSION: 'upgrade blockfetch to resume this download',
  BLOCKFETCH_INDEX_MISMATCH: '--restart discards the partial download and starts over',
  BLOCKFETCH_CACHE_MISSING: 'check the path',
  BLOCKFETCH_CACHE_CLOSED: 'this looks like a bug in blockfetch: run again with --debug and report what it prints',
  BLOCKFETCH_LOCKED: 'wait for the other download to finish, or stop it',
  BLOCKFETCH_LOCK_FAILED: 'fix the cause above (permissions, disk), then run the same command again to resume',
  BLOCKFETCH_UNCACHED_RANGE: 'this looks like a bug in blockfetch: run again with --debug and report what it prints',
  BLOCKFETCH_INVALID_WRITE: 'this looks like a bug in blockfetch: run again with --debug and report what it prints',
  BLOCKFETCH_DISK_WRITE: 'fix the cause above (permissions, disk), then run the same command again to resume',
  BLOCKFETCH_REMOTE_CHANGED: 'restart (--restart) to fetch the new revision',
  BLOCKFETCH_RANGE_NOT_SUPPORTED: 'use a server or mirror that supports byte ranges',
  BLOCKFETCH_BAD_RESPONSE: 'run the same command again later; report the server if it persists',
  BLOCKFETCH_HTTP_STATUS: 'check the URL and credentials (-H); for a 5xx or 429 run the same command again later',
  BLOCKFETCH_NETWORK: 'check the network, then run the same command again: it resumes',
  BLOCKFETCH_BODY_LENGTH: 'run the same command again: it resumes',
  BLOCKFETCH_TIMEOUT: 'run the same command again; raise --timeout on a very slow link',
  BLOCKFETCH_REDIRECT: 'check the URL, or download the final URL directly',
  BLOCKFETCH_RETRIES_EXHAUSTED: 'run the same command again: it resumes',
  BLOCKFETCH_DIGEST_MISMATCH:
    'check the digest you gave; the partial file is kept (delete FILE.blockfetch* to download it again)',
  BLOCKFETCH_ABORTED: 'run the same command again to resume',
});

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

/**
 * Describes `err` for a person. A {@link BlockfetchError} carries its own
 * message and hint; anything else is an unexpected failure, described by
 * its message with a hint to re-run with `--debug` and report it.
 */
export function describeFailure(err: unknown): FailureReport {
  const exitCode = exitCodeFor(err);
  if (err instanceof BlockfetchError) {
    // Every error gets a hint, even one raised deep in a layer without one.
    const hint = err.hint ?? FALLBACK_HINTS[err.code];
    return { exitCode, code: err.code, message: oneLine(err.message), hint: oneLine(hint) };
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
export function formatFailure(err: unknown, debug: boolean): string {
  const report = describeFailure(err);
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

/** The `--json` line for a failure: code, message, hint, exit status and, when resumable, the command. */
export function writeJsonError(stream: NodeJS.WritableStream, err: unknown, resume?: string): void {
  const report = describeFailure(err);
  stream.write(
    `${JSON.stringify({
      type: 'error',
      code: report.code ?? null,
      message: report.message,
      hint: report.hint ?? null,
      exitCode: report.exitCode,
      ...(resume === undefined ? {} : { resume }),
    })}\n`,
  );
}
