/**
 * One writer per cache, across processes: a lock taken with proper-lockfile.
 *
 * proper-lockfile creates `<path>.lock` (a directory: `mkdir` is atomic on
 * every filesystem, NFS included) and refreshes its mtime every `updateMs`.
 * A lock whose mtime is older than `staleMs` belonged to a process that died
 * (kill -9, power cut) and is taken over. With the defaults (5 s / 1 s) a
 * killed download's cache can be opened again at most 5 s after it died.
 *
 * flock(2) (fs-ext) would be released by the kernel at once when its holder
 * dies, but its semantics differ between local and network filesystems; the
 * mkdir + mtime scheme works the same everywhere, at the price of waiting
 * `staleMs` after a kill -9.
 */
import lockfile from 'proper-lockfile';
import { AbortedError, BlockfetchError, InvalidArgumentError, LockHeldError } from '../errors.js';
import { errnoCode } from './file.js';

/** Options of {@link CacheLock.acquire}. */
export interface CacheLockOptions {
  /**
   * `'fail'`: reject at once with a {@link LockHeldError} if another holder
   * has the lock. `'wait'`: poll until it is free, up to `waitTimeoutMs` or
   * until `signal` aborts.
   * @default 'fail'
   */
  readonly mode?: 'fail' | 'wait';
  /**
   * A lock not refreshed for this long is stale (its holder died) and is
   * taken over. At least 2000 (proper-lockfile's minimum).
   * @default 5000
   */
  readonly staleMs?: number;
  /** How often the holder refreshes the lock; at least 1000 and at most `staleMs / 2`. @default 1000 */
  readonly updateMs?: number;
  /** In `'wait'` mode, how long to wait before giving up with a {@link LockHeldError}. @default 60000 */
  readonly waitTimeoutMs?: number;
  /** In `'wait'` mode, the time between attempts. @default 250 */
  readonly pollMs?: number;
  /** Stops waiting; the promise rejects with an {@link AbortedError}. */
  readonly signal?: AbortSignal;
  /**
   * Called (at most once) if the lock is lost while held: its directory was
   * removed or could not be refreshed for `staleMs`, so another process may
   * now hold it. The error is also kept in {@link CacheLock.compromised}.
   */
  readonly onCompromised?: (err: BlockfetchError) => void;
}

/** The defaults of {@link CacheLockOptions}. */
export const defaultCacheLockOptions = Object.freeze({
  mode: 'fail' as const,
  staleMs: 5000,
  updateMs: 1000,
  waitTimeoutMs: 60_000,
  pollMs: 250,
});

/**
 * A held cache lock. Release it with {@link CacheLock.release}; a process that
 * exits normally releases it too (proper-lockfile's exit hook), and one that
 * is killed leaves it to go stale.
 *
 * @example
 * ```ts
 * const lock = await CacheLock.acquire('/data/big.iso');   // LockHeldError if in use
 * try { ... } finally { await lock.release(); }
 * ```
 */
export class CacheLock {
  /** The path that is locked (the lock itself is `<path>.lock`). */
  readonly path: string;
  #release: (() => Promise<void>) | undefined;
  #compromised: BlockfetchError | undefined;

  private constructor(path: string) {
    this.path = path;
  }

  /** Takes the lock on `path` (which need not exist). */
  static async acquire(path: string, options: CacheLockOptions = {}): Promise<CacheLock> {
    const o = resolveLockOptions(options);
    const lock = new CacheLock(path);
    const started = Date.now();
    for (;;) {
      if (o.signal?.aborted) throw new AbortedError(`waiting for the lock on ${path} was aborted`, { cause: o.signal.reason });
      try {
        lock.#release = await lockfile.lock(path, {
          stale: o.staleMs,
          update: o.updateMs,
          realpath: false, // the data file may not exist yet when a cache is created
          retries: 0, // we poll ourselves so that an AbortSignal can stop the wait
          onCompromised: (err: Error) => lock.#onCompromised(err, o.onCompromised),
        });
        return lock;
      } catch (err) {
        if (errnoCode(err) !== 'ELOCKED') {
          throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot lock ${path}: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
        }
        const waited = Date.now() - started;
        if (o.mode === 'fail' || waited >= o.waitTimeoutMs) {
          throw new LockHeldError(path, { cause: err });
        }
        await sleep(Math.min(o.pollMs, o.waitTimeoutMs - waited), o.signal);
      }
    }
  }

  /** The error recorded if the lock was lost while held, else undefined. */
  get compromised(): BlockfetchError | undefined {
    return this.#compromised;
  }

  /** Releases the lock. Idempotent; never throws for a lock that was already lost. */
  async release(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    if (release === undefined) return;
    try {
      await release();
    } catch (err) {
      // A compromised lock is no longer ours to remove (ERELEASED/ENOENT).
      if (this.#compromised === undefined) throw err;
    }
  }

  #onCompromised(err: Error, listener: ((err: BlockfetchError) => void) | undefined): void {
    // proper-lockfile's default is to throw here, from a timer: an uncaught
    // exception that kills the process. Record it instead; the cache turns it
    // into an error on its next operation.
    if (this.#compromised !== undefined) return;
    this.#compromised = new BlockfetchError('BLOCKFETCH_LOCKED', `${this.path}: the cache lock was lost while held (${err.message})`, {
      cause: err,
      hint: 'another process may be writing this cache now; stop the other download, then resume',
    });
    listener?.(this.#compromised);
  }
}

/** {@link CacheLockOptions} with every default filled in and checked. */
interface ResolvedLockOptions {
  readonly mode: 'fail' | 'wait';
  readonly staleMs: number;
  readonly updateMs: number;
  readonly waitTimeoutMs: number;
  readonly pollMs: number;
  readonly signal: AbortSignal | undefined;
  readonly onCompromised: ((err: BlockfetchError) => void) | undefined;
}

function resolveLockOptions(options: CacheLockOptions): ResolvedLockOptions {
  const d = defaultCacheLockOptions;
  const o: ResolvedLockOptions = {
    mode: options.mode ?? d.mode,
    staleMs: options.staleMs ?? d.staleMs,
    updateMs: options.updateMs ?? d.updateMs,
    waitTimeoutMs: options.waitTimeoutMs ?? d.waitTimeoutMs,
    pollMs: options.pollMs ?? d.pollMs,
    signal: options.signal,
    onCompromised: options.onCompromised,
  };
  if (o.mode !== 'fail' && o.mode !== 'wait') {
    throw new InvalidArgumentError(`lock option mode must be 'fail' or 'wait', got ${String(o.mode)} (${typeof o.mode})`);
  }
  // proper-lockfile silently raises staleMs below 2000 and updateMs below
  // 1000; refuse instead, so the documented recovery time is the real one.
  const minimums = { staleMs: 2000, updateMs: 1000, waitTimeoutMs: 0, pollMs: 1 } as const;
  for (const [key, min] of Object.entries(minimums) as Array<[keyof typeof minimums, number]>) {
    const value = o[key];
    if (!Number.isSafeInteger(value) || value < min) {
      throw new InvalidArgumentError(`lock option ${key} must be a whole number of ms >= ${min}, got ${String(value)} (${typeof value})`);
    }
  }
  if (o.updateMs > o.staleMs / 2) {
    throw new InvalidArgumentError(`lock option updateMs (${o.updateMs}) must be at most half of staleMs (${o.staleMs})`);
  }
  return o;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError('waiting for the cache lock was aborted', { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
