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
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { constants, write as writeCallback, type Stats } from 'node:fs';
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
  /** Creates `path` (truncating it if it exists) and opens it for reading and writing. */
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
   * created if missing (and never truncated); otherwise a missing file
   * rejects with the `ENOENT` error from `open`.
   */
  static async open(path: string, options: { readonly create?: boolean; readonly truncate?: boolean } = {}): Promise<NodeCacheFile> {
    let flags = constants.O_RDWR;
    if (options.create === true) flags |= constants.O_CREAT;
    if (options.truncate === true) flags |= constants.O_TRUNC;
    return new NodeCacheFile(await open(path, flags, 0o644), path);
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
      const write = new Promise<number>((resolve, reject) =>
        writeCallback(fd, data, done, data.length - done, position + done, (err, n) => (err ? reject(err) : resolve(n))),
      );
      this.#writes.add(write);
      let bytesWritten: number;
      try {
        bytesWritten = await write;
      } finally {
        this.#writes.delete(write);
      }
      if (bytesWritten === 0) {
        throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `${this.name}: the write at ${position + done} made no progress`);
      }
      done += bytesWritten;
    }
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
  create: (path: string) => NodeCacheFile.open(path, { create: true, truncate: true }),
  readFile: async (path: string, maxBytes: number) => {
    const handle = await open(path, constants.O_RDONLY);
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
