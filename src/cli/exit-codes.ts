/**
 * The `blockfetch` command's exit codes, in one place.
 *
 * These numbers are a stable interface: scripts branch on them (retry on 3,
 * alert on 5). They are documented in `docs/cli.md` and, per error code, in
 * `docs/errors.md`. Add new ones at the end; never renumber.
 */
import { BlockfetchError, type ErrorCode } from '../errors.js';

/** Every exit code the command uses, by meaning. */
export const ExitCode = Object.freeze({
  /** The download (or inspect, or verify) succeeded. */
  SUCCESS: 0,
  /** Something failed that has no more specific code (a disk write error, an unexpected bug). */
  FAILURE: 1,
  /** The command line was wrong: unknown option, bad value, missing URL, target exists without --force. */
  USAGE: 2,
  /** The network or the server failed and retries ran out. What was downloaded is kept: run it again to resume. */
  NETWORK: 3,
  /** The remote file changed since the download started. Use --restart to fetch the new revision. */
  REMOTE_CHANGED: 4,
  /** The downloaded (or verified) file does not have the expected digest. */
  INTEGRITY: 5,
  /** Not enough free space on the target's filesystem. */
  NO_SPACE: 6,
  /** Another blockfetch process is downloading to the same target. */
  LOCKED: 7,
  /** The partial download's index file is corrupt, foreign or of another version. */
  INDEX: 8,
  /** Interrupted by SIGINT (Ctrl-C); progress was saved. 128 + 2, as shells do. */
  INTERRUPTED: 130,
  /**
   * `--stdout`: the reader closed the pipe before the end
   * (`blockfetch URL --stdout | head`). 128 + 13, what SIGPIPE would give;
   * nothing is printed, as for any program whose output stopped being read.
   * With `-o FILE --stdout` the download stops too, its partial file kept
   * (resumable), and one line says where.
   */
  STDOUT_CLOSED: 141,
  /** Stopped by SIGTERM; progress was saved. 128 + 15, as shells do. */
  TERMINATED: 143,
} as const);

/** One of the numbers in {@link ExitCode}. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The exit code for each error code. A `Record` over the whole `ErrorCode`
 * union, so adding a code to `src/errors.ts` without deciding its exit code
 * here fails to type-check.
 */
export const exitCodeByErrorCode: Readonly<Record<ErrorCode, ExitCodeValue>> = Object.freeze({
  BLOCKFETCH_INVALID_ARGUMENT: ExitCode.USAGE,
  BLOCKFETCH_TARGET_EXISTS: ExitCode.USAGE,
  BLOCKFETCH_UNSAFE_PATH: ExitCode.USAGE,

  BLOCKFETCH_NOT_ENOUGH_SPACE: ExitCode.NO_SPACE,
  BLOCKFETCH_ALLOCATION_FAILED: ExitCode.NO_SPACE,
  BLOCKFETCH_INDEX_CORRUPT: ExitCode.INDEX,
  BLOCKFETCH_INDEX_FOREIGN: ExitCode.INDEX,
  BLOCKFETCH_INDEX_VERSION: ExitCode.INDEX,
  BLOCKFETCH_INDEX_MISMATCH: ExitCode.INDEX,
  BLOCKFETCH_CACHE_MISSING: ExitCode.INDEX,
  BLOCKFETCH_CACHE_CLOSED: ExitCode.FAILURE,
  BLOCKFETCH_LOCKED: ExitCode.LOCKED,
  BLOCKFETCH_LOCK_FAILED: ExitCode.FAILURE,
  BLOCKFETCH_UNCACHED_RANGE: ExitCode.FAILURE,
  BLOCKFETCH_INVALID_WRITE: ExitCode.FAILURE,
  BLOCKFETCH_DISK_WRITE: ExitCode.FAILURE,
  BLOCKFETCH_DISK_READ: ExitCode.FAILURE,

  BLOCKFETCH_REMOTE_CHANGED: ExitCode.REMOTE_CHANGED,
  // Exit 3 says "run it again: it resumes", so only retryable codes map to
  // it; a code that retrying cannot fix (a 404, no ranges, a refused
  // redirect, an unknown host, a rejected certificate) is 1.
  BLOCKFETCH_RANGE_NOT_SUPPORTED: ExitCode.FAILURE,
  BLOCKFETCH_BAD_RESPONSE: ExitCode.NETWORK,
  BLOCKFETCH_UNUSABLE_RESPONSE: ExitCode.FAILURE,
  BLOCKFETCH_HTTP_STATUS: ExitCode.FAILURE,
  BLOCKFETCH_HTTP_TRANSIENT: ExitCode.NETWORK,
  BLOCKFETCH_NETWORK: ExitCode.NETWORK,
  BLOCKFETCH_HOST_NOT_FOUND: ExitCode.FAILURE,
  BLOCKFETCH_TLS: ExitCode.FAILURE,
  BLOCKFETCH_BODY_LENGTH: ExitCode.NETWORK,
  BLOCKFETCH_TIMEOUT: ExitCode.NETWORK,
  BLOCKFETCH_REDIRECT: ExitCode.FAILURE,
  BLOCKFETCH_MIRRORS_DISAGREE: ExitCode.USAGE,
  BLOCKFETCH_HUB_AUTH: ExitCode.FAILURE,
  BLOCKFETCH_HUB_NOT_FOUND: ExitCode.FAILURE,

  BLOCKFETCH_RETRIES_EXHAUSTED: ExitCode.NETWORK,
  BLOCKFETCH_DIGEST_MISMATCH: ExitCode.INTEGRITY,
  BLOCKFETCH_ABORTED: ExitCode.INTERRUPTED,
  BLOCKFETCH_INTERNAL: ExitCode.FAILURE,
});

/**
 * The exit code for a thrown value. A {@link BlockfetchError} maps by its
 * code; `RETRIES_EXHAUSTED` is looked through to its cause, so that a run
 * whose last failure was "remote changed" or "disk full" says so. A Node
 * `ENOSPC`/`EDQUOT` anywhere in the cause chain is {@link ExitCode.NO_SPACE}.
 * Anything else is {@link ExitCode.FAILURE}.
 *
 * Since each code has one meaning, the table alone decides: a 404 is
 * `BLOCKFETCH_HTTP_STATUS` (1), a 503 `BLOCKFETCH_HTTP_TRANSIENT` (3).
 *
 * @example
 * ```ts
 * exitCodeFor(new HttpStatusError(404, url, 'Not Found')) // 1
 * exitCodeFor(new LockHeldError(path))                    // 7
 * ```
 */
export function exitCodeFor(err: unknown): ExitCodeValue {
  if (hasNoSpaceCause(err)) return ExitCode.NO_SPACE;
  if (!(err instanceof BlockfetchError)) return ExitCode.FAILURE;
  if (err.code === 'BLOCKFETCH_RETRIES_EXHAUSTED') {
    const inner = err.cause instanceof BlockfetchError ? exitCodeFor(err.cause) : ExitCode.FAILURE;
    // A cause that is itself a transient failure still means "network".
    return inner !== ExitCode.FAILURE && inner !== ExitCode.USAGE ? inner : ExitCode.NETWORK;
  }
  return exitCodeByErrorCode[err.code];
}

function hasNoSpaceCause(err: unknown): boolean {
  // Bounded walk: a cause chain is short; a cycle must not hang the CLI.
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    current = current.cause;
  }
  return false;
}

/**
 * The order of severity of the failure codes, most severe first: what a
 * run of several files exits with when they failed differently (see
 * {@link mostSevereExitCode}, documented in docs/cli.md).
 *
 * The rule: the harder a failure is to fix, the more severe. Disk and
 * index trouble (6, 8) first, a wrong digest (5) and a changed remote (4)
 * next (each needs a decision); then another process's lock (7), a usage
 * problem (2, e.g. a target that exists) and a plain failure (1, a 404).
 * Network trouble (3) is the least severe: it is the only code that says
 * "run the same command again and it resumes", so a set exits 3 only when
 * every failure in it would be fixed by running it again.
 */
export const EXIT_CODE_SEVERITY: readonly ExitCodeValue[] = Object.freeze([
  ExitCode.NO_SPACE,
  ExitCode.INDEX,
  ExitCode.INTEGRITY,
  ExitCode.REMOTE_CHANGED,
  ExitCode.LOCKED,
  ExitCode.USAGE,
  ExitCode.FAILURE,
  ExitCode.NETWORK,
]);

/**
 * The exit code of a set whose files failed with `codes`: the most severe
 * by {@link EXIT_CODE_SEVERITY}; 0 when there is none. A code outside the
 * list (an interruption) wins over all: the run did not finish.
 *
 * @example
 * ```ts
 * mostSevereExitCode([3, 1, 3]) // 1: a 404 is not fixed by running again
 * mostSevereExitCode([])        // 0
 * ```
 */
export function mostSevereExitCode(codes: readonly ExitCodeValue[]): ExitCodeValue {
  let worst: ExitCodeValue = ExitCode.SUCCESS;
  let worstRank = Infinity;
  for (const code of codes) {
    if (code === ExitCode.SUCCESS) continue;
    const rank = EXIT_CODE_SEVERITY.indexOf(code);
    const effective = rank < 0 ? -1 : rank;
    if (effective < worstRank) {
      worst = code;
      worstRank = effective;
    }
  }
  return worst;
}
