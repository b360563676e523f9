/**
 * The file abstraction the cache does its I/O through: the Go
 * `CacheFileReadWriter`, made asynchronous, plus the few directory operations
 * an atomic index replacement needs.
 *
 * Everything in the cache that touches the disk goes through these two
 * interfaces, so a test can hand in files that lose unsynced writes at a
 * simulated power cut (see `test/helpers/crash-fs.ts`) and check that the
 * durability order holds.
 */
import { lstat, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { constants, existsSync, write as writeCallback, writevSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { BlockfetchError } from '../errors.js';

/**
 * A file read and written at explicit offsets: the cache's data file, or the
 * temporary file an index is written to.
 *
 * Writes are NOT durable until {@link CacheFileReadWriter.sync} resolves; an
 * implementation (and the crash test's fake) may lose any of them before that.
 */
export interface CacheFileReadWriter {
  /** The file's path, for messages. */
  readonly name: string;
  /**
   * Reads up to `buffer.length` bytes at `position` into `buffer`. Resolves to
   * the number of bytes read, which is less only at the end of the file.
   */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /** Writes all of `data` at `position` (looping over short writes). */
  write(data: Uint8Array, position: number): Promise<void>;
  /**
   * Writes `parts`, one after another, from `position`, as one write where
   * the system has one (`pwritev`): what a caller with several adjacent
   * chunks uses instead of copying them together. Optional: without it the
   * cache joins the parts and calls {@link CacheFileReadWriter.write}.
   */
  writev?(parts: readonly Uint8Array[], position: number): Promise<void>;
  /**
   * {@link CacheFileReadWriter.write}, except that `data` is the caller's
   * again as soon as this returns, before the promise settles: the bytes
   * were handed to the system (or copied) during the call. Optional: for
   * callers that reuse their memory at once and would otherwise copy first.
   */
  writeNow?(data: Uint8Array, position: number): Promise<void>;
  /** Makes every write that resolved before this call durable (fsync). */
  sync(): Promise<void>;
  /** Sets the file's length to exactly `length` bytes. */
  truncate(length: number): Promise<void>;
  /** The file's current length in bytes. */
  size(): Promise<number>;
  /** Closes the file. Calling it again does nothing. */
  close(): Promise<void>;
}

/**
 * The directory operations an atomic, durable replacement of a small file
 * needs: create a file, rename it over another, make the rename durable.
 * {@link nodeFileSystem} is the real one; tests pass a fake.
 */
export interface CacheFileSystem {
  /** Opens an existing file for reading and writing. Rejects with `ENOENT` if it does not exist. */
  openExisting(path: string): Promise<CacheFileReadWriter>;
  /**
   * Creates `path` anew and opens it for reading and writing: whatever was
   * there (a leftover file, or a symbolic link, removed without following
   * it) is replaced by a new empty file, created with `O_EXCL | O_NOFOLLOW`.
   */
  create(path: string): Promise<CacheFileReadWriter>;
  /**
   * Reads a whole (small) file. Rejects with `ENOENT` if it does not exist,
   * and with `EFBIG` (without reading it) if it is larger than `maxBytes`.
   */
  readFile(path: string, maxBytes: number): Promise<Uint8Array>;
  /** Renames `from` to `to`, replacing `to` atomically. Durable only after {@link CacheFileSystem.syncDir}. */
  rename(from: string, to: string): Promise<void>;
  /** Removes `path`; does nothing if it does not exist. */
  remove(path: string): Promise<void>;
  /** Makes the directory's entries (creations, renames, removals) durable: fsync of the directory. */
  syncDir(dir: string): Promise<void>;
}

/**
 * A {@link CacheFileReadWriter} over a `node:fs/promises` `FileHandle`.
 *
 * @example
 * ```ts
 * const file = await NodeCacheFile.open('/data/big.iso');
 * await file.write(new Uint8Array([1, 2, 3]), 4096);
 * await file.sync();
 * await file.close();
 * ```
 */
export class NodeCacheFile implements CacheFileReadWriter {
  /** The file's path, for messages. */
  readonly name: string;
  readonly #handle: FileHandle;
  /** Writes issued on the raw fd and not yet finished: close() waits for them (FileHandle cannot see them). */
  readonly #writes = new Set<Promise<number>>();
  #closed = false;

  /** Wraps an open handle; `name` is its path. Prefer {@link NodeCacheFile.open}. */
  constructor(handle: FileHandle, name: string) {
    this.#handle = handle;
    this.name = name;
  }

  /**
   * Opens `path` for reading and writing. With `create: true` the file is
   * created if missing (and never truncated); with `exclusive: true` too it
   * must not exist yet (`EEXIST` otherwise); without `create` a missing file
   * rejects with the `ENOENT` error from `open`.
   *
   * A symbolic link at `path` is never followed (`O_NOFOLLOW`), and what was
   * opened must be a regular file (checked with fstat on the open
   * descriptor, so nothing can be swapped in between): either is a
   * `BLOCKFETCH_UNSAFE_PATH` error. A link planted in a shared directory
   * therefore never makes the cache write through it, and a FIFO or a device
   * is never written to.
   */
  static async open(
    path: string,
    options: { readonly create?: boolean; readonly exclusive?: boolean; readonly truncate?: boolean } = {},
  ): Promise<NodeCacheFile> {
    let flags = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;
    if (options.create === true) flags |= constants.O_CREAT;
    if (options.create === true && options.exclusive === true) flags |= constants.O_EXCL;
    if (options.truncate === true) flags |= constants.O_TRUNC;
    return new NodeCacheFile(await openRegularFile(path, flags), path);
  }

  /** {@inheritDoc CacheFileReadWriter.read} */
  async read(buffer: Uint8Array, position: number): Promise<number> {
    // A single read may return fewer bytes than asked for before the end of
    // the file (the contract only promises "up to"): loop until full or EOF.
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await this.#handle.read(buffer, done, buffer.length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  /**
   * {@inheritDoc CacheFileReadWriter.write}
   *
   * On the download's hot path (one call per received chunk), so it uses the
   * callback `fs.write` on the handle's fd: measured on 1 GiB in 64 KiB
   * writes, the event loop was busy 115-147 ms with it against 192-290 ms
   * with `FileHandle.write`, for the same wall time. `close()` waits for these
   * writes, as FileHandle would for its own.
   */
  async write(data: Uint8Array, position: number): Promise<void> {
    const fd = this.#handle.fd;
    let done = 0;
    while (done < data.length) {
      if (this.#closed) throw new BlockfetchError('BLOCKFETCH_CACHE_CLOSED', `${this.name} is closed`);
      const bytesWritten = await this.#tracked(
        new Promise<number>((resolve, reject) =>
          writeCallback(fd, data, done, data.length - done, position + done, (err, n) => (err ? reject(err) : resolve(n))),
        ),
      );
      if (bytesWritten === 0) {
        throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `${this.name}: the write at ${position + done} made no progress`);
      }
      done += bytesWritten;
    }
  }

  /**
   * {@inheritDoc CacheFileReadWriter.writev}
   *
   * One `pwritev` for all the parts (the CachingDownloader hands one
   * gather buffer of up to 128 KiB), made on the calling thread, as aria2c
   * makes its writes: no thread-pool round trip. Measured on 1 GiB from nginx at c8 (issue 10,
   * docs/benchmarks.md): 2.1-2.6 CPU s against 2.6-3.4 for the same write
   * through libuv's pool (a chunk queued behind the pool lived long enough
   * to be promoted, so only a full collection could free its socket
   * buffer). What it costs: while
   * the kernel copies the 1 MiB into the page cache (or throttles a writer
   * that is far ahead of the disk) the event loop waits; the sockets keep
   * receiving into their kernel buffers meanwhile. The index saves, still
   * in the pool, no longer queue behind data writes. A short write, which a
   * regular file gives only when the disk is full, finishes through
   * {@link NodeCacheFile.write}, which reports it.
   */
  async writev(parts: readonly Uint8Array[], position: number): Promise<void> {
    if (this.#closed) throw new BlockfetchError('BLOCKFETCH_CACHE_CLOSED', `${this.name} is closed`);
    const total = parts.reduce((sum, part) => sum + part.length, 0);
    const written = writevSync(this.#handle.fd, parts as Uint8Array[], position);
    if (written === total) return;
    // The rest from where the short write stopped, copied first: the parts
    // are the caller's again when this returns (see writeNow).
    await this.write(Buffer.concat(parts).subarray(written), position + written);
  }

  /**
   * {@inheritDoc CacheFileReadWriter.writeNow}
   *
   * {@link NodeCacheFile.writev} of the one part: its `pwrite` is made during
   * the call, and the rest of a short write (only a full disk gives one) is
   * copied before it goes on.
   */
  writeNow(data: Uint8Array, position: number): Promise<void> {
    return this.writev([data], position);
  }

  /** Keeps a write in the set `close()` waits for until it settles, and resolves to its byte count. */
  async #tracked(write: Promise<number>): Promise<number> {
    this.#writes.add(write);
    try {
      return await write;
    } finally {
      this.#writes.delete(write);
    }
  }

  /**
   * A path that names this open file itself, not whatever is at
   * {@link NodeCacheFile.name} now: `/proc/<pid>/fd/<fd>` on Linux (a magic
   * link to the open file), for handing the file to another program without
   * a second lookup of its name; `undefined` where there is no such path.
   */
  descriptorPath(): string | undefined {
    if (process.platform !== 'linux') return undefined;
    const path = `/proc/${process.pid}/fd/${this.#handle.fd}`;
    return existsSync(path) ? path : undefined;
  }

  /** {@inheritDoc CacheFileReadWriter.sync} */
  async sync(): Promise<void> {
    await this.#handle.sync();
  }

  /** {@inheritDoc CacheFileReadWriter.truncate} */
  async truncate(length: number): Promise<void> {
    await this.#handle.truncate(length);
  }

  /** {@inheritDoc CacheFileReadWriter.size} */
  async size(): Promise<number> {
    return (await this.#handle.stat()).size;
  }

  /** The number of bytes the filesystem has allocated to the file (`st_blocks * 512`). */
  async allocatedBytes(): Promise<number> {
    // st_blocks counts 512-byte units whatever the filesystem's block size
    // (POSIX leaves the unit open; Linux and macOS use 512). st_blksize is
    // the preferred I/O size and has nothing to do with it.
    return (await this.#handle.stat()).blocks * 512;
  }

  /** {@inheritDoc CacheFileReadWriter.close} */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A write still running on the raw fd must end before the fd is closed,
    // or the number could be reused by another file and the write land there.
    await Promise.allSettled([...this.#writes]);
    await this.#handle.close();
  }
}

/** The real {@link CacheFileSystem}, over `node:fs/promises`. */
export const nodeFileSystem: CacheFileSystem = Object.freeze({
  openExisting: (path: string) => NodeCacheFile.open(path),
  create: async (path: string) => {
    // Whatever is there (a leftover temp file of a killed run, or a planted
    // link, which unlink removes without touching what it points to) goes,
    // and the file is created anew, exclusively: O_TRUNC on an existing path
    // would truncate a victim a link points to.
    await nodeFileSystem.remove(path);
    return NodeCacheFile.open(path, { create: true, exclusive: true });
  },
  readFile: async (path: string, maxBytes: number) => {
    // O_NONBLOCK: a FIFO planted at the path must not hang the open (it is
    // then refused as not a regular file).
    const handle = await openRegularFile(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) {
        throw Object.assign(new Error(`EFBIG: ${path} is ${size} bytes, more than ${maxBytes}`), { code: 'EFBIG', size });
      }
      return new Uint8Array(await handle.readFile());
    } finally {
      await handle.close();
    }
  },
  rename: (from: string, to: string) => rename(from, to),
  remove: async (path: string) => {
    try {
      await unlink(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  },
  syncDir: async (dir: string) => {
    // A rename is a change to the directory, not to the file: it survives a
    // power cut only once the directory itself is fsynced.
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
});

/**
 * `open(path, flags)` that accepts only a regular file: `O_NOFOLLOW` in
 * `flags` turns a symbolic link into ELOOP, reported as
 * `BLOCKFETCH_UNSAFE_PATH`; anything else that is not a regular file (FIFO,
 * device, socket, directory) is closed again and refused the same way.
 */
async function openRegularFile(path: string, flags: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, flags, 0o644);
  } catch (err) {
    // ELOOP (Linux, macOS) or EMLINK (FreeBSD): O_NOFOLLOW met a symlink.
    const code = errnoCode(err);
    if (code === 'ELOOP' || code === 'EMLINK') throw unsafePathError(path, 'a symbolic link', err);
    throw err;
  }
  let stats: Stats;
  try {
    stats = await handle.stat();
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  if (!stats.isFile()) {
    await handle.close().catch(() => undefined);
    // A directory cannot be written through or replaced by accident: the
    // plain EISDIR a read of it would give says enough.
    if (stats.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, open '${path}'`), { code: 'EISDIR' });
    throw unsafePathError(path, fileKind(stats), undefined);
  }
  return handle;
}

/**
 * The error for a path that is a symbolic link or not a regular file, where
 * blockfetch would open, create or replace a file of its own: which file, what
 * it is, and what to do.
 *
 * @example
 * ```ts
 * throw unsafePathError('/tmp/big.iso.blockfetch', 'a symbolic link', undefined);
 * // BLOCKFETCH_UNSAFE_PATH: /tmp/big.iso.blockfetch is a symbolic link: blockfetch never follows one or writes through it
 * ```
 */
export function unsafePathError(path: string, kind: string, cause: unknown): BlockfetchError {
  const link = kind === 'a symbolic link';
  return new BlockfetchError(
    'BLOCKFETCH_UNSAFE_PATH',
    link
      ? `${path} is a symbolic link: blockfetch never follows one or writes through it`
      : `${path} is ${kind}, not a regular file: blockfetch never writes to or replaces one`,
    {
      ...(cause === undefined ? {} : { cause }),
      hint: link
        ? `if you did not put it there, someone else may have: remove the link (rm ${path} removes the link only) and run again, or choose another target`
        : 'remove it if it is not yours to keep, or choose another target path',
    },
  );
}

/** What `stats` describes, for messages: 'a FIFO', 'a character device', .... */
export function fileKind(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return stats.isFile() ? 'a regular file' : 'not a regular file';
}

/**
 * `fs.lstat` of `path` (a link is described, never followed), or undefined
 * when nothing is there; any other failure is thrown.
 */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** The directory a path lives in (for {@link CacheFileSystem.syncDir}). */
export function parentDir(path: string): string {
  return dirname(path);
}

/** `fs.stat` of `path`, or undefined when nothing is there (any other failure is thrown). */
export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** The `code` of a Node system error (`'ENOENT'`), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
