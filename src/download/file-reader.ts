/**
 * A {@link Reader} over a local file: copying a large file with the same
 * resumable, verified machinery as a download, and the data source the
 * downloader's tests and benchmarks use.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import { DEFAULT_BLOCK_SIZE } from '../defaults.js';
import { BlockfetchError, InvalidArgumentError, RemoteChangedError } from '../errors.js';
import { wholeNumber } from '../validate.js';
import { normalizeExpectedDigest } from './digest.js';
import { compareIdentity } from './identity.js';
import type { ContentInfo, Reader } from './reader.js';
import { checkReaderRange, emptyBody } from './reader-parts.js';

/** Options of {@link FileReader}. */
export interface FileReaderOptions {
  /**
   * The block size the reader suggests to a new cache, in bytes: the same as
   * every other entry point's, so a copy resumes like a download.
   * @default 1048576 (1 MiB, `DEFAULT_BLOCK_SIZE`)
   */
  readonly blockSize?: number;
  /**
   * How many bytes each chunk of a body holds at most. Each chunk is a fresh
   * buffer (a consumer may keep it), so this bounds memory per open body.
   * @default 131072 (128 KiB)
   */
  readonly chunkSize?: number;
  /** A digest of the file known from elsewhere (e.g. a `.sha256` file), reported by `digest()`. */
  readonly digest?: ExpectedDigest;
}

/**
 * {@link FileReaderOptions} with every default filled in (`digest` has none).
 *
 * @example
 * ```ts
 * new FileReader(path, { chunkSize: defaultFileReaderOptions.chunkSize * 4 });
 * ```
 */
export const defaultFileReaderOptions: Readonly<Required<Omit<FileReaderOptions, 'digest'>>> = Object.freeze({
  blockSize: DEFAULT_BLOCK_SIZE,
  chunkSize: 128 * 1024,
});

/**
 * Reads inclusive byte ranges of a local file. Its identity is the path, the
 * size and the modification time (to the nanosecond, as
 * `2026-01-02T03:04:05.123456789Z` in `lastModified`). Every body checks that
 * the file still has that size and mtime when it opens and again after its
 * last byte, and fails with a {@link RemoteChangedError} if not: a file that
 * changes while it is copied is never stitched from two versions.
 *
 * @example
 * ```ts
 * const reader = new FileReader('/data/big.iso');
 * const info = await reader.contentLengthAndBlockSize();
 * for await (const chunk of await reader.getReader(0, info.contentLength - 1, AbortSignal.timeout(60_000))) use(chunk);
 * ```
 */
export class FileReader implements Reader {
  /** The file's path, as given. */
  readonly name: string;
  readonly #blockSize: number;
  readonly #chunkSize: number;
  readonly #digest: ExpectedDigest | undefined;
  #info: Promise<ContentInfo> | undefined;

  constructor(path: string, options: FileReaderOptions = {}) {
    if (typeof path !== 'string' || path.length === 0) {
      throw new InvalidArgumentError(`FileReader path must be a non-empty string, got ${String(path)} (${typeof path})`);
    }
    this.name = path;
    this.#blockSize = wholeNumber('FileReader', 'blockSize', options.blockSize ?? defaultFileReaderOptions.blockSize, { min: 1 });
    this.#chunkSize = wholeNumber('FileReader', 'chunkSize', options.chunkSize ?? defaultFileReaderOptions.chunkSize, { min: 1 });
    this.#digest = options.digest === undefined ? undefined : normalizeExpectedDigest(options.digest, 'FileReader digest');
  }

  /**
   * Stats the file (once; later calls return the same answer). Ranges are
   * always supported and every body is pinned to the size and mtime found here.
   */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    signal?.throwIfAborted();
    this.#info ??= this.#look();
    // A failed look is not remembered: the next call tries again.
    this.#info.catch(() => (this.#info = undefined));
    return this.#info;
  }

  /** The digest given in the options, if any. */
  digest(): ExpectedDigest | undefined {
    return this.#digest;
  }

  /**
   * A body of exactly the bytes `from..to` (inclusive) of the file as first
   * seen. Bytes are read at their own offsets: chunk `k` of the body starts
   * at byte `from + k * chunkSize`. The empty range (`to === from - 1`)
   * yields nothing and opens no file, so a 0-byte file copies like any other.
   */
  async getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    signal.throwIfAborted();
    const info = await this.contentLengthAndBlockSize(signal);
    if (checkReaderRange(this.name, from, to, info.contentLength) === 'empty') return emptyBody(signal);
    const handle = await openForReading(this.name, info.identity);
    try {
      this.#checkUnchanged(info.identity, await handle.stat({ bigint: true }));
    } catch (err) {
      await handle.close();
      throw err;
    }
    return this.#body(handle, from, to, info.identity, signal);
  }

  async *#body(
    handle: FileHandle,
    from: number,
    to: number,
    identity: RemoteIdentity,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for (let position = from; position <= to; ) {
        signal.throwIfAborted();
        const want = Math.min(this.#chunkSize, to - position + 1);
        const buffer = Buffer.allocUnsafe(want);
        const { bytesRead } = await readAt(handle, buffer, want, position, this.name);
        if (bytesRead === 0) {
          // The file got shorter under us: the stat below names the change.
          this.#checkUnchanged(identity, await handle.stat({ bigint: true }));
          throw new BlockfetchError('BLOCKFETCH_BODY_LENGTH', `${this.name}: unexpected end of file at byte ${position}`);
        }
        position += bytesRead;
        yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
      }
      // A write during the read shows up as a new mtime (or size): the bytes
      // just delivered may mix two versions, so the body fails as a whole.
      this.#checkUnchanged(identity, await handle.stat({ bigint: true }));
    } finally {
      await handle.close();
    }
  }

  async #look(): Promise<ContentInfo> {
    let st: BigIntStats;
    try {
      st = await stat(this.name, { bigint: true });
    } catch (err) {
      throw fileError(this.name, err);
    }
    if (!st.isFile()) throw new InvalidArgumentError(`FileReader: ${this.name} is not a regular file`);
    const identity = identityOf(this.name, st, this.#digest);
    return Object.freeze({
      contentLength: identity.size,
      blockSize: this.#blockSize,
      identity,
      rangesSupported: true,
      pinned: true,
    });
  }

  /** Throws a `RemoteChangedError` if the file's size or mtime changed since it was first seen. */
  async revalidate(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const info = await this.contentLengthAndBlockSize(signal);
    let st: BigIntStats;
    try {
      st = await stat(this.name, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(this.name, info.identity);
      throw transientFileError(this.name, err);
    }
    this.#checkUnchanged(info.identity, st);
  }

  #checkUnchanged(identity: RemoteIdentity, st: BigIntStats): void {
    const changes = compareIdentity(identity, identityOf(this.name, st, this.#digest));
    if (changes.length > 0) throw new RemoteChangedError(this.name, changes, 0);
  }
}

function identityOf(path: string, st: BigIntStats, digest: ExpectedDigest | undefined): RemoteIdentity {
  const size = Number(st.size);
  const identity = { url: path, size, lastModified: formatMtime(st.mtimeNs) };
  return digest === undefined ? identity : { ...identity, digest };
}

/** `mtimeNs` as an ISO-8601 UTC time with all nine fractional digits. */
function formatMtime(mtimeNs: bigint): string {
  const ms = mtimeNs / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // ...T03:04:05.123Z
  const subMs = (((mtimeNs % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  return `${iso.slice(0, -1)}${subMs}Z`;
}

async function openForReading(path: string, identity: RemoteIdentity): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(path, identity);
    throw fileError(path, err);
  }
}

/** A file that was there when first seen and is gone now has changed. */
function missing(path: string, identity: RemoteIdentity): RemoteChangedError {
  return new RemoteChangedError(path, [{ field: 'size', before: String(identity.size), after: '(missing)' }], 0);
}

function fileError(path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new InvalidArgumentError(`FileReader: ${path} does not exist`, { cause: err });
  if (code === 'EACCES' || code === 'EPERM') {
    return new InvalidArgumentError(`FileReader: no permission to read ${path}`, { cause: err });
  }
  return transientFileError(path, err);
}

/**
 * Anything but a missing or forbidden file (EIO, EMFILE, ENFILE) may pass,
 * so it is retried: a plain system error would not be (unknown errors are
 * never retried, so that a bug is not).
 */
function transientFileError(path: string, err: unknown): BlockfetchError {
  if (err instanceof BlockfetchError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new BlockfetchError('BLOCKFETCH_DISK_READ', `FileReader: reading ${path} failed: ${detail}`, { cause: err });
}

/** `handle.read`, with a system error mapped like every other failure of the source. */
async function readAt(handle: FileHandle, buffer: Buffer, length: number, position: number, path: string): Promise<{ bytesRead: number }> {
  try {
    return await handle.read(buffer, 0, length, position);
  } catch (err) {
    throw transientFileError(path, err);
  }
}

