/**
 * One writer per cache, across processes.
 *
 * **The primary lock is flock(2)** (through the native `fs-ext` module) on
 * `<path>.flock`, a plain file next to the cache. The kernel drops it the
 * moment its holder dies, so a download killed with `kill -9` can be resumed
 * at once. Decisions, and why:
 *
 * - *Which file.* Not the data file: it does not exist yet when a cache is
 *   created, and `--restart`/`overwrite` replace it, which would leave the
 *   lock on a deleted inode. Not `<path>.lock`: that name is the mkdir lock's
 *   directory (below), and an old one left behind must not get in the way.
 *   The file is opened with `O_NOFOLLOW` (a planted symlink is refused, its
 *   target never created or touched), `O_NONBLOCK` (a planted FIFO cannot
 *   hang the open) and never `O_TRUNC`; nothing is ever written to it.
 * - *Removal.* `release()` unlinks the file while it still holds the flock,
 *   then unlocks and closes it, so a finished download leaves no lock file
 *   behind. Removing a lock file usually races with a new locker (it may lock
 *   the unlinked inode while a third process creates and locks a new one);
 *   here every locker, after its flock succeeds, checks that the path still
 *   names the inode it locked and starts over if not, which closes the race.
 *   A killed holder leaves the file; the next holder reuses it.
 * - *Waiting.* `'wait'` polls a non-blocking `flock(LOCK_EX | LOCK_NB)` every
 *   `pollMs`: a blocking flock would hold a libuv thread for as long as the
 *   other download runs, and could not be stopped by an AbortSignal.
 *
 * **The mkdir lock** (proper-lockfile: `<path>.lock` is a directory, `mkdir`
 * is atomic everywhere, NFS included; its holder refreshes its mtime every
 * `updateMs`, and one older than `staleMs` belonged to a dead process and is
 * taken over) is kept where flock cannot be trusted:
 *
 * - on a network filesystem (NFS, SMB/CIFS, FUSE, ...: `statfs` f_type, see
 *   flock.ts) flock may exclude only processes on the same host, so a lock
 *   there takes the flock AND the mkdir lock (`backend: 'both'`); a resume
 *   after `kill -9` waits for `staleMs` there, as it always did;
 * - outside Linux, whose f_type values are not listed, likewise `'both'`;
 * - where `fs-ext` cannot be loaded, or the filesystem refuses flock itself
 *   (ENOLCK: an NFS mount without a lock daemon), the mkdir lock alone
 *   (`'mkdir'`): a download must not fail for want of a better lock.
 *
 * **Two kinds of holders on one local filesystem** (one process with fs-ext,
 * one without, or an older blockfetch that only knows the directory) must not
 * both think they hold the lock. Each publishes itself first and only then
 * looks for the other, so of two that start together at least one sees the
 * other and backs off:
 *
 * - a flock holder takes the flock, sets the lock file's mtime to now (and
 *   keeps doing so every `updateMs`), then treats a `<path>.lock` directory
 *   refreshed within `staleMs` as a live holder (it backs off) and removes
 *   an older one (a dead holder's: it must not block the flock path);
 * - a mkdir-only holder takes the directory, then treats a lock file whose
 *   mtime is within `staleMs` as a live flock holder and backs off.
 *
 * An older blockfetch (directory only) that starts while a flock holder
 * runs cannot know of the flock file; running two versions on one download
 * at the same moment is the one case this does not cover.
 *
 * **Losing the lock.** A flock cannot be lost while its descriptor is open,
 * so `onCompromised` is never called for `'flock'`. The mkdir lock can: its
 * directory removed, or not refreshed within `staleMs` (a suspended
 * process), and then it is reported through `onCompromised` as before.
 *
 * @module
 */
import { lstat, rmdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { debuglog } from 'node:util';
import { AbortedError, BlockfetchError, LockHeldError, InvalidArgumentError } from '../errors.js';
import { oneOf, wholeNumber } from '../validate.js';
import { errnoCode } from './file.js';
import { FlockFile, loadFlock, lockFailed, untrustedFlockReason } from './flock.js';

const debug = debuglog('blockfetch');

/**
 * How a {@link CacheLock} is taken: `'flock'` (flock on `<path>.flock`),
 * `'mkdir'` (proper-lockfile's `<path>.lock` directory), or `'both'`.
 */
export type CacheLockBackend = 'flock' | 'mkdir' | 'both';

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
   * A mkdir lock not refreshed for this long is stale (its holder died) and
   * is taken over. At least 2000 (proper-lockfile's minimum). A flock needs
   * no stale time: the kernel drops it when its holder dies.
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
   * Called (at most once) if the mkdir lock is lost while held: its directory
   * was removed or could not be refreshed for `staleMs`, so another process
   * may now hold it. The error is also kept in {@link CacheLock.compromised}.
   * Never called for a `'flock'` lock, which cannot be lost while held.
   */
  readonly onCompromised?: (err: BlockfetchError) => void;
  /**
   * `'auto'` chooses by the filesystem (see the module comment): `'flock'`
   * on a local Linux filesystem, `'both'` on a network one or outside Linux,
   * `'mkdir'` when fs-ext cannot be loaded. The others force one, for tests
   * and for a filesystem that lies about itself. Without this option the
   * environment variable `BLOCKFETCH_LOCK_BACKEND` may set it (for the
   * command, which has no flag for it).
   * @default 'auto'
   */
  readonly backend?: 'auto' | CacheLockBackend;
}

/** The defaults of {@link CacheLockOptions}. */
export const defaultCacheLockOptions = Object.freeze({
  mode: 'fail' as const,
  staleMs: 5000,
  updateMs: 1000,
  waitTimeoutMs: 60_000,
  pollMs: 250,
  backend: 'auto' as const,
});

/**
 * A held cache lock. Release it with {@link CacheLock.release}. A process
 * that dies holding a `'flock'` lock releases it at that moment (the kernel
 * does); a `'mkdir'` lock of a killed process goes stale after `staleMs`.
 *
 * @example
 * ```ts
 * const lock = await CacheLock.acquire('/data/big.iso');   // LockHeldError if in use
 * try { ... } finally { await lock.release(); }
 * ```
 */
export class CacheLock {
  /** The path that is locked (the locks themselves are `<path>.flock` and/or `<path>.lock/`). */
  readonly path: string;
  /** How this lock was taken. */
  readonly backend: CacheLockBackend;
  #flock: FlockFile | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #releaseDirectory: (() => Promise<void>) | undefined;
  #compromised: BlockfetchError | undefined;

  private constructor(path: string, backend: CacheLockBackend) {
    this.path = path;
    this.backend = backend;
  }

  /**
   * Takes the lock on `path` (which need not exist). Rejects with a
   * {@link LockHeldError} if another holder has it (after `waitTimeoutMs` in
   * `'wait'` mode), an {@link AbortedError} on abort, and a
   * `BLOCKFETCH_LOCK_FAILED` error for any other failure.
   */
  static async acquire(path: string, options: CacheLockOptions = {}): Promise<CacheLock> {
    const o = resolveLockOptions(options);
    let backend = await chooseBackend(path, o.backend);
    const started = Date.now();
    for (;;) {
      if (o.signal?.aborted) throw new AbortedError(`waiting for the lock on ${path} was aborted`, { cause: o.signal.reason });
      const lock = new CacheLock(path, backend);
      const taken = await lock.#tryTake(o);
      if (taken === 'unsupported') {
        // The filesystem refuses flock itself. A chosen backend gives way to
        // the mkdir lock, which works everywhere; a forced one is an error.
        if (o.backend !== 'auto') throw lockFailed(path, `the filesystem does not support flock, which the '${backend}' lock needs`, undefined);
        debug('lock %s: the filesystem refuses flock; using the mkdir lock', path);
        backend = 'mkdir';
        continue;
      }
      if (taken) return lock;
      const waited = Date.now() - started;
      if (o.mode === 'fail' || waited >= o.waitTimeoutMs) throw new LockHeldError(path);
      await sleep(Math.min(o.pollMs, o.waitTimeoutMs - waited), o.signal);
    }
  }

  /** The error recorded if the lock was lost while held, else undefined. */
  get compromised(): BlockfetchError | undefined {
    return this.#compromised;
  }

  /** Releases the lock. Idempotent; never throws for a lock that was already lost. */
  async release(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    const releaseDirectory = this.#releaseDirectory;
    this.#releaseDirectory = undefined;
    const flock = this.#flock;
    this.#flock = undefined;
    try {
      await releaseDirectory?.();
    } catch (err) {
      // A compromised lock is no longer ours to remove (ERELEASED/ENOENT).
      if (this.#compromised === undefined) {
        await flock?.release().catch(() => undefined);
        throw lockFailed(this.path, 'releasing the lock directory failed', err);
      }
    }
    await flock?.release();
  }

  /** One attempt: true when held, false when another holder has it, `'unsupported'` when flock is refused. */
  async #tryTake(o: ResolvedLockOptions): Promise<boolean | 'unsupported'> {
    if (this.backend !== 'mkdir') {
      const flock = loadFlock();
      if (flock instanceof Error) throw lockFailed(this.path, `the ${this.backend} lock needs fs-ext, which could not be loaded`, flock);
      const taken = await FlockFile.tryLock(flockPath(this.path), flock);
      if (taken === 'held') return false;
      if (taken === 'unsupported') return taken;
      this.#flock = taken;
    }
    try {
      if (this.backend === 'flock') {
        await this.#flock?.touch(); // publish first, then look (module comment)
        if (await directoryLockIsLive(this.path, o.staleMs)) {
          await this.release();
          return false;
        }
        this.#heartbeat = setInterval(() => {
          this.#flock?.touch().catch((err: unknown) => debug('lock %s: refreshing the lock file failed: %O', this.path, err));
        }, o.updateMs).unref();
        return true;
      }
      if (!(await this.#takeDirectory(o))) {
        await this.release();
        return false;
      }
      if (this.backend === 'mkdir' && (await flockFileIsLive(this.path, o.staleMs))) {
        await this.release();
        return false;
      }
      return true;
    } catch (err) {
      await this.release().catch(() => undefined);
      throw err;
    }
  }

  async #takeDirectory(o: ResolvedLockOptions): Promise<boolean> {
    try {
      // Loaded here, not at the top: a flock-only lock (local disks on Linux)
      // never needs it, and loading it (with graceful-fs) took 3.5 ms of
      // the command's start-up in a profile.
      const { default: lockfile } = await import('proper-lockfile');
      this.#releaseDirectory = await lockfile.lock(this.path, {
        stale: o.staleMs,
        update: o.updateMs,
        realpath: false, // the data file may not exist yet when a cache is created
        retries: 0, // we poll ourselves so that an AbortSignal can stop the wait
        onCompromised: (err: Error) => this.#onCompromised(err, o.onCompromised),
      });
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ELOCKED') return false;
      throw lockFailed(this.path, 'taking the lock directory failed', err);
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

/** The file a `'flock'` or `'both'` lock on `path` locks. */
function flockPath(path: string): string {
  return `${path}.flock`;
}

async function chooseBackend(path: string, requested: 'auto' | CacheLockBackend): Promise<CacheLockBackend> {
  if (requested !== 'auto') return requested;
  const flock = loadFlock();
  if (flock instanceof Error) {
    debug('lock %s: fs-ext could not be loaded (%s); using the mkdir lock', path, flock.message);
    return 'mkdir';
  }
  let reason: string | undefined;
  try {
    reason = await untrustedFlockReason(dirname(resolve(path)));
  } catch (err) {
    throw lockFailed(path, 'cannot tell which filesystem holds it', err);
  }
  if (reason === undefined) return 'flock';
  debug('lock %s: flock alone cannot be trusted here (%s); taking the mkdir lock too', path, reason);
  return 'both';
}

/**
 * Whether a mkdir-only holder is alive: `<path>.lock` refreshed within
 * `staleMs`. An older one is a dead holder's and is removed (as
 * proper-lockfile itself would), so it blocks nobody.
 */
async function directoryLockIsLive(path: string, staleMs: number): Promise<boolean> {
  const directory = `${path}.lock`;
  const mtimeMs = await mtimeOrUndefined(directory);
  if (mtimeMs === undefined) return false;
  if (mtimeMs > Date.now() - staleMs) return true;
  // ENOENT: removed meanwhile; ENOTEMPTY/ENOTDIR: not ours to remove, and
  // stale all the same.
  await rmdir(directory).catch((err: unknown) => debug('lock %s: cannot remove the stale %s: %O', path, directory, err));
  return false;
}

/** Whether a flock holder is alive, as a process without flock can tell: its lock file's mtime within `staleMs`. */
async function flockFileIsLive(path: string, staleMs: number): Promise<boolean> {
  const mtimeMs = await mtimeOrUndefined(flockPath(path));
  return mtimeMs !== undefined && mtimeMs > Date.now() - staleMs;
}

async function mtimeOrUndefined(path: string): Promise<number | undefined> {
  try {
    return (await lstat(path)).mtimeMs;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw lockFailed(path, 'cannot look at it', err);
  }
}

/** {@link CacheLockOptions} with every default filled in and checked. */
interface ResolvedLockOptions {
  readonly mode: 'fail' | 'wait';
  readonly staleMs: number;
  readonly updateMs: number;
  readonly waitTimeoutMs: number;
  readonly pollMs: number;
  readonly backend: 'auto' | CacheLockBackend;
  readonly signal: AbortSignal | undefined;
  readonly onCompromised: ((err: BlockfetchError) => void) | undefined;
}

function resolveLockOptions(options: CacheLockOptions): ResolvedLockOptions {
  const d = defaultCacheLockOptions;
  // proper-lockfile silently raises staleMs below 2000 and updateMs below
  // 1000; refuse instead, so the documented recovery time is the real one.
  const ms = (name: string, value: number, min: number): number => wholeNumber('lock', name, value, { min, unit: 'ms' });
  const o: ResolvedLockOptions = {
    mode: oneOf('lock', 'mode', options.mode ?? d.mode, ['fail', 'wait'] as const),
    staleMs: ms('staleMs', options.staleMs ?? d.staleMs, 2000),
    updateMs: ms('updateMs', options.updateMs ?? d.updateMs, 1000),
    waitTimeoutMs: ms('waitTimeoutMs', options.waitTimeoutMs ?? d.waitTimeoutMs, 0),
    pollMs: ms('pollMs', options.pollMs ?? d.pollMs, 1),
    backend: resolveBackend(options.backend),
    signal: options.signal,
    onCompromised: options.onCompromised,
  };
  if (o.updateMs > o.staleMs / 2) {
    throw new InvalidArgumentError(`lock option updateMs (${o.updateMs}) must be at most half of staleMs (${o.staleMs})`);
  }
  return o;
}

const BACKENDS = ['auto', 'flock', 'mkdir', 'both'] as const;

function resolveBackend(backend: CacheLockOptions['backend']): 'auto' | CacheLockBackend {
  if (backend !== undefined) return oneOf('lock', 'backend', backend, BACKENDS);
  const fromEnvironment = process.env['BLOCKFETCH_LOCK_BACKEND'];
  if (fromEnvironment === undefined || fromEnvironment === '') return defaultCacheLockOptions.backend;
  return oneOf('lock', 'backend (from BLOCKFETCH_LOCK_BACKEND)', fromEnvironment, BACKENDS);
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
