/**
 * flock(2) on a lock file, through the native `fs-ext` module, and the one
 * question that decides whether it can be trusted: is the directory on a
 * network filesystem? {@link CacheLock} (lock.ts) combines these with the
 * mkdir lock; this module knows nothing of the combination.
 *
 * @module
 */
import { constants, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, open, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { BlockfetchError } from '../errors.js';
import { errnoCode } from './file.js';

/** fs-ext's `flock`, the only function of it used. */
type FlockFunction = (fd: number, flags: 'exnb' | 'un', callback: (err: NodeJS.ErrnoException | null) => void) => void;

let flockFunction: FlockFunction | Error | undefined;

/**
 * fs-ext's `flock`, or the Error that loading it gave (a platform without
 * a prebuilt binary and no compiler, an install with scripts disabled).
 * Loaded once, lazily: an import would make the whole library fail to load
 * where the native module cannot, instead of falling back to the mkdir lock.
 *
 * @example
 * ```ts
 * const flock = loadFlock();
 * if (flock instanceof Error) console.log(`no flock here: ${flock.message}`);
 * ```
 */
export function loadFlock(): FlockFunction | Error {
  if (flockFunction === undefined) {
    try {
      const fsExt = createRequire(import.meta.url)('fs-ext') as { flock?: unknown };
      flockFunction = typeof fsExt.flock === 'function' ? (fsExt.flock as FlockFunction) : new Error('fs-ext has no flock function');
    } catch (err) {
      flockFunction = err instanceof Error ? err : new Error(String(err));
    }
  }
  return flockFunction;
}

/**
 * statfs(2) `f_type` values of the Linux filesystems on which flock cannot be
 * trusted to exclude a process on another host (linux/magic.h): NFS emulates
 * it with POSIX locks only if the mount and the server cooperate
 * (`local_lock=` can make it host-local), SMB/CIFS may keep it on the client,
 * and a FUSE filesystem (sshfs, s3fs, ...) implements it as it pleases.
 */
export const NETWORK_FILESYSTEM_TYPES: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x517b, 'smb'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x65735546, 'fuse'],
  [0x01021997, '9p'],
  [0x00c36400, 'ceph'],
  [0x5346414f, 'afs'],
]);

/**
 * Why flock alone must not be trusted for files in `directory`, or
 * `undefined` when it can: the name of the network filesystem, or, outside
 * Linux (where `f_type` values differ and are not listed), `'not linux'`.
 *
 * @example
 * ```ts
 * await untrustedFlockReason('/mnt/nfs/downloads'); // 'nfs'
 * await untrustedFlockReason('/home/me');           // undefined
 * ```
 */
export async function untrustedFlockReason(directory: string): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'not linux';
  const { type } = await statfs(directory);
  return NETWORK_FILESYSTEM_TYPES.get(type >>> 0);
}

/**
 * The flocks this process holds and has not released. ONE `exit` listener
 * serves them all: a listener per lock would pile up with the number of
 * caches open at once (Node warns past 10, and a warning raised by a real
 * leak would then go unnoticed).
 */
const heldAtExit = new Set<FlockFile>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const lock of heldAtExit) lock.removeAtExit();
  });
}

/**
 * An exclusive flock(2) held on a lock file, until {@link FlockFile.release}
 * or the death of the process: the kernel drops it with the last descriptor,
 * so a killed holder leaves nothing that blocks the next one.
 *
 * The file is opened with `O_NOFOLLOW | O_NONBLOCK` and without `O_TRUNC`:
 * a symlink planted at its path is refused (its target is never created or
 * touched), a FIFO cannot hang the open, and an existing file keeps its
 * bytes. Only its mtime is ever changed ({@link FlockFile.touch}).
 *
 * @example
 * ```ts
 * const held = await FlockFile.tryLock('/data/big.iso.blockfetch.flock', flock);
 * if (held === undefined) console.log('another process holds it');
 * else await held.release();
 * ```
 */
export class FlockFile {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #identity: Stats;
  readonly #flock: FlockFunction;
  #held = true;

  private constructor(path: string, handle: FileHandle, identity: Stats, flock: FlockFunction) {
    this.path = path;
    this.#handle = handle;
    this.#identity = identity;
    this.#flock = flock;
    heldAtExit.add(this);
    installExitHook();
  }

  /**
   * Removes the lock file if it is still the one this holder locked: called
   * from the process's `exit` hook for a lock never released (process.exit
   * after an error), which still holds the flock until the kernel drops it,
   * so that a finished download leaves only its target behind.
   */
  removeAtExit(): void {
    try {
      if (sameFile(lstatOrUndefinedSync(this.path), this.#identity)) unlinkSync(this.path);
    } catch {
      // Exiting anyway; a lock file left behind is harmless (the next holder reuses it).
    }
  }

  /**
   * Takes the flock on `path` without blocking: the lock; `'held'` when
   * another open file holds it; `'unsupported'` when the filesystem refuses
   * flock itself (ENOLCK from an NFS mount without a lock daemon, EOPNOTSUPP,
   * ...), so that a caller with another lock to fall back on can. Any other
   * failure (a symlink or a directory at `path`, permissions) is a
   * `BLOCKFETCH_LOCK_FAILED` error.
   */
  static async tryLock(path: string, flock: FlockFunction): Promise<FlockFile | 'held' | 'unsupported'> {
    // Each round loses only if the holder released (and removed the file)
    // between our open and our flock; a handful of rounds is plenty.
    for (let round = 0; round < 16; round++) {
      const handle = await openLockFile(path);
      let kept = false;
      try {
        const identity = await handle.stat();
        if (!identity.isFile()) throw lockFailed(path, 'it is not a regular file', undefined);
        try {
          await flockAsync(flock, handle.fd, 'exnb');
        } catch (err) {
          const code = errnoCode(err) ?? '';
          if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 'held';
          if (FLOCK_UNSUPPORTED.has(code)) {
            // Nobody can flock it on this filesystem, so it locks nothing; left
            // behind, its fresh mtime would make a mkdir-only locker back off.
            if (sameFile(await lstatOrUndefined(path), identity)) await unlink(path).catch(() => undefined);
            return 'unsupported';
          }
          throw lockFailed(path, 'flock failed', err);
        }
        // A releasing holder unlinks the file before it unlocks it, so the
        // file we locked may be gone (or replaced): then it locks nothing.
        if (sameFile(await lstatOrUndefined(path), identity)) {
          kept = true;
          return new FlockFile(path, handle, identity, flock);
        }
      } finally {
        if (!kept) await handle.close();
      }
    }
    throw lockFailed(path, 'the lock file kept being replaced while it was locked', undefined);
  }

  /**
   * Sets the lock file's mtime to now: the heartbeat that tells a process
   * which cannot use flock (see lock.ts) that this lock is alive.
   */
  async touch(): Promise<void> {
    const now = new Date();
    await this.#handle.utimes(now, now);
  }

  /**
   * Removes the lock file (if it is still ours), then unlocks and closes it.
   * The order matters: a waiter that locks the file after it was unlinked
   * finds it gone and starts over on a new one, so the removal cannot let two
   * holders in. Idempotent.
   */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    heldAtExit.delete(this);
    try {
      if (sameFile(await lstatOrUndefined(this.path), this.#identity)) {
        await unlink(this.path).catch((err: unknown) => {
          if (errnoCode(err) !== 'ENOENT') throw err;
        });
      }
      await flockAsync(this.#flock, this.#handle.fd, 'un');
    } catch (err) {
      throw lockFailed(this.path, 'releasing the lock failed', err);
    } finally {
      await this.#handle.close();
    }
  }
}

/** The errno codes with which a filesystem says it does not do flock at all. */
const FLOCK_UNSUPPORTED: ReadonlySet<string> = new Set(['ENOLCK', 'EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EINVAL']);

async function openLockFile(path: string): Promise<FileHandle> {
  const flags = constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  try {
    return await open(path, flags, 0o644);
  } catch (err) {
    // ELOOP (Linux, macOS) or EMLINK (FreeBSD): O_NOFOLLOW met a symlink.
    const code = errnoCode(err);
    if (code === 'ELOOP' || code === 'EMLINK') throw lockFailed(path, 'it is a symbolic link, which is never followed', err);
    throw lockFailed(path, 'opening the lock file failed', err);
  }
}

function flockAsync(flock: FlockFunction, fd: number, flags: 'exnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => {
    flock(fd, flags, (err) => (err === null ? resolve() : reject(err)));
  });
}

function sameFile(a: Stats | undefined, b: Stats): boolean {
  return a !== undefined && a.ino === b.ino && a.dev === b.dev;
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

function lstatOrUndefinedSync(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** A lock failure that is not "another process holds it". */
export function lockFailed(path: string, what: string, cause: unknown): BlockfetchError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new BlockfetchError('BLOCKFETCH_LOCK_FAILED', `cannot lock ${path}: ${what}${detail}`, cause === undefined ? {} : { cause });
}
