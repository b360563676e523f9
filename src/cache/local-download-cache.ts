/**
 * {@link LocalDownloadCache}: the {@link DownloadCache} over a local data
 * file and a JSON index, crash-safe and batched.
 */
import { BlockfetchError, InvalidArgumentError, IndexError } from '../errors.js';
import type { ByteRange } from '../ranges/byte-range.js';
import type { ByteRanges } from '../ranges/byte-ranges.js';
import { openCacheFiles } from './cache-files.js';
import { errnoCode, type CacheFileReadWriter } from './file.js';
import type { IndexFile } from './index-file.js';
import { rangesFromIndex } from './index-format.js';
import { CacheLock, type CacheLockOptions } from './lock.js';
import type { DownloadCache, RemoteIdentity } from './types.js';

/** Options of {@link LocalDownloadCache.fromFiles} (and of {@link LocalDownloadCache.open}). */
export interface LocalDownloadCacheOptions {
  /**
   * The longest time a block marked cached waits before a flush records it
   * in the index, in ms. 0 flushes after every mark (coalesced).
   * @default 1000
   */
  readonly flushIntervalMs?: number;
  /**
   * Start a flush as soon as this many bytes were marked cached since the
   * last one, whatever the time. 0 flushes after every mark (coalesced).
   * @default 268435456 (256 MiB)
   */
  readonly flushBytes?: number;
  /**
   * The largest share of wall time background flushes may spend on the index
   * (serialize, encode, write, fsync, rename, fsync dir; the data fsync is
   * not counted, it is writeback the OS owes anyway). After a flush whose
   * index work took `d` ms, the next background flush waits at least
   * `d * (1 / flushTimeBudget - 1)` ms, whatever `flushIntervalMs` and
   * `flushBytes` say. Explicit `flush()`, `setRemoteIdentity` and `close` are
   * never delayed. 1 disables the limit.
   * @default 0.01
   */
  readonly flushTimeBudget?: number;
  /** Refuse (`BLOCKFETCH_INDEX_MISMATCH`) a cache whose content length differs from this. */
  readonly expectedContentLength?: number;
  /** Refuse (`BLOCKFETCH_INDEX_MISMATCH`) a cache whose block size differs from this. */
  readonly expectedBlockSize?: number;
}

/** Options of {@link LocalDownloadCache.open}. */
export interface OpenLocalDownloadCacheOptions extends LocalDownloadCacheOptions {
  /**
   * The cross-process lock: `'fail'` rejects at once with a `LockHeldError`
   * (`BLOCKFETCH_LOCKED`) when another process has the cache open, `'wait'`
   * waits for it (up to `lockOptions.waitTimeoutMs`, or until `signal`
   * aborts), `false` takes no lock (read-only inspection, or a caller that
   * holds it already).
   * @default 'fail'
   */
  readonly lock?: 'fail' | 'wait' | false;
  /** Timing of the lock: stale time, refresh interval, wait limit. @default the {@link CacheLock} defaults */
  readonly lockOptions?: Omit<CacheLockOptions, 'mode' | 'signal' | 'onCompromised'>;
  /** Stops waiting for the lock. */
  readonly signal?: AbortSignal;
}

/** The defaults of {@link LocalDownloadCacheOptions}. */
export const defaultLocalDownloadCacheOptions = Object.freeze({
  flushIntervalMs: 1000,
  flushBytes: 256 * 1024 * 1024,
  flushTimeBudget: 0.01,
});

type ResolvedOptions = Required<Pick<LocalDownloadCacheOptions, 'flushIntervalMs' | 'flushBytes' | 'flushTimeBudget'>>;

const NONE: ByteRange = Object.freeze({ from: -1, to: -1 });

/** The least time between a failed background flush and the next try, in ms. */
const RETRY_FAILED_FLUSH_MS = 1000;

/**
 * A {@link DownloadCache} backed by a preallocated data file and an index
 * file recording which blocks are complete.
 *
 * Durability: a block is marked in memory only after its bytes were written.
 * Flushes are batched (every `flushIntervalMs`, or every `flushBytes` marked,
 * whichever comes first, and never more than `flushTimeBudget` of the wall
 * time; at most one in flight, requests coalesced). Each
 * flush takes a snapshot of the bitmap, THEN fsyncs the data file, then
 * replaces the index atomically (temp, fsync, rename, fsync dir). Because the
 * snapshot comes first, every block it names had its write resolve before the
 * fsync began: the index never claims bytes that are not on disk. A crash
 * loses at most the marks of the last interval, which are downloaded again.
 *
 * After {@link LocalDownloadCache.close}, the in-memory queries
 * (`contentLengthAndBlockSize`, `cachedBytesAndBlocks`, `complete`,
 * `remoteIdentity`) still answer; every other method rejects (or throws)
 * `BLOCKFETCH_CACHE_CLOSED`.
 *
 * @example
 * ```ts
 * const cache = await LocalDownloadCache.open('big.iso', 'big.iso.bfindex');
 * try {
 *   const br = { from: -1, to: -1 };
 *   for (let i = cache.nextOutstanding(0, br); i !== -1; i = cache.nextOutstanding(i, br)) {
 *     await cache.writeAt(await fetchBlock(br), br.from);
 *   }
 * } finally {
 *   await cache.close();
 * }
 * ```
 */
export class LocalDownloadCache implements DownloadCache {
  readonly #data: CacheFileReadWriter;
  readonly #index: IndexFile;
  readonly #ranges: ByteRanges;
  readonly #lock: CacheLock | undefined;
  readonly #flushIntervalMs: number;
  readonly #flushBytes: number;
  readonly #flushTimeBudget: number;
  #identity: RemoteIdentity | undefined;

  /** Aborted by close(), to wake every waiting tail(). */
  readonly #closeController = new AbortController();
  #closing: Promise<void> | undefined;
  /** Reads and writes that have not settled; close() waits for them before closing the file. */
  readonly #io = new Set<Promise<unknown>>();
  /** The prefix end the previous tail() returned. */
  #lastTail = -1;

  /** Bumped on every change the index must record (a mark, a new identity). */
  #generation = 0;
  /** The generation of the last snapshot that reached the disk. */
  #savedGeneration = 0;
  /** Bytes marked since the last snapshot. */
  #pendingBytes = 0;
  /** When the first mark since the last snapshot was made (Date.now()). */
  #firstPendingAt = 0;
  /** The background flush timer, and when it fires (Date.now()). */
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  /** When the last flush ended, and the pause its cost buys under flushTimeBudget (ms). */
  #lastFlushEnd = 0;
  #flushGapMs = 0;
  /** True when the last flush failed: background retries then wait a while, not spin. */
  #lastFlushFailed = false;
  /** The flush that is writing now. */
  #inFlight: Promise<void> | undefined;
  /** The flush that will start when the one in flight ends; joined by every request until it takes its snapshot. */
  #queued: Promise<void> | undefined;
  /** A background flush's failure, thrown by the next operation. */
  #backgroundError: BlockfetchError | undefined;

  private constructor(
    data: CacheFileReadWriter,
    index: IndexFile,
    ranges: ByteRanges,
    identity: RemoteIdentity | undefined,
    lock: CacheLock | undefined,
    options: ResolvedOptions,
  ) {
    this.#data = data;
    this.#index = index;
    this.#ranges = ranges;
    this.#identity = identity;
    this.#lock = lock;
    this.#flushIntervalMs = options.flushIntervalMs;
    this.#flushBytes = options.flushBytes;
    this.#flushTimeBudget = options.flushTimeBudget;
  }

  /**
   * Opens an existing cache created with {@link createNewFilesForCache}:
   * takes the cross-process lock, opens both files and checks the index.
   *
   * Rejects with `BLOCKFETCH_LOCKED` (lock held), `BLOCKFETCH_CACHE_MISSING`
   * (a file is missing), or an `IndexError` (index corrupt, foreign, newer,
   * or not matching the data file or the expected sizes). Nothing on disk is
   * changed by a failed open.
   */
  static async open(dataPath: string, indexPath: string, options: OpenLocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
    const resolved = resolveOptions(options);
    const mode = options.lock ?? 'fail';
    if (mode !== 'fail' && mode !== 'wait' && mode !== false) {
      throw new InvalidArgumentError(`open option lock must be 'fail', 'wait' or false, got ${String(mode)} (${typeof mode})`);
    }
    const lock =
      mode === false
        ? undefined
        : await CacheLock.acquire(dataPath, {
            ...options.lockOptions,
            mode,
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          });
    let data: CacheFileReadWriter | undefined;
    try {
      const files = await openCacheFiles(dataPath, indexPath);
      data = files.data;
      return await LocalDownloadCache.#load(files.data, files.index, lock, resolved, options);
    } catch (err) {
      await data?.close().catch(() => undefined);
      await lock?.release().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Builds a cache over files the caller opened (the Go
   * `NewLocalDownloadCache`): reads and checks the index, and checks that the
   * data file is `contentLength` bytes long. Takes no lock; on failure the
   * caller still owns (and closes) `data`. Tests pass fault-injecting files here.
   *
   * The index is an {@link IndexFile} rather than a second
   * {@link CacheFileReadWriter}: it is never written in place but replaced by
   * rename, which needs the directory, not just the file.
   */
  static async fromFiles(data: CacheFileReadWriter, index: IndexFile, options: LocalDownloadCacheOptions = {}): Promise<LocalDownloadCache> {
    return LocalDownloadCache.#load(data, index, undefined, resolveOptions(options), options);
  }

  static async #load(
    data: CacheFileReadWriter,
    index: IndexFile,
    lock: CacheLock | undefined,
    resolved: ResolvedOptions,
    options: LocalDownloadCacheOptions,
  ): Promise<LocalDownloadCache> {
    const contents = await index.load();
    const mismatch = (what: string, hint: string): IndexError =>
      new IndexError('BLOCKFETCH_INDEX_MISMATCH', index.path, what, { hint: `${hint}; nothing was changed` });
    if (options.expectedContentLength !== undefined && options.expectedContentLength !== contents.contentLength) {
      throw mismatch(
        `the cache holds a file of ${contents.contentLength} bytes, not the ${options.expectedContentLength} expected`,
        'the remote is a different file or revision: start over (--restart) to download it',
      );
    }
    if (options.expectedBlockSize !== undefined && options.expectedBlockSize !== contents.blockSize) {
      throw mismatch(
        `the cache uses blocks of ${contents.blockSize} bytes, not the ${options.expectedBlockSize} asked for`,
        `resume with block size ${contents.blockSize}, or start over (--restart)`,
      );
    }
    if (contents.remote !== undefined && contents.remote.size !== contents.contentLength) {
      throw mismatch(
        `the recorded remote is ${contents.remote.size} bytes but the cache holds ${contents.contentLength}`,
        'the index was edited or belongs to another download: start over (--restart)',
      );
    }
    let size: number;
    try {
      size = await data.size();
    } catch (err) {
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot stat ${data.name}: ${messageOf(err)}`, { cause: err });
    }
    if (size !== contents.contentLength) {
      throw mismatch(
        `the data file ${data.name} is ${size} bytes but the index describes ${contents.contentLength}`,
        'the index belongs to another data file, or the data file was truncated or replaced: check both paths, or start over (--restart)',
      );
    }
    const ranges = rangesFromIndex(contents, index.path);
    const cache = new LocalDownloadCache(data, index, ranges, contents.remote, lock, resolved);
    return cache;
  }

  // ---- DownloadCache: queries -------------------------------------------

  /** {@inheritDoc DownloadCache.contentLengthAndBlockSize} */
  contentLengthAndBlockSize(): { contentLength: number; blockSize: number } {
    return { contentLength: this.#ranges.contentLength, blockSize: this.#ranges.blockSize };
  }

  /** {@inheritDoc DownloadCache.cachedBytesAndBlocks} */
  cachedBytesAndBlocks(): { bytes: number; blocks: number } {
    return { bytes: this.#ranges.setBytes, blocks: this.#ranges.setCount };
  }

  /** {@inheritDoc DownloadCache.complete} */
  complete(): boolean {
    return this.#ranges.complete;
  }

  /** {@inheritDoc DownloadCache.remoteIdentity} */
  remoteIdentity(): RemoteIdentity | undefined {
    return this.#identity;
  }

  /** {@inheritDoc DownloadCache.nextOutstanding} */
  nextOutstanding(start: number, out: ByteRange): number {
    this.#checkOpen();
    return this.#ranges.nextClear(start, out);
  }

  /** {@inheritDoc DownloadCache.nextCached} */
  nextCached(start: number, out: ByteRange): number {
    this.#checkOpen();
    return this.#ranges.nextSet(start, out);
  }

  /**
   * {@inheritDoc DownloadCache.tail}
   *
   * Closing the cache wakes a waiting call, which then returns `{ from: -1, to: -1 }`.
   */
  async tail(signal?: AbortSignal): Promise<ByteRange> {
    this.#checkOpen();
    const closed = this.#closeController.signal;
    for (;;) {
      if (signal?.aborted || closed.aborted || this.#ranges.numBlocks === 0) return { ...NONE };
      // Take the promise BEFORE looking at the prefix: a growth after the
      // look settles it, so no wake-up can fall between the two.
      const grown = this.#ranges.notify();
      const tail = this.#ranges.tail();
      if (tail.to > this.#lastTail || this.#ranges.complete) {
        this.#lastTail = tail.to;
        return tail;
      }
      if (!(await waitUnlessAborted(grown, signal, closed))) return { ...NONE };
    }
  }

  // ---- DownloadCache: writes and reads ----------------------------------

  /** {@inheritDoc DownloadCache.writeAt} */
  async writeAt(data: Uint8Array, offset: number): Promise<number> {
    this.#checkWritable();
    const { blockSize, numBlocks } = this.#ranges;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % blockSize !== 0 || offset >= this.#ranges.contentLength) {
      throw new BlockfetchError(
        'BLOCKFETCH_INVALID_WRITE',
        `writeAt offset must be a multiple of the block size ${blockSize} below ${this.#ranges.contentLength}, got ${String(offset)} (${typeof offset})`,
      );
    }
    const index = offset / blockSize;
    const expected = this.#blockLength(index);
    if (data.length !== expected) {
      throw new BlockfetchError(
        'BLOCKFETCH_INVALID_WRITE',
        `writeAt block ${index} of ${numBlocks} must be exactly ${expected} bytes, got ${data.length}`,
      );
    }
    await this.#track(this.#writeData(data, offset));
    this.#mark(index);
    return data.length;
  }

  /** {@inheritDoc DownloadCache.writeData} */
  async writeData(data: Uint8Array, offset: number): Promise<void> {
    this.#checkWritable();
    const { contentLength } = this.#ranges;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > contentLength) {
      throw new BlockfetchError(
        'BLOCKFETCH_INVALID_WRITE',
        `writeData of ${data.length} bytes at offset ${String(offset)} (${typeof offset}) does not fit in a file of ${contentLength} bytes`,
      );
    }
    await this.#track(this.#writeData(data, offset));
  }

  /** {@inheritDoc DownloadCache.markCached} */
  markCached(index: number): void {
    this.#checkWritable();
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#ranges.numBlocks) {
      throw new InvalidArgumentError(
        `markCached index must be a block index from 0 to ${this.#ranges.numBlocks - 1}, got ${String(index)} (${typeof index})`,
      );
    }
    this.#mark(index);
  }

  /** {@inheritDoc DownloadCache.readAt} */
  async readAt(data: Uint8Array, offset: number): Promise<number> {
    this.#checkOpen();
    const { contentLength, blockSize } = this.#ranges;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > contentLength) {
      throw new InvalidArgumentError(
        `readAt of ${data.length} bytes at offset ${String(offset)} (${typeof offset}) runs past the end of the file (${contentLength} bytes)`,
      );
    }
    if (data.length === 0) return 0;
    const last = offset + data.length - 1;
    // The first uncached block at or after the one holding `offset`: if it
    // starts at or before the last byte asked for, part of the read is missing.
    const missing: ByteRange = { from: -1, to: -1 };
    if (this.#ranges.nextClear(Math.floor(offset / blockSize), missing) !== -1 && missing.from <= last) {
      throw new BlockfetchError(
        'BLOCKFETCH_UNCACHED_RANGE',
        `cannot read bytes ${offset}-${last}: bytes ${Math.max(missing.from, offset)}-${Math.min(missing.to, last)} are not cached yet`,
      );
    }
    const read = await this.#track(this.#data.read(data, offset).catch((err: unknown) => {
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot read ${this.#data.name} at ${offset}: ${messageOf(err)}`, { cause: err });
    }));
    if (read !== data.length) {
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `${this.#data.name} ended after ${read} of ${data.length} bytes read at ${offset}`);
    }
    return read;
  }

  // ---- identity, flush, close -------------------------------------------

  /** {@inheritDoc DownloadCache.setRemoteIdentity} */
  async setRemoteIdentity(identity: RemoteIdentity): Promise<void> {
    this.#checkWritable();
    if (typeof identity !== 'object' || identity === null || typeof identity.url !== 'string') {
      throw new InvalidArgumentError(`setRemoteIdentity needs an object with a string url, got ${typeof identity}`);
    }
    if (identity.size !== this.#ranges.contentLength) {
      throw new InvalidArgumentError(
        `setRemoteIdentity: identity.size ${String(identity.size)} differs from the cache's contentLength ${this.#ranges.contentLength}`,
      );
    }
    this.#identity = Object.freeze({ ...identity });
    this.#generation++;
    await this.#requestFlush();
  }

  /** {@inheritDoc DownloadCache.flush} */
  async flush(): Promise<void> {
    this.#checkWritable();
    await this.#requestFlush();
  }

  /**
   * {@inheritDoc DownloadCache.close}
   *
   * Waits for reads and writes in flight, flushes, closes the data file and
   * releases the lock, in that order; the files are closed and the lock
   * released even when the final flush fails (the promise then rejects).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closeController.abort();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let failure: unknown;
    try {
      await Promise.allSettled([...this.#io]);
      // After the lock was lost another process may own the index: write nothing.
      if (this.#lock?.compromised === undefined) await this.#requestFlush();
    } catch (err) {
      failure = err;
    }
    await this.#data.close().catch((err: unknown) => {
      failure ??= err;
    });
    await this.#lock?.release().catch((err: unknown) => {
      failure ??= err;
    });
    if (failure !== undefined) throw failure;
  }

  // ---- internals --------------------------------------------------------

  /** The length of block `index` (the last one may be short). */
  #blockLength(index: number): number {
    const { contentLength, blockSize } = this.#ranges;
    return Math.min(blockSize, contentLength - index * blockSize);
  }

  #mark(index: number): void {
    if (this.#ranges.isBlockSet(index)) return;
    this.#ranges.setBlock(index);
    this.#generation++;
    if (this.#pendingBytes === 0) this.#firstPendingAt = Date.now();
    this.#pendingBytes += this.#blockLength(index);
    // A write that resolved while close() was starting: close()'s own final
    // flush records it; arm nothing that would outlive the cache.
    if (this.#closing !== undefined) return;
    this.#scheduleFlush();
  }

  /**
   * Arms the background flush for the earliest moment batching allows: at
   * once when `flushBytes` were marked, else `flushIntervalMs` after the
   * first unsaved mark; in both cases no sooner than the time budget allows
   * after the previous flush. Keeps an earlier timer that is already armed.
   */
  #scheduleFlush(): void {
    if (this.#generation === this.#savedGeneration || this.#closing !== undefined) return;
    const now = Date.now();
    const byBytes = this.#pendingBytes >= this.#flushBytes;
    let at = Math.max(byBytes ? now : this.#firstPendingAt + this.#flushIntervalMs, this.#lastFlushEnd + this.#flushGapMs);
    // A failing disk must not be hammered in a loop: retry after the interval, at least a second.
    if (this.#lastFlushFailed) at = Math.max(at, this.#lastFlushEnd + Math.max(this.#flushIntervalMs, RETRY_FAILED_FLUSH_MS));
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (at <= now) {
      this.#flushInBackground();
      return;
    }
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flushInBackground();
    }, at - now);
    // A pending flush must not keep a process alive on its own; close() flushes.
    this.#timer.unref();
  }

  /** Starts a background flush unless one is running or queued (its end reschedules); a failure is reported by the next operation. */
  #flushInBackground(): void {
    if (this.#inFlight !== undefined || this.#queued !== undefined) return;
    this.#requestFlush().catch((err: unknown) => {
      this.#backgroundError = asBlockfetchError(err, 'cannot flush the cache index');
    });
  }

  /**
   * Starts a flush after the one in flight, or joins the one already queued
   * (it has not taken its snapshot yet, so it will include every change made
   * until it starts). At most one flush writes at a time.
   */
  #requestFlush(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const previous = this.#inFlight;
    const queued = (async (): Promise<void> => {
      await previous?.catch(() => undefined);
      this.#queued = undefined;
      const flight = this.#flushOnce();
      this.#inFlight = flight;
      try {
        await flight;
      } finally {
        if (this.#inFlight === flight) this.#inFlight = undefined;
        // Marks made while this flush ran (or a failed flush) need another one.
        this.#scheduleFlush();
      }
    })();
    this.#queued = queued;
    return queued;
  }

  async #flushOnce(): Promise<void> {
    if (this.#generation === this.#savedGeneration) return;
    // 1. Snapshot, synchronously: only blocks whose writes already resolved are in it.
    const snapshotStarted = performance.now();
    const generation = this.#generation;
    const contents = {
      contentLength: this.#ranges.contentLength,
      blockSize: this.#ranges.blockSize,
      numBlocks: this.#ranges.numBlocks,
      cachedBlocks: this.#ranges.setCount,
      cachedBytes: this.#ranges.setBytes,
      remote: this.#identity,
      bitmap: this.#ranges.serialize(),
      updatedAt: new Date().toISOString(),
    };
    let indexWorkMs = performance.now() - snapshotStarted;
    let saveStarted: number | undefined;
    this.#pendingBytes = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      // 2. fsync the data: after this, every block in the snapshot is on disk.
      try {
        await this.#data.sync();
      } catch (err) {
        throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot fsync ${this.#data.name}: ${messageOf(err)}`, {
          cause: err,
          retryable: true,
        });
      }
      // 3. Only now may the index name those blocks: temp, fsync, rename, fsync dir.
      saveStarted = performance.now();
      await this.#index.save(contents);
      this.#savedGeneration = Math.max(this.#savedGeneration, generation);
      this.#lastFlushFailed = false;
    } catch (err) {
      this.#lastFlushFailed = true;
      throw err;
    } finally {
      if (saveStarted !== undefined) indexWorkMs += performance.now() - saveStarted;
      this.#lastFlushEnd = Date.now();
      this.#flushGapMs = indexWorkMs * (1 / this.#flushTimeBudget - 1);
    }
  }

  async #writeData(data: Uint8Array, offset: number): Promise<void> {
    try {
      await this.#data.write(data, offset);
    } catch (err) {
      const full = errnoCode(err) === 'ENOSPC';
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot write ${data.length} bytes to ${this.#data.name} at ${offset}: ${messageOf(err)}`, {
        cause: err,
        ...(full ? { hint: 'the filesystem is full although space was reserved: was the data file replaced?' } : {}),
      });
    }
  }

  /** Keeps `op` in the in-flight set until it settles, so close() can wait for it. */
  #track<T>(op: Promise<T>): Promise<T> {
    this.#io.add(op);
    const forget = (): void => {
      this.#io.delete(op);
    };
    op.then(forget, forget);
    return op;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) {
      throw new BlockfetchError('BLOCKFETCH_CACHE_CLOSED', `the cache of ${this.#data.name} is closed`);
    }
  }

  /** As #checkOpen, and also surfaces a lost lock or a background flush failure. */
  #checkWritable(): void {
    this.#checkOpen();
    const compromised = this.#lock?.compromised;
    if (compromised !== undefined) throw compromised;
    const failed = this.#backgroundError;
    if (failed !== undefined) {
      // Reported once; the marks are still in memory and the next flush retries.
      this.#backgroundError = undefined;
      throw failed;
    }
  }
}

function resolveOptions(options: LocalDownloadCacheOptions): ResolvedOptions {
  const flushIntervalMs = options.flushIntervalMs ?? defaultLocalDownloadCacheOptions.flushIntervalMs;
  const flushBytes = options.flushBytes ?? defaultLocalDownloadCacheOptions.flushBytes;
  if (!Number.isSafeInteger(flushIntervalMs) || flushIntervalMs < 0) {
    throw new InvalidArgumentError(`cache option flushIntervalMs must be a whole number of ms >= 0, got ${String(flushIntervalMs)} (${typeof flushIntervalMs})`);
  }
  if (!Number.isSafeInteger(flushBytes) || flushBytes < 0) {
    throw new InvalidArgumentError(`cache option flushBytes must be a whole number of bytes >= 0, got ${String(flushBytes)} (${typeof flushBytes})`);
  }
  for (const key of ['expectedContentLength', 'expectedBlockSize'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new InvalidArgumentError(`cache option ${key} must be a whole number of bytes, got ${String(value)} (${typeof value})`);
    }
  }
  const flushTimeBudget = options.flushTimeBudget ?? defaultLocalDownloadCacheOptions.flushTimeBudget;
  if (typeof flushTimeBudget !== 'number' || !(flushTimeBudget > 0 && flushTimeBudget <= 1)) {
    throw new InvalidArgumentError(
      `cache option flushTimeBudget must be a number above 0 and at most 1, got ${String(flushTimeBudget)} (${typeof flushTimeBudget})`,
    );
  }
  return { flushIntervalMs, flushBytes, flushTimeBudget };
}

/**
 * Waits for `promise`; resolves true when it settles, false as soon as
 * either signal aborts. Removes its listeners either way.
 */
async function waitUnlessAborted(promise: Promise<void>, a: AbortSignal | undefined, b: AbortSignal): Promise<boolean> {
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<false>((resolve) => {
    onAbort = () => resolve(false);
    a?.addEventListener('abort', onAbort, { once: true });
    b.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise.then(() => true as const), aborted]);
  } finally {
    if (onAbort !== undefined) {
      a?.removeEventListener('abort', onAbort);
      b.removeEventListener('abort', onAbort);
    }
  }
}

function asBlockfetchError(err: unknown, what: string): BlockfetchError {
  if (err instanceof BlockfetchError) return err;
  return new BlockfetchError('BLOCKFETCH_DISK_WRITE', `${what}: ${messageOf(err)}`, { cause: err });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
