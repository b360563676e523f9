/**
 * The contracts of the cache layer: what a download cache must do, and the
 * identity of the remote revision a cache holds bytes of.
 */
import type { ByteRange } from '../ranges/byte-range.js';

/**
 * Who the cached bytes belong to: the remote file and the revision of it.
 * Stored in the index file so that a later run can tell whether the remote
 * is still the same file. Fields the remote did not provide are left out.
 */
export interface RemoteIdentity {
  /** The URL (or path) the download was started from, credentials removed. */
  readonly url: string;
  /** The size in bytes. */
  readonly size: number;
  /** The ETag exactly as the server sent it, quotes and `W/` included. */
  readonly etag?: string;
  /** The Last-Modified header exactly as the server sent it. */
  readonly lastModified?: string;
  /**
   * A whole-file digest known for this revision (given by a caller, or
   * advertised by the remote), checked at the end of every run.
   */
  readonly digest?: ExpectedDigest;
  /**
   * Digests of other algorithms than `digest`'s, known for the same
   * revision (one per algorithm), each checked at the end of every run too.
   */
  readonly extraDigests?: readonly ExpectedDigest[];
  /**
   * Set when the bytes come from several mirrors of one file: each mirror's
   * URL (credentials removed) and its own validators, since mirrors of one
   * file usually carry different ETags. Then `url` is the first mirror's,
   * and `etag` / `lastModified` are present only when every mirror sent the
   * same value. Absent for a download from one URL.
   */
  readonly mirrors?: readonly MirrorIdentity[];
}

/**
 * One mirror of a mirrored download, as recorded in the index: its URL and
 * the validators its own requests are pinned to.
 *
 * @example
 * ```ts
 * const mirror: MirrorIdentity = { url: 'https://a.example/f.iso', etag: '"5f-1"' };
 * ```
 */
export interface MirrorIdentity {
  /** The mirror's URL, credentials removed. */
  readonly url: string;
  /** The ETag this mirror sent, exactly as sent. */
  readonly etag?: string;
  /** The Last-Modified this mirror sent, exactly as sent. */
  readonly lastModified?: string;
}

/**
 * Hash algorithms blockfetch can verify a whole file with. `git-sha1` is
 * git's blob id (what the Hugging Face Hub lists as a small file's `oid`):
 * the SHA-1 of `blob <size>\0` followed by the bytes.
 */
export type DigestAlgorithm = 'sha256' | 'sha512' | 'sha1' | 'md5' | 'git-sha1';

/**
 * Hex digits in a digest of each algorithm: the one table every parser of a
 * digest (options, CLI flags, server headers, the index) checks against.
 *
 * @example
 * ```ts
 * DIGEST_HEX_LENGTH.sha256 // 64
 * ```
 */
export const DIGEST_HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = Object.freeze({
  md5: 32,
  sha1: 40,
  sha256: 64,
  sha512: 128,
  'git-sha1': 40,
});

/** A whole-file digest to verify against. */
export interface ExpectedDigest {
  /** The algorithm, as `node:crypto` names it. */
  readonly algorithm: DigestAlgorithm;
  /** The digest, lower-case hex. */
  readonly hex: string;
}

/**
 * A cache of the blocks of one remote file: the Go `DownloadCache` contract,
 * made asynchronous where it does I/O.
 *
 * Durability contract: a block becomes cached (visible to `nextCached`,
 * `tail`, `readAt`) only after all of its bytes were written; the index on
 * disk never records a block before that block's bytes are fsynced.
 */
export interface DownloadCache {
  /** The file's size and the cache's block size, in bytes. */
  contentLengthAndBlockSize(): { contentLength: number; blockSize: number };
  /** How many bytes and blocks are cached now. */
  cachedBytesAndBlocks(): { bytes: number; blocks: number };
  /**
   * Fills `out` with the next block at or after block index `start` that is
   * not cached, and returns the index to continue from (the block after it),
   * or -1 when there is none (then `out` is left as it was).
   *
   * @example
   * ```ts
   * const br = { from: -1, to: -1 };
   * for (let i = cache.nextOutstanding(0, br); i !== -1; i = cache.nextOutstanding(i, br)) fetch(br);
   * ```
   */
  nextOutstanding(start: number, out: ByteRange): number;
  /** As {@link DownloadCache.nextOutstanding}, for blocks that are cached. */
  nextCached(start: number, out: ByteRange): number;
  /**
   * The contiguous cached prefix `{ from: 0, to }`. If it has not grown since
   * the previous call (on this cache), waits until it does. Returns at once
   * when the cache is complete. Returns `{ from: -1, to: -1 }` when `signal`
   * aborts first (and for an empty file). No wake-up is ever missed.
   */
  tail(signal?: AbortSignal): Promise<ByteRange>;
  /** True when every block is cached. */
  complete(): boolean;
  /**
   * Writes one whole block at block-aligned `offset` and marks it cached.
   * `data` must be exactly the block's length (the last block is
   * `contentLength % blockSize` bytes when that is not 0).
   * Resolves to the number of bytes written.
   */
  writeAt(data: Uint8Array, offset: number): Promise<number>;
  /**
   * Writes bytes at any offset inside the file WITHOUT marking anything
   * cached: how a downloader streams a body into place chunk by chunk.
   * Follow with {@link DownloadCache.markCached} once a block is whole.
   * `data` is the caller's again once the returned promise settles (the
   * CachingDownloader reuses its buffers): copy what you keep.
   */
  writeData(data: Uint8Array, offset: number): Promise<void>;
  /**
   * {@link DownloadCache.writeData} of adjacent `parts` from `offset`, in one
   * write where the cache can (no copy). Optional: a downloader joins the
   * parts and calls `writeData` when a cache does not have it. The parts
   * are the caller's again once the returned promise settles.
   */
  writeDataParts?(parts: readonly Uint8Array[], offset: number): Promise<void>;
  /**
   * {@link DownloadCache.writeData}, except that `data` is the caller's
   * again as soon as this returns, before the promise settles (the bytes
   * were copied out during the call). Optional: the CachingDownloader
   * writes a large chunk of a reused socket buffer straight from it
   * through this, and copies it into a buffer of its own first when a
   * cache does not have it.
   */
  writeDataNow?(data: Uint8Array, offset: number): Promise<void>;
  /**
   * Marks block `index` cached. The caller promises that every byte of the
   * block was written with `writeData`/`writeAt` and that those writes
   * resolved. The index on disk records it at the next (batched) flush,
   * after the data file is fsynced.
   */
  markCached(index: number): void;
  /**
   * Reads `data.length` bytes at `offset` (any offset). Rejects with a
   * `BLOCKFETCH_UNCACHED_RANGE` error if ANY byte asked for is not cached.
   */
  readAt(data: Uint8Array, offset: number): Promise<number>;
  /** The identity of the remote recorded in the index, if any. */
  remoteIdentity(): RemoteIdentity | undefined;
  /** Records the remote's identity in the index (written durably before this resolves). */
  setRemoteIdentity(identity: RemoteIdentity): Promise<void>;
  /** Writes the index now: fsync data, then the index (temp file, fsync, rename, fsync dir). */
  flush(): Promise<void>;
  /** Flushes, releases the lock and closes the files. Idempotent. */
  close(): Promise<void>;
}
