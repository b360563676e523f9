/**
 * How the command reports a failure: one line `blockfetch: <message>`, one
 * `hint: <what to do>` line, and with `--debug` (or `NODE_DEBUG=blockfetch`)
 * the error's code, stack and chain of causes. Never a stack trace by
 * default: a person needs to know what happened and what to do, not where
 * in our code it was noticed.
 */
import { debuglog } from 'node:util';

import { BlockfetchError, redactUrl } from '../errors.js';
import { exitCodeFor, type ExitCodeValue } from './exit-codes.js';

/** True when `NODE_DEBUG` includes `blockfetch`, as `util.debuglog` reads it. */
export const debugFromEnvironment: boolean = debuglog('blockfetch').enabled;

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
    // Every usage error gets a hint, even one raised deep in an options check.
    const hint = err.hint ?? (err.code === 'BLOCKFETCH_INVALID_ARGUMENT' ? 'run `blockfetch --help` for usage' : undefined);
    return { exitCode, code: err.code, message: oneLine(err.message), hint: hint === undefined ? undefined : oneLine(hint) };
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
