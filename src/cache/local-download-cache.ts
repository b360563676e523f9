/**
 * {@link LocalDownloadCache}: the {@link DownloadCache} over a local data
 * file and a JSON index, crash-safe and batched.
 */
import { BlockfetchError, InvalidArgumentError, IndexError } from '../errors.js';
import type { ByteRange } from '../ranges/byte-range.js';
import type { ByteRanges } from '../ranges/byte-ranges.js';
import { openCacheFiles } from './cache-files.js';
import { errnoCode, type CacheFileReadWriter } from './file.js';
import { liveIndexPath, type IndexFile } from './index-file.js';
import { currentBootId, isBootId } from './boot-id.js';
import { LiveIndexWriter } from './live-index.js';
import { checkIdentityDigest, encodeIndex, rangesFromIndex, writtenRangesFromIndex, type IndexContents } from './index-format.js';
import { LiveSavePacer } from './live-save-pacer.js';
import { defaultFlushPolicy, FlushScheduler, resolveFlushPolicy, type FlushPolicy } from './flush-scheduler.js';
import { CacheLock, type CacheLockOptions } from './lock.js';
import type { DownloadCache, RemoteIdentity } from './types.js';
import { wholeNumber } from '../validate.js';

/**
 * Options of {@link LocalDownloadCache.fromFiles} (and of
 * {@link LocalDownloadCache.open}): the flush batching (see
 * {@link FlushPolicy}: `flushIntervalMs`, `flushBytes`, `flushTimeBudget`)
 * and what the caller expects the cache to hold.
 */
export interface LocalDownloadCacheOptions extends FlushPolicy {
  /** Refuse (`BLOCKFETCH_INDEX_MISMATCH`) a cache whose content length differs from this. */
  readonly expectedContentLength?: number;
  /** Refuse (`BLOCKFETCH_INDEX_MISMATCH`) a cache whose block size differs from this. */
  readonly expectedBlockSize?: number;
  /**
   * The id of the running boot, under which blocks written but not yet
   * fsynced are recorded in the index and trusted again on resume; `null`
   * records none, so every index save fsyncs the data file first (the
   * behaviour where the boot cannot be told). Tests of power cuts give one
   * id before the cut and another after it.
   * @default the kernel's boot id (`/proc/sys/kernel/random/boot_id`), or null where there is none
   */
  readonly bootId?: string | null;
}

/** Options of {@link LocalDownloadCache.open}. */
export interface OpenLocalDownloadCacheOptions extends LocalDownloadCacheOptions {
  /**
   * The cross-process lock: `'fail'` rejects at once with a `LockHeldError`
   * (`BLOCKFETCH_LOCKED`) when another process has the cache open, `'wait'`
   * waits for it (up to `lockOptions.waitTimeoutMs`, or until `signal`
   * aborts), `false` takes no lock (read-only inspection, or a caller that
   * holds it already and manages it). A {@link CacheLock} the caller took
   * (for example around creating the files) is handed over: once `open`
   * resolves, the cache reports its loss on the next write and releases it
   * on close; if `open` rejects, the caller still owns it.
   * @default 'fail'
   */
  readonly lock?: 'fail' | 'wait' | false | CacheLock;
  /** Timing of the lock: stale time, refresh interval, wait limit. @default the {@link CacheLock} defaults */
  readonly lockOptions?: Omit<CacheLockOptions, 'mode' | 'signal' | 'onCompromised'>;
  /** Stops waiting for the lock. */
  readonly signal?: AbortSignal;
}

/**
 * The defaults of {@link LocalDownloadCacheOptions}: how often the index is saved.
 *
 * @example
 * ```ts
 * const cache = await LocalDownloadCache.open(data, index, { ...defaultLocalDownloadCacheOptions, flushIntervalMs: 1000 });
 * ```
 */
export const defaultLocalDownloadCacheOptions: Readonly<Required<FlushPolicy>> = defaultFlushPolicy;

const NONE: ByteRange = Object.freeze({ from: -1, to: -1 });

/**
 * The least time between two background data syncs, in ms (one at a time):
 * each one lets the durable index name more blocks (what survives a power
 * cut), and the live index covers a kill -9 in between. They also keep the
 * disk writing while the download runs: with one a second, a download of a
 * second or two left almost all its bytes for the final fsync (0.33 s of a
 * 1.2 s download of 512 MiB, traced), which the wall time until the file is
 * durable waited for. 100 ms against 1000 ms, alternating (2026-12-07):
 * 512 MiB from the capped server at c16 1.05-1.09 s against 1.35-1.51 s
 * (to tmpfs, with no disk: 1.07-1.11), 1 GiB from nginx at c8 1.39-1.54
 * against 1.67-1.69 (the later runs of 4), the same CPU, and 23-31 MiB
 * fetched twice after a kill against 20-29; 50 ms bought no more.
 */
const DATA_SYNC_INTERVAL_MS = 100;

/** `flushIntervalMs` when the cache has a boot id and not told otherwise, in ms (see {@link FlushPolicy}). */
const LIVE_FLUSH_INTERVAL_MS = 20;

/**
 * Data writes handed to the thread pool at once. libuv runs 4 threads in
 * FIFO order: with every connection's writes queued there, each of an index
 * save's steps (create, write, rename) waited behind them, 100-180 ms a save
 * under writeback; the rest wait here, in order, and the pool keeps room.
 */
const DATA_WRITES_IN_FLIGHT = 2;

/**
 * The blocks a cache opened from `index` (whose `contents` were just read)
 * holds: the index's `bitmap`; on the boot `bootId` names, also its
 * `written` blocks and those of a live index that can be trusted (a killed
 * run's writes are still in the page cache). What {@link LocalDownloadCache.open}
 * and `blockfetch inspect` both count.
 *
 * @example
 * ```ts
 * const index = new IndexFile('big.iso.blockfetch.json');
 * (await rangesOnResume(index, await index.load(), currentBootId())).setBytes // bytes a resume keeps
 * ```
 */
export async function rangesOnResume(index: IndexFile, contents: IndexContents, bootId: string | null): Promise<ByteRanges> {
  if (bootId === null) return rangesFromIndex(contents, index.path);
  const ranges = syncedAndWritten(contents, index.path, bootId);
  const livePath = liveIndexPath(index.path);
  for (const live of await index.loadLive()) {
    const blocks = trustedLiveBlocks(live, livePath, contents, bootId);
    if (blocks !== undefined) ranges.addAll(blocks);
  }
  return ranges;
}

/** One index file's `bitmap` and, when it names boot `bootId`, its `written` blocks. */
function syncedAndWritten(contents: IndexContents, path: string, bootId: string): ByteRanges {
  const ranges = rangesFromIndex(contents, path);
  const written = writtenRangesFromIndex(contents, path, bootId);
  if (written !== undefined) ranges.addAll(written);
  return ranges;
}

/**
 * The blocks one save of the live index (`live`, read from `path`) adds,
 * when it can be trusted: written on this boot (`written.bootId`) and of the
 * same download as `durable` (sizes, remote identity). Anything else
 * (another boot's, another download's) adds nothing and is no error: the
 * durable index alone is then what the cache holds. Each valid save is a
 * true statement about this boot's writes, so a caller may add them all.
 */
function trustedLiveBlocks(live: IndexContents, path: string, durable: IndexContents, bootId: string): ByteRanges | undefined {
  if (live.written?.bootId !== bootId) return undefined;
  if (live.contentLength !== durable.contentLength || live.blockSize !== durable.blockSize) return undefined;
  if (JSON.stringify(live.remote ?? null) !== JSON.stringify(durable.remote ?? null)) return undefined;
  try {
    return syncedAndWritten(live, path, bootId);
  } catch {
    return undefined;
  }
}

/** A set of marks, serialized, with its counts: what one data sync covered. */
interface SyncedSnapshot {
  readonly bitmap: Uint8Array;
  readonly blocks: number;
  readonly bytes: number;
}

/**
 * A {@link DownloadCache} backed by a preallocated data file and an index
 * file recording which blocks are complete.
 *
 * Durability: a block is marked in memory only after its bytes were written.
 * Index saves are batched (every `flushIntervalMs`, or every `flushBytes`
 * marked, whichever comes first, and never more than `flushTimeBudget` of
 * the wall time; at most one in flight, requests coalesced); each replaces
 * the index atomically (temp, fsync, rename, fsync dir). The index keeps two
 * sets of blocks:
 *
 * - `bitmap`, the blocks known to be on disk: a data sync takes a snapshot
 *   of the marks, THEN fsyncs the data file, and only then may the index name
 *   the snapshot's blocks here. Every block it names had its write resolve
 *   before the fsync began, so this set never claims bytes that are not on
 *   disk, whatever the crash.
 * - `written`, every block whose write resolved, with the boot id
 *   ({@link LocalDownloadCacheOptions.bootId}): a kill -9 keeps them (the
 *   page cache outlives the process), a kernel crash or power cut may not,
 *   and both change the boot id. A resume on the same boot trusts them; after
 *   a reboot they are dropped and fetched again.
 *
 * So a save does not wait for the data fsync, which under writeback can take
 * seconds: it records `written` at once and starts a data sync in the
 * background (one at a time) whose snapshot the next save moves into
 * `bitmap`. Between those saves the live index beside it is written in
 * place as blocks are marked (at most every 20 ms, see
 * src/cache/live-index.ts), so a kill -9 loses only the marks of the last
 * 20 ms and the requests in flight; a power cut loses what the last data sync had not covered. With
 * no boot id, every save fsyncs the data first and records `bitmap` only.
 * {@link LocalDownloadCache.flush} and close always fsync the data: after
 * them every block marked before the call is in `bitmap`. The derivation and
 * measurements are in `docs/index-format.md`.
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
  readonly #flusher: FlushScheduler;
  #identity: RemoteIdentity | undefined;
  /** The boot whose unsynced writes the index may record, or null: record none. */
  readonly #bootId: string | null;
  /**
   * The live index (saved often, never fsynced, trusted only on this boot):
   * present when there is a boot id. See {@link liveIndexPath}.
   */
  #live: IndexFile | undefined;
  /** `#synced.blocks` when the index (the durable one) was last saved. */
  #savedSyncedBlocks: number;
  /** Set by what must reach the durable index (identity, flush, close); cleared by its save. */
  #durableWanted = false;
  /** Data writes running in the thread pool, and those waiting for a turn ({@link DATA_WRITES_IN_FLIGHT}). */
  #writesRunning = 0;
  readonly #writesWaiting: (() => void)[] = [];
  /** The live file, once the first live save created it, and that creation while it runs. */
  #liveWriter: LiveIndexWriter | undefined;
  #liveCreating: Promise<void> | undefined;
  /**
   * Blocks newly marked so far (marks only add), and how many of them the
   * newest live save and the newest durable save cover: the live index holds
   * something the durable one lacks exactly when it covers more marks.
   */
  #marks = 0;
  #liveSavedMarks = 0;
  #durableSavedMarks = 0;
  /** When the next live save is due; the timer below makes it when no mark comes first. */
  readonly #livePacer: LiveSavePacer;
  #liveTimer: NodeJS.Timeout | undefined;
  /** When {@link #liveTimer} was armed to fire (performance.now()). */
  #liveTimerAt = 0;
  /** Asks for a save once the data sync interval is over (see #flushOnce). */
  #syncLater: NodeJS.Timeout | undefined;
  /** When the last background data sync started (performance.now()). */
  #lastDataSyncAt = Number.NEGATIVE_INFINITY;
  /** The blocks the last data sync covered: what the index's `bitmap` names. */
  #synced: SyncedSnapshot;
  /** The data sync running now, and the one queued after it (which has not taken its snapshot yet). */
  #syncInFlight: Promise<void> | undefined;
  #syncQueued: Promise<void> | undefined;
  /** The failure of a background data sync, reported by the next save or flush(). */
  #syncFailure: unknown;

  /** Aborted by close(), to wake every waiting tail(). */
  readonly #closeController = new AbortController();
  #closing: Promise<void> | undefined;
  /** Reads and writes that have not settled; close() waits for them before closing the file. */
  readonly #io = new Set<Promise<unknown>>();
  /** The prefix end the previous tail() returned. */
  #lastTail = -1;

  private constructor(
    data: CacheFileReadWriter,
    index: IndexFile,
    ranges: ByteRanges,
    identity: RemoteIdentity | undefined,
    lock: CacheLock | undefined,
    options: LocalDownloadCacheOptions,
    synced: SyncedSnapshot,
  ) {
    this.#data = data;
    this.#index = index;
    this.#ranges = ranges;
    this.#identity = identity;
    this.#lock = lock;
    this.#bootId = options.bootId === undefined ? currentBootId() : options.bootId;
    this.#live = this.#bootId === null ? undefined : index.live();
    this.#synced = synced;
    this.#savedSyncedBlocks = synced.blocks;
    // With a boot id most saves go to the live index, which costs no fsync:
    // they can follow the marks closely, and that is what a kill -9 loses.
    const flushIntervalMs = options.flushIntervalMs ?? (this.#bootId === null ? defaultFlushPolicy.flushIntervalMs : LIVE_FLUSH_INTERVAL_MS);
    const policy = resolveFlushPolicy({ ...options, flushIntervalMs });
    this.#flusher = new FlushScheduler(policy, () => this.#flushOnce());
    this.#livePacer = new LiveSavePacer(policy.flushTimeBudget);
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
    checkOptions(options);
    const mode = options.lock ?? 'fail';
    const adopted = mode instanceof CacheLock;
    if (!adopted && mode !== 'fail' && mode !== 'wait' && mode !== false) {
      throw new InvalidArgumentError(`open option lock must be 'fail', 'wait', false or a CacheLock, got ${String(mode)} (${typeof mode})`);
    }
    const lock = adopted
      ? mode
      : mode === false
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
      return await LocalDownloadCache.#load(files.data, files.index, lock, options);
    } catch (err) {
      await data?.close().catch(() => undefined);
      if (!adopted) await lock?.release().catch(() => undefined);
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
    checkOptions(options);
    return LocalDownloadCache.#load(data, index, undefined, options);
  }

  static async #load(
    data: CacheFileReadWriter,
    index: IndexFile,
    lock: CacheLock | undefined,
    options: LocalDownloadCacheOptions,
  ): Promise<LocalDownloadCache> {
    const contents = await index.load();
    const mismatch = (what: string, hint: string): IndexError =>
      new IndexError('BLOCKFETCH_INDEX_MISMATCH', index.path, what, { hint: `${hint}; nothing was changed` });
    if (options.expectedContentLength !== undefined && options.expectedContentLength !== contents.contentLength) {
      throw mismatch(
        `the cache holds a file of ${contents.contentLength} bytes, not the ${options.expectedContentLength} expected`,
        'the remote is a different file or revision: start over (option `restart`) to download it',
      );
    }
    if (options.expectedBlockSize !== undefined && options.expectedBlockSize !== contents.blockSize) {
      throw mismatch(
        `the cache uses blocks of ${contents.blockSize} bytes, not the ${options.expectedBlockSize} asked for`,
        `resume with block size ${contents.blockSize} (option \`blockSize\`), or start over (option \`restart\`)`,
      );
    }
    if (contents.remote !== undefined && contents.remote.size !== contents.contentLength) {
      throw mismatch(
        `the recorded remote is ${contents.remote.size} bytes but the cache holds ${contents.contentLength}`,
        'the index was edited or belongs to another download: start over (option `restart`)',
      );
    }
    let size: number;
    try {
      size = await data.size();
    } catch (err) {
      throw new BlockfetchError('BLOCKFETCH_DISK_READ', `cannot stat ${data.name}: ${messageOf(err)}`, { cause: err });
    }
    if (size !== contents.contentLength) {
      throw mismatch(
        `the data file ${data.name} is ${size} bytes but the index describes ${contents.contentLength}`,
        'the index belongs to another data file, or the data file was truncated or replaced: check both paths, or start over (option `restart`)',
      );
    }
    const synced: SyncedSnapshot = { bitmap: contents.bitmap, blocks: contents.cachedBlocks, bytes: contents.cachedBytes };
    const ranges = await rangesOnResume(index, contents, options.bootId === undefined ? currentBootId() : options.bootId);
    const cache = new LocalDownloadCache(data, index, ranges, contents.remote, lock, options, synced);
    cache.#createLiveEarly();
    return cache;
  }

  /**
   * Starts creating the live index now, before any data is written, when
   * there is something left to download. Made at the first mark instead,
   * its temp file took about 230 ms to be renamed into place once data was
   * flowing (one traced run), and every block marked meanwhile was only in
   * memory. Killed 0.5 s into 1 GiB at c8, the bytes received but not
   * recorded: median 43 MiB (8 runs, 19-110) against 69 (4 runs, 44-97).
   */
  #createLiveEarly(): void {
    if (this.#live === undefined || this.#ranges.complete) return;
    this.#liveCreating = this.#index.createLive(encodeIndex(this.#contents(this.#snapshot()))).then(
      (created) => {
        this.#liveWriter = created;
        this.#saveLiveSoon(); // the marks made meanwhile
      },
      () => {
        // No live file: a kill costs what the durable index has not recorded.
        this.#live = undefined;
      },
    );
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
    this.#checkFits('writeData', data.length, offset);
    await this.#track(this.#writeData(data, offset));
  }

  /** {@inheritDoc DownloadCache.writeDataParts} */
  async writeDataParts(parts: readonly Uint8Array[], offset: number): Promise<void> {
    this.#checkWritable();
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    this.#checkFits('writeDataParts', length, offset);
    const data = this.#data;
    const writev = data.writev?.bind(data);
    const write = this.#limitWrite(() =>
      writev === undefined ? data.write(parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts), offset) : writev(parts, offset),
    );
    await this.#track(this.#wrapWriteError(write, length, offset));
  }

  /**
   * {@inheritDoc DownloadCache.writeDataNow}
   *
   * Through the data file's {@link CacheFileReadWriter.writeNow}, which
   * writes during the call without a turn among the thread pool's data
   * writes; a data file without it gets a copy of `data`.
   */
  async writeDataNow(data: Uint8Array, offset: number): Promise<void> {
    this.#checkWritable();
    this.#checkFits('writeDataNow', data.length, offset);
    const file = this.#data;
    const write = file.writeNow === undefined ? this.#writeData(Buffer.from(data), offset) : this.#wrapWriteError(file.writeNow(data, offset), data.length, offset);
    await this.#track(write);
  }

  /** {@inheritDoc DownloadCache.markCached} */
  markCached(index: number): void {
    this.#checkWritable();
    wholeNumber('', 'markCached index', index, { max: this.#ranges.numBlocks - 1 });
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
      throw new BlockfetchError('BLOCKFETCH_DISK_READ', `cannot read ${this.#data.name} at ${offset}: ${messageOf(err)}`, { cause: err });
    }));
    if (read !== data.length) {
      throw new BlockfetchError('BLOCKFETCH_DISK_READ', `${this.#data.name} ended after ${read} of ${data.length} bytes read at ${offset}`);
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
    checkIdentityDigest('setRemoteIdentity', identity);
    this.#identity = Object.freeze({ ...identity });
    this.#durableWanted = true;
    this.#flusher.changed(0);
    await this.#flusher.flushNow();
  }

  /**
   * {@inheritDoc DownloadCache.flush}
   *
   * Always fsyncs the data file: once it resolves, every block marked before
   * the call is in the index's `bitmap`, which survives a power cut.
   */
  async flush(): Promise<void> {
    this.#checkWritable();
    this.#throwSyncFailure();
    this.#saveLiveNow(); // as close() does: the data sync can take long
    await this.#syncNow();
    this.#catchUpDurable();
    await this.#flusher.flushNow();
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
    this.#flusher.stop();
    clearTimeout(this.#syncLater);
    clearTimeout(this.#liveTimer);
    let failure: unknown;
    try {
      await Promise.allSettled([...this.#io]);
      await this.#liveCreating;
      // The marks the live index lacks (those of the last interval), saved
      // before the final data sync: under writeback that sync takes a second
      // or more, and a kill -9 during it would lose them.
      this.#saveLiveNow();
      await this.#liveWriter?.close().catch(() => undefined);
      // After the lock was lost another process may own the index: write
      // nothing more, only let a flush already under way end.
      if (this.#lock?.compromised === undefined) {
        this.#throwSyncFailure();
        await this.#syncNow();
        // After this the live index says nothing more and goes.
        this.#catchUpDurable();
        await this.#flusher.flushNow();
        if (!this.#liveAhead()) await this.#live?.remove();
      } else {
        await this.#flusher.idle();
      }
      // A background sync must end before the file is closed under it.
      await this.#syncInFlight?.catch(() => undefined);
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
    this.#marks++;
    // A write that resolved while close() was starting still counts: the
    // scheduler is stopped by then, and close()'s own final flush records it.
    const length = this.#blockLength(index);
    this.#flusher.changed(length);
    this.#livePacer.marked(length);
    this.#saveLiveSoon();
  }

  /**
   * Saves the live index now, or arms one timer for when it is due (see
   * src/cache/live-save-pacer.ts): the marks a kill -9 would lose are those
   * since the last live save.
   *
   * A mark made once that time has come saves at once, even with the timer
   * armed: Node runs timers only between I/O phases, and at full speed one
   * phase read and wrote for 124-256 ms (1 GiB from nginx at c8), so marks
   * that waited for the timer went unsaved that long, and a kill -9 now and
   * then lost 138-575 MiB (docs/benchmarks.md, sixth session).
   */
  #saveLiveSoon(): void {
    if (this.#live === undefined || this.#closing !== undefined) return;
    const dueAt = this.#livePacer.dueAt();
    const wait = dueAt - performance.now();
    if (wait <= 0) {
      clearTimeout(this.#liveTimer);
      this.#liveTimer = undefined;
      this.#saveLiveNow();
      return;
    }
    // Armed for no later than now due: nothing to change.
    if (this.#liveTimer !== undefined && this.#liveTimerAt <= dueAt) return;
    clearTimeout(this.#liveTimer);
    this.#liveTimerAt = dueAt;
    this.#liveTimer = setTimeout(() => {
      this.#liveTimer = undefined;
      if (this.#closing === undefined) this.#saveLiveNow();
    }, wait);
    this.#liveTimer.unref();
  }

  /**
   * One save of the live index, its write issued before this returns.
   * Never throws: a failing live file only makes a kill cost more, and the
   * durable index reports a failing disk. Returns the ms of main-thread
   * work: the encoding, not the write.
   */
  #saveLiveNow(): number {
    const started = performance.now();
    if (this.#live === undefined || this.#lock?.compromised !== undefined) return 0;
    const writer = this.#liveWriter;
    // Still being made (it saves once it exists); a cache complete when it
    // opened makes none, and marks nothing.
    if (writer === undefined) return 0;
    if (this.#marks <= Math.max(this.#liveSavedMarks, this.#durableSavedMarks)) return 0; // nothing new since the last save of either kind
    const bytes = encodeIndex(this.#contents(this.#snapshot()));
    // The budget counts the encoding, not the write: a write the kernel
    // throttles (a disk far behind) can take 100 ms or more, and 19 times
    // that without a save is what a kill -9 would then lose.
    const workMs = performance.now() - started;
    this.#liveSavedMarks = this.#marks;
    writer.save(bytes);
    this.#livePacer.saved(workMs, performance.now());
    return workMs;
  }

  /**
   * One index save, for the {@link FlushScheduler}. Resolves to the
   * milliseconds of index work (not counting a data fsync) for the
   * scheduler's time budget.
   *
   * With a boot id: snapshot → save, the unsynced blocks as `written`; and a
   * background data sync is started for them. Without: snapshot → fsync data
   * → save, everything in `bitmap`.
   */
  async #flushOnce(): Promise<number> {
    // Another process may own the cache once our lock is lost: never write its index.
    const compromised = this.#lock?.compromised;
    if (compromised !== undefined) throw compromised;
    this.#throwSyncFailure();
    // 1. Snapshot, synchronously (the scheduler relies on it): only blocks
    //    whose writes already resolved are in it.
    // The time budget counts this main-thread work (snapshot, encode,
    // checksum) only: the writes and fsyncs wait in the thread pool and hold
    // nothing else up, and counting them let one save queued behind a slow
    // disk pause the next for seconds, which is what a kill then lost.
    const snapshotStarted = performance.now();
    const marks = this.#marks;
    if (this.#bootId === null) {
      const snapshot = this.#snapshot();
      let workMs = performance.now() - snapshotStarted;
      // 2. fsync the data: after this, every block in the snapshot is on disk.
      await this.#syncData();
      this.#synced = snapshot;
      // 3. Only now may the index name those blocks.
      const encodeStarted = performance.now();
      const bytes = encodeIndex(this.#contents(snapshot));
      workMs += performance.now() - encodeStarted;
      await this.#index.replace(bytes);
      return workMs;
    }
    const syncedBlocks = this.#synced.blocks;
    // Serialized only for a durable save below: most flushes end in a live
    // save, which takes its own snapshot (#saveLiveNow).
    const markedBlocks = this.#ranges.setCount;
    // The data sync runs beside the saves, at most one every
    // DATA_SYNC_INTERVAL_MS; the save after it moves its snapshot into
    // `bitmap`. A failure is kept for the next save to report.
    const now = performance.now();
    if (
      this.#syncInFlight === undefined &&
      this.#syncQueued === undefined &&
      markedBlocks > syncedBlocks &&
      now - this.#lastDataSyncAt >= DATA_SYNC_INTERVAL_MS
    ) {
      this.#lastDataSyncAt = now;
      this.#syncNow().catch((err: unknown) => {
        this.#syncFailure = err;
        this.#flusher.changed(0);
      });
    } else if (markedBlocks > syncedBlocks && this.#syncLater === undefined) {
      // Not yet: come back when the interval is over, even if no block
      // lands meanwhile (a stalled download), so what only the live index
      // records is never left out of the durable one for long.
      const wait = Math.max(0, this.#lastDataSyncAt + DATA_SYNC_INTERVAL_MS - now);
      this.#syncLater = setTimeout(() => {
        this.#syncLater = undefined;
        this.#flusher.changed(0);
      }, wait);
      this.#syncLater.unref();
    }
    // The durable index (fsynced) when what it records about the disk moved
    // (a data sync ended) or a caller needs it; else only the live one: no
    // flush of the disk, so it can follow every mark a kill -9 would lose.
    const durable = this.#live === undefined || this.#durableWanted || syncedBlocks !== this.#savedSyncedBlocks;
    if (durable) {
      const bytes = encodeIndex(this.#contents(this.#snapshot()));
      const workMs = performance.now() - snapshotStarted;
      this.#durableWanted = false;
      await this.#index.replace(bytes);
      this.#savedSyncedBlocks = syncedBlocks;
      this.#durableSavedMarks = Math.max(this.#durableSavedMarks, marks);
      return workMs;
    }
    // The marks saved themselves as they came (#saveLiveSoon); this catches
    // what a stalled download left unsaved, at no cost when there is none.
    return this.#saveLiveNow();
  }

  /** The marks now, serialized: what a save or a data sync covers. */
  #snapshot(): SyncedSnapshot {
    return { bitmap: this.#ranges.serialize(), blocks: this.#ranges.setCount, bytes: this.#ranges.setBytes };
  }

  /** What the index records: `bitmap` from the last data sync, and the rest of `written` (when there is a boot id). */
  #contents(written: SyncedSnapshot): IndexContents {
    const synced = this.#synced;
    const { contentLength, blockSize, numBlocks } = this.#ranges;
    const unsynced = this.#bootId !== null && written.blocks > synced.blocks;
    return {
      contentLength,
      blockSize,
      numBlocks,
      cachedBlocks: synced.blocks,
      cachedBytes: synced.bytes,
      remote: this.#identity,
      bitmap: synced.bitmap,
      updatedAt: new Date().toISOString(),
      ...(unsynced && this.#bootId !== null
        ? { written: { bootId: this.#bootId, cachedBlocks: written.blocks, cachedBytes: written.bytes, bitmap: written.bitmap } }
        : {}),
    };
  }

  /**
   * A data sync covering every block marked before the call: snapshot, then
   * fsync; once it resolves the snapshot is what `bitmap` may name (the next
   * save records it). At most one runs at a time; a call while one runs
   * joins the single queued sync, which takes its snapshot when it starts.
   */
  #syncNow(): Promise<void> {
    if (this.#syncQueued !== undefined) return this.#syncQueued;
    const previous = this.#syncInFlight;
    const queued = (async (): Promise<void> => {
      await previous?.catch(() => undefined);
      this.#syncQueued = undefined;
      if (this.#ranges.setCount <= this.#synced.blocks) return;
      const snapshot = this.#snapshot();
      const flight = this.#syncData().then(() => {
        const newlySynced = snapshot.bytes - this.#synced.bytes;
        if (newlySynced <= 0) return;
        this.#synced = snapshot;
        // Bytes newly on disk count toward `flushBytes` like bytes newly marked.
        this.#flusher.changed(newlySynced);
      });
      this.#syncInFlight = flight;
      try {
        await flight;
      } finally {
        if (this.#syncInFlight === flight) this.#syncInFlight = undefined;
      }
    })();
    this.#syncQueued = queued;
    return queued;
  }

  /** Reports (once) the failure of a background data sync. */
  #throwSyncFailure(): void {
    const failure = this.#syncFailure;
    if (failure === undefined) return;
    this.#syncFailure = undefined;
    throw failure;
  }

  /** fsyncs the data file. */
  async #syncData(): Promise<void> {
    try {
      await this.#data.sync();
    } catch (err) {
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot fsync ${this.#data.name}: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  #writeData(data: Uint8Array, offset: number): Promise<void> {
    return this.#wrapWriteError(this.#limitWrite(() => this.#data.write(data, offset)), data.length, offset);
  }

  /** True when the live index holds marks the durable one does not. */
  #liveAhead(): boolean {
    return this.#liveSavedMarks > this.#durableSavedMarks;
  }

  /** When the live index holds a save the durable one lacks, makes the next save a durable one. */
  #catchUpDurable(): void {
    if (!this.#liveAhead()) return;
    this.#durableWanted = true;
    this.#flusher.changed(0);
  }

  /** Throws `BLOCKFETCH_INVALID_WRITE` unless `length` bytes at `offset` lie inside the file. */
  #checkFits(what: string, length: number, offset: number): void {
    const { contentLength } = this.#ranges;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > contentLength) {
      throw new BlockfetchError(
        'BLOCKFETCH_INVALID_WRITE',
        `${what} of ${length} bytes at offset ${String(offset)} (${typeof offset}) does not fit in a file of ${contentLength} bytes`,
      );
    }
  }

  /**
   * Runs `write` when fewer than {@link DATA_WRITES_IN_FLIGHT} data writes are
   * running, in call order. Not p-queue: with it the same downloads took
   * 216-226 MB of peak RSS instead of 136-138 MB and ran slower (1 GiB, c8,
   * two runs each), so this hand-written queue stays.
   */
  #limitWrite(write: () => Promise<void>): Promise<void> {
    const run = (): Promise<void> => {
      this.#writesRunning++;
      return write().finally(() => {
        this.#writesRunning--;
        this.#writesWaiting.shift()?.();
      });
    };
    if (this.#writesRunning < DATA_WRITES_IN_FLIGHT) return run();
    return new Promise<void>((resolve, reject) => {
      this.#writesWaiting.push(() => void run().then(resolve, reject));
    });
  }

  /** A failed write of `length` bytes at `offset`, as a `BLOCKFETCH_DISK_WRITE` naming the file. */
  async #wrapWriteError(write: Promise<void>, length: number, offset: number): Promise<void> {
    try {
      await write;
    } catch (err) {
      const full = errnoCode(err) === 'ENOSPC';
      throw new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot write ${length} bytes to ${this.#data.name} at ${offset}: ${messageOf(err)}`, {
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
    // Reported once; the marks are still in memory and the next flush retries.
    const failed = this.#flusher.takeBackgroundError();
    if (failed !== undefined) throw failed;
  }
}

/** Checks the options up front, so a bad one is reported before any file is opened. */
function checkOptions(options: LocalDownloadCacheOptions): void {
  resolveFlushPolicy(options);
  if (options.bootId !== undefined && options.bootId !== null && !isBootId(options.bootId)) {
    throw new InvalidArgumentError(`cache option bootId must be null or 1 to 64 letters, digits or "-", got ${JSON.stringify(options.bootId)}`);
  }
  for (const key of ['expectedContentLength', 'expectedBlockSize'] as const) {
    if (options[key] !== undefined) wholeNumber('cache', key, options[key], { unit: 'bytes' });
  }
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

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
