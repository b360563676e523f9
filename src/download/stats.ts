/**
 * Download statistics: an immutable snapshot type for callers and a small
 * mutable recorder the downloaders update as bytes land.
 *
 * Shared by the CachingDownloader and the StreamingDownloader, so the field
 * names are about blocks "done" (cached, or delivered in order for a
 * stream) rather than about a particular destination.
 *
 * Unlike the Go seed, counts are per run and never double counted across
 * passes: a block is counted once, when it is marked done, and the
 * invariant `doneBytes === doneBytesAtStart + downloadedBytes` holds at
 * every snapshot.
 */

/**
 * One moment of a download, frozen. Every field is a plain number, so a
 * snapshot can be logged, compared and sent across threads as is.
 *
 * @example
 * ```ts
 * const pct = (100 * s.doneBytes) / Math.max(1, s.size);
 * console.log(`${pct.toFixed(1)} % (${s.inFlight} connections, ${s.retries} retries)`);
 * ```
 */
export interface DownloadStats {
  /** The file's size in bytes. */
  readonly size: number;
  /** The block size in bytes. */
  readonly blockSize: number;
  /** The number of blocks the file has. */
  readonly blocks: number;
  /** Bytes already done (cached) when the run started. */
  readonly doneBytesAtStart: number;
  /** Blocks already done (cached) when the run started. */
  readonly doneBlocksAtStart: number;
  /** Bytes done now: `doneBytesAtStart + downloadedBytes`. */
  readonly doneBytes: number;
  /** Blocks done now: `doneBlocksAtStart + downloadedBlocks`. */
  readonly doneBlocks: number;
  /** Bytes of the blocks this run completed. */
  readonly downloadedBytes: number;
  /** Blocks this run completed. */
  readonly downloadedBlocks: number;
  /**
   * Bytes received from the reader this run, including bytes of attempts that
   * failed part way (so `receivedBytes - downloadedBytes` is roughly the waste).
   */
  readonly receivedBytes: number;
  /** Requests started this run (retries included). */
  readonly requests: number;
  /** Requests open right now. */
  readonly inFlight: number;
  /** Retries made this run. */
  readonly retries: number;
  /** Failed attempts this run (retried or not). */
  readonly errors: number;
  /** Passes over the outstanding blocks started this run (1 unless `waitForCompletion`). */
  readonly passes: number;
  /** Milliseconds since the run started. */
  readonly elapsedMs: number;
}

/** The numbers a {@link StatsRecorder} starts from. */
export interface StatsStart {
  /** The file's size in bytes. */
  readonly size: number;
  /** The block size in bytes. */
  readonly blockSize: number;
  /** Bytes already done before this run. @default 0 */
  readonly doneBytes?: number;
  /** Blocks already done before this run. @default 0 */
  readonly doneBlocks?: number;
}

/**
 * Accumulates the counts of one run and hands out frozen
 * {@link DownloadStats} snapshots. Not a public API for callers; the
 * downloaders own one each.
 *
 * @example
 * ```ts
 * const rec = new StatsRecorder({ size: 100, blockSize: 10 });
 * rec.requestStarted(); rec.received(10); rec.blockDone(10); rec.requestEnded();
 * rec.snapshot().downloadedBlocks // 1
 * ```
 */
export class StatsRecorder {
  readonly #size: number;
  readonly #blockSize: number;
  readonly #blocks: number;
  readonly #doneBytesAtStart: number;
  readonly #doneBlocksAtStart: number;
  readonly #startedAt: number;
  readonly #now: () => number;
  #downloadedBytes = 0;
  #downloadedBlocks = 0;
  #receivedBytes = 0;
  #requests = 0;
  #inFlight = 0;
  #retries = 0;
  #errors = 0;
  #passes = 0;
  #version = 0;

  /**
   * @param start the file's shape and what was already done.
   * @param now the clock for `elapsedMs`; `performance.now` unless testing.
   */
  constructor(start: StatsStart, now: () => number = () => performance.now()) {
    this.#size = start.size;
    this.#blockSize = start.blockSize;
    this.#blocks = start.size === 0 ? 0 : Math.ceil(start.size / start.blockSize);
    this.#doneBytesAtStart = start.doneBytes ?? 0;
    this.#doneBlocksAtStart = start.doneBlocks ?? 0;
    this.#now = now;
    this.#startedAt = now();
  }

  /**
   * A counter that changes whenever any count does: lets a progress timer
   * skip emitting a snapshot identical to the previous one.
   */
  get version(): number {
    return this.#version;
  }

  /** `bytes` arrived from the reader (and were written). */
  received(bytes: number): void {
    this.#receivedBytes += bytes;
    this.#version++;
  }

  /** One block of `bytes` bytes is done (marked cached, or delivered). */
  blockDone(bytes: number): void {
    this.#downloadedBytes += bytes;
    this.#downloadedBlocks++;
    this.#version++;
  }

  /** A request was opened. */
  requestStarted(): void {
    this.#requests++;
    this.#inFlight++;
    this.#version++;
  }

  /** A request ended, successfully or not. */
  requestEnded(): void {
    this.#inFlight--;
    this.#version++;
  }

  /** An attempt failed (whether or not it is retried). */
  error(): void {
    this.#errors++;
    this.#version++;
  }

  /** A failed attempt will be retried. */
  retry(): void {
    this.#retries++;
    this.#version++;
  }

  /** A pass over the outstanding blocks began. */
  passStarted(): void {
    this.#passes++;
    this.#version++;
  }

  /** A frozen copy of the counts now. */
  snapshot(): DownloadStats {
    return Object.freeze({
      size: this.#size,
      blockSize: this.#blockSize,
      blocks: this.#blocks,
      doneBytesAtStart: this.#doneBytesAtStart,
      doneBlocksAtStart: this.#doneBlocksAtStart,
      doneBytes: this.#doneBytesAtStart + this.#downloadedBytes,
      doneBlocks: this.#doneBlocksAtStart + this.#downloadedBlocks,
      downloadedBytes: this.#downloadedBytes,
      downloadedBlocks: this.#downloadedBlocks,
      receivedBytes: this.#receivedBytes,
      requests: this.#requests,
      inFlight: this.#inFlight,
      retries: this.#retries,
      errors: this.#errors,
      passes: this.#passes,
      elapsedMs: Math.max(0, Math.round(this.#now() - this.#startedAt)),
    });
  }
}
