/**
 * Creating, finding and opening the two files of a cache: the data file
 * (the download itself, preallocated to its full size) and the index file
 * (which blocks of it are done).
 */
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BlockfetchError, InvalidArgumentError } from '../errors.js';
import { ByteRanges } from '../ranges/byte-ranges.js';
import { errnoCode, fileKind, NodeCacheFile, nodeFileSystem, parentDir, unsafePathError, type CacheFileReadWriter } from './file.js';
import { IndexFile } from './index-file.js';
import { checkIdentityDigest, encodeIndex, indexFromRanges } from './index-format.js';
import { CacheLock, type CacheLockOptions } from './lock.js';
import { checkFreeSpace, reserveSpace, type ReserveSpaceOptions } from './reserve-space.js';
import type { RemoteIdentity } from './types.js';

/** Options of {@link createNewFilesForCache}. */
export interface CreateCacheFilesOptions extends ReserveSpaceOptions {
  /** The remote's identity, recorded in the new index. @default undefined (recorded later with `setRemoteIdentity`) */
  readonly identity?: RemoteIdentity;
  /**
   * Replace cache files that already exist. Without it an existing data or
   * index file is an error: it may hold a download in progress.
   * @default false
   */
  readonly overwrite?: boolean;
  /**
   * The cross-process lock held while the files are created, so that two
   * processes never create (or overwrite) the same cache at once; `false`
   * when the caller already holds it. `signal` is taken from these options.
   * @default {} (the {@link CacheLock} defaults: fail at once if held)
   */
  readonly lock?: Omit<CacheLockOptions, 'signal'> | false;
}

/**
 * Creates a new, empty cache: reserves `contentLength` bytes for the data
 * file (see {@link reserveSpace}; not enough space fails before anything is
 * written) and writes an index that records no block as done.
 *
 * Refuses with `BLOCKFETCH_TARGET_EXISTS` if either file exists, unless
 * `overwrite` is set: nothing downloaded is ever deleted by accident. With
 * `overwrite` the old index is removed first, then the old data file, so a
 * crash in between never leaves an index describing the wrong data.
 * If creation fails, the files it created are removed again.
 *
 * @example
 * ```ts
 * await createNewFilesForCache('big.iso', 'big.iso.bfindex', info.contentLength, info.blockSize,
 *   { identity: info.identity, onProgress: (n, total) => console.log(n, total) });
 * const cache = await LocalDownloadCache.open('big.iso', 'big.iso.bfindex');
 * ```
 */
export async function createNewFilesForCache(
  dataPath: string,
  indexPath: string,
  contentLength: number,
  blockSize: number,
  options: CreateCacheFilesOptions = {},
): Promise<void> {
  // Validates both sizes (and that the block count fits the bitmap) before
  // anything touches the disk.
  const empty = new ByteRanges(contentLength, blockSize);
  if (options.identity !== undefined && options.identity.size !== contentLength) {
    throw new InvalidArgumentError(
      `createNewFilesForCache: identity.size ${String(options.identity.size)} differs from contentLength ${contentLength}`,
    );
  }
  if (options.identity !== undefined) checkIdentityDigest('createNewFilesForCache', options.identity);
  if (resolve(dataPath) === resolve(indexPath)) {
    throw new InvalidArgumentError(`createNewFilesForCache: the data file and the index file must be different paths, both are ${dataPath}`);
  }
  const lock = options.lock === false ? undefined : await CacheLock.acquire(dataPath, { ...options.lock, ...signalOf(options) });
  try {
    const exists = await cacheFilesExist(dataPath, indexPath);
    if ((exists.data || exists.index) && options.overwrite !== true) {
      const which = [exists.data ? `data file ${dataPath}` : '', exists.index ? `index file ${indexPath}` : ''].filter(Boolean).join(' and ');
      throw new BlockfetchError('BLOCKFETCH_TARGET_EXISTS', `cannot create a new cache: ${which} already exist(s)`, {
        hint: 'open the existing cache to resume it, or pass option `overwrite` to discard it and start over',
      });
    }
    // --force (overwrite) replaces only regular files: a link, a FIFO or a
    // device at either path is refused before anything is removed.
    if (exists.data) await refuseUnlessRegularFile(dataPath);
    if (exists.index) await refuseUnlessRegularFile(indexPath);
    const index = new IndexFile(indexPath);
    // Refuse for lack of space BEFORE removing anything: an overwrite that
    // cannot complete must not have destroyed the old download. Not only
    // the data: the index at its largest, its temp file (both exist while
    // it is replaced) and the lock file must fit too, or the download could
    // fail half way when its index grows.
    const indexBytes = indexSizeBound(encodeIndex(indexFromRanges(empty, options.identity)).length, empty.numBlocks);
    // A sparse data file (method 'sparse', for benchmarks) takes no space up front.
    await checkFreeSpace(dataPath, options.method === 'sparse' ? 0 : contentLength, { alsoFiles: [indexBytes, indexBytes, 0] });
    if (exists.index) await nodeFileSystem.remove(indexPath);
    if (exists.data) await nodeFileSystem.remove(dataPath);
    // A live index left from another download of these paths would claim
    // blocks of a data file that is no longer there: it goes first.
    await index.live().remove();
    try {
      // Created exclusively and without following a link, so the data file
      // is ours whatever was planted at the name since the check above
      // (reserveSpace then reopens it with O_NOFOLLOW).
      await (await NodeCacheFile.open(dataPath, { create: true, exclusive: true })).close();
      await reserveSpace(dataPath, contentLength, options);
      // The data file's directory entry must be durable before an index
      // that refers to it is (they may live in different directories).
      await nodeFileSystem.syncDir(parentDir(dataPath));
      await index.save(indexFromRanges(empty, options.identity));
    } catch (err) {
      // Only files this call created (or was told to replace) are removed.
      await nodeFileSystem.remove(indexPath).catch(() => undefined);
      await nodeFileSystem.remove(dataPath).catch(() => undefined);
      throw err;
    }
  } finally {
    await lock?.release();
  }
}

/**
 * The most bytes the index of a cache of `numBlocks` blocks can take,
 * whichever blocks are done, given the size of its empty encoding: the
 * roaring bitmap's worst case (per 65536 blocks at most 8 KiB, as an array
 * or a bitmap container, plus 16 bytes of headers), in base64, plus room for
 * the counts' digits.
 *
 * @example
 * ```ts
 * indexSizeBound(600, 4096) // 600 + about 11 KiB
 * ```
 */
export function indexSizeBound(emptyIndexBytes: number, numBlocks: number): number {
  const containers = Math.ceil(numBlocks / 65536);
  const bitmap = 16 + 16 * containers + Math.min(2 * numBlocks, 8192 * containers);
  return emptyIndexBytes + Math.ceil(bitmap / 3) * 4 + 64;
}

/** Which of a cache's two files exist. */
export interface CacheFilesPresence {
  /** True when the data file exists. */
  readonly data: boolean;
  /** True when the index file exists. */
  readonly index: boolean;
}

/**
 * Tells which of the cache's files exist, so a caller can decide between
 * creating a new cache and resuming one.
 *
 * @example
 * ```ts
 * const { data, index } = await cacheFilesExist('big.iso', 'big.iso.bfindex');
 * ```
 */
export async function cacheFilesExist(dataPath: string, indexPath: string): Promise<CacheFilesPresence> {
  return { data: await exists(dataPath), index: await exists(indexPath) };
}

/** The two opened files of a cache. */
export interface OpenedCacheFiles {
  /** The data file, open for reading and writing. */
  readonly data: CacheFileReadWriter;
  /** The index file (read and replaced as a whole, never written in place). */
  readonly index: IndexFile;
}

/**
 * Opens an existing cache's files. Rejects with `BLOCKFETCH_CACHE_MISSING`
 * naming the missing file(s) if either does not exist. Does not read or check
 * the index; {@link LocalDownloadCache.fromFiles} does.
 */
export async function openCacheFiles(dataPath: string, indexPath: string): Promise<OpenedCacheFiles> {
  const present = await cacheFilesExist(dataPath, indexPath);
  if (!present.data || !present.index) {
    const missing = [present.data ? '' : `data file ${dataPath}`, present.index ? '' : `index file ${indexPath}`].filter(Boolean);
    throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `cache is incomplete: ${missing.join(' and ')} not found`, {
      hint: present.data
        ? 'without its index nothing in the data file is known to be complete: start over (option `restart`)'
        : 'start a new download (the cache files are created then)',
    });
  }
  let data: NodeCacheFile;
  try {
    data = await NodeCacheFile.open(dataPath);
  } catch (err) {
    if (err instanceof BlockfetchError) throw err;
    throw new BlockfetchError('BLOCKFETCH_DISK_READ', `cannot open ${dataPath}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  return { data, index: new IndexFile(indexPath) };
}

async function exists(path: string): Promise<boolean> {
  try {
    // lstat, not access/stat: a dangling symlink exists (and is refused
    // later), it is not a free name to create a file through.
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    // Something is in the way that we cannot see into (EACCES): count it as
    // existing, so that nothing is created or overwritten over it.
    return true;
  }
}

/** Throws `BLOCKFETCH_UNSAFE_PATH` unless `path` is a regular file (a link is not followed). */
async function refuseUnlessRegularFile(path: string): Promise<void> {
  const found = await lstat(path).catch(() => undefined);
  if (found !== undefined && !found.isFile()) throw unsafePathError(path, fileKind(found), undefined);
}

function signalOf(options: CreateCacheFilesOptions): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}
