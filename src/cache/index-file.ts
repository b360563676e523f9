/**
 * Reading the index file, and replacing it atomically and durably.
 *
 * The index is never rewritten in place: a crash in the middle of an
 * in-place write would leave a torn file. Instead each save writes a temp
 * file in the same directory, fsyncs it, renames it over the index and
 * fsyncs the directory. At every instant the path names either the old
 * complete index or the new complete one.
 */
import { basename, join } from 'node:path';
import { BlockfetchError, IndexError } from '../errors.js';
import { errnoCode, nodeFileSystem, parentDir, type CacheFileSystem } from './file.js';
import { decodeIndex, encodeIndex, MAX_INDEX_BYTES, type IndexContents } from './index-format.js';
import { LiveIndexWriter, readLiveIndex } from './live-index.js';

/**
 * The index file of a cache, at `path`, read and written through a
 * {@link CacheFileSystem} (the real one unless a test passes a fake).
 *
 * @example
 * ```ts
 * const index = new IndexFile('/data/big.iso.bfindex');
 * const contents = await index.load();   // IndexError if it cannot be trusted
 * await index.save({ ...contents, updatedAt: new Date().toISOString() });
 * ```
 */
export class IndexFile {
  /** The index file's path. */
  readonly path: string;
  /** The temp file each save writes first: `<dir>/.<name>.tmp`, in the same directory so the rename is atomic. */
  readonly tempPath: string;
  readonly #fs: CacheFileSystem;

  /**
   * @param path - The index file's path (it need not exist until the first save).
   * @param fs - The filesystem to work through; the real one unless a test injects faults.
   */
  constructor(path: string, fs: CacheFileSystem = nodeFileSystem) {
    this.path = path;
    this.tempPath = join(parentDir(path), `.${basename(path)}.tmp`);
    this.#fs = fs;
  }

  /** The live index beside this one ({@link liveIndexPath}), through the same filesystem. */
  live(): IndexFile {
    return new IndexFile(liveIndexPath(this.path), this.#fs);
  }

  /** Removes the file; one that is not there is no error. */
  async remove(): Promise<void> {
    await this.#fs.remove(this.path);
  }

  /**
   * Reads and checks the index. Rejects with `BLOCKFETCH_CACHE_MISSING` when
   * there is no index file, an `IndexError` when it cannot be trusted.
   */
  async load(): Promise<IndexContents> {
    let bytes: Uint8Array;
    try {
      bytes = await this.#fs.readFile(this.path, MAX_INDEX_BYTES);
    } catch (err) {
      if (errnoCode(err) === 'EFBIG') {
        throw new IndexError('BLOCKFETCH_INDEX_FOREIGN', this.path, `not a blockfetch index: ${messageOf(err)}, larger than any index can be`, {
          cause: err,
          hint: 'this looks like a data file, not an index: check the index path; nothing was changed',
        });
      }
      if (errnoCode(err) === 'ENOENT') {
        throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `${this.path}: the index file does not exist`, {
          cause: err,
          hint: 'create the cache first (a new download), or check the index path',
        });
      }
      if (err instanceof BlockfetchError) throw err; // a link or a FIFO at the path (BLOCKFETCH_UNSAFE_PATH)
      throw new BlockfetchError('BLOCKFETCH_DISK_READ', `cannot read index ${this.path}: ${messageOf(err)}`, { cause: err });
    }
    return decodeIndex(bytes, this.path);
  }

  /**
   * Replaces the index with `contents`, durably: write temp → fsync temp →
   * rename over the index → fsync the directory. When this resolves the new
   * index survives a power cut; if it rejects, the old index is still whole.
   */
  async save(contents: IndexContents): Promise<void> {
    await this.replace(encodeIndex(contents));
  }

  /** As {@link IndexFile.save}, for bytes that are already encoded. */
  replace(bytes: Uint8Array): Promise<void> {
    return this.#replace(bytes);
  }

  /**
   * Creates the live index beside this one ({@link liveIndexPath}) holding
   * `first`, through the same filesystem: saved in place many times a second,
   * never fsynced, trusted only on the boot that wrote it.
   */
  createLive(first: Uint8Array): Promise<LiveIndexWriter> {
    return LiveIndexWriter.create(liveIndexPath(this.path), first, this.#fs);
  }

  /** Every valid index the live file beside this one holds (see {@link readLiveIndex}); none when it is missing or torn. */
  loadLive(): Promise<IndexContents[]> {
    return readLiveIndex(liveIndexPath(this.path), this.#fs);
  }

  async #replace(bytes: Uint8Array): Promise<void> {
    try {
      const temp = await this.#fs.create(this.tempPath);
      try {
        await temp.write(bytes, 0);
        // Without this fsync the rename could reach the disk before the
        // temp file's contents, and a crash would leave an empty index.
        await temp.sync();
      } finally {
        await temp.close();
      }
      await this.#fs.rename(this.tempPath, this.path);
      // The rename is a change to the directory: durable only once the
      // directory is fsynced. Until then a crash may bring back the old index
      // (which is still correct, only older).
      await this.#fs.syncDir(parentDir(this.path));
    } catch (err) {
      await this.#fs.remove(this.tempPath).catch(() => undefined);
      if (err instanceof BlockfetchError) throw err;
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot write index ${this.path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }
}

/**
 * The live index beside the index at `indexPath`: `X.blockfetch.live` for
 * `X.blockfetch.json` (so its temp file is no longer than the index's),
 * else `indexPath` + `.live`. It holds the same contents as the index,
 * saved far more often, in place, and never fsynced ({@link LiveIndexWriter}), and
 * is trusted only on the boot that wrote it: what a kill -9 leaves behind,
 * while the index itself stays what a power cut leaves.
 *
 * @example
 * ```ts
 * liveIndexPath('/data/big.iso.blockfetch.json') // '/data/big.iso.blockfetch.live'
 * ```
 */
export function liveIndexPath(indexPath: string): string {
  return indexPath.endsWith('.json') ? `${indexPath.slice(0, -'.json'.length)}.live` : `${indexPath}.live`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
