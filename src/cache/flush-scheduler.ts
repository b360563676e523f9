/**
 * When to write the index: batching by time and by bytes, a cap on the share
 * of wall time spent flushing, at most one flush at a time, and coalescing of
 * requests. It knows nothing of files; the cache hands it a `flush` function.
 */
import { BlockfetchError, InvalidArgumentError } from '../errors.js';
import { describeValue, wholeNumber } from '../validate.js';

/** How flushes are batched. All three are options of `LocalDownloadCache`. */
export interface FlushPolicy {
  /**
   * The longest time a change waits before a background flush records it,
   * in ms. 0 flushes after every change (coalesced).
   *
   * 100 ms: what a kill -9 loses is what the index has not yet recorded,
   * and since a save records blocks written but not yet fsynced (see
   * `LocalDownloadCache`) it no longer waits for the data fsync, so a save
   * costs a small file's write and fsync; `flushTimeBudget` still caps the
   * main-thread work. A `LocalDownloadCache` with a boot id saves most
   * changes to its live index (no fsync at all) and defaults to 20 ms.
   * @default 100 (20 in a LocalDownloadCache with a boot id)
   */
  readonly flushIntervalMs?: number;
  /**
   * Start a background flush as soon as this many bytes were marked cached
   * since the last one, whatever the time. 0 flushes after every change.
   * @default 268435456 (256 MiB)
   */
  readonly flushBytes?: number;
  /**
   * The largest share of wall time background flushes may spend on the
   * index's main-thread work (snapshot, encode, checksum: what grows with
   * the bitmap and holds up the event loop). The writes, fsyncs and renames
   * are not counted: they wait in the thread pool beside the download. After
   * a flush whose work took `d` ms, the next background flush waits at least
   * `d * (1 / flushTimeBudget - 1)` ms, whatever `flushIntervalMs` and
   * `flushBytes` say. Explicit flushes are never delayed. 1 disables it.
   * @default 0.05
   */
  readonly flushTimeBudget?: number;
}

/** The defaults of {@link FlushPolicy}. */
export const defaultFlushPolicy: Readonly<Required<FlushPolicy>> = Object.freeze({
  flushIntervalMs: 100,
  flushBytes: 256 * 1024 * 1024,
  flushTimeBudget: 0.05,
});

/**
 * The pause a piece of main-thread work of `workMs` buys under a time budget
 * (the share of wall time it may take): `workMs * (1 / budget - 1)`. The
 * scheduler's background flushes and the cache's live-index saves both wait
 * this long after their work.
 *
 * @example
 * ```ts
 * budgetGapMs(1, 0.05) // 19
 * ```
 */
export function budgetGapMs(workMs: number, budget: number): number {
  return workMs * (1 / budget - 1);
}

/** The least time between a failed background flush and the next try, in ms. */
export const RETRY_FAILED_FLUSH_MS = 1000;

/**
 * One flush. It must take its snapshot of the state SYNCHRONOUSLY, before
 * its first `await` (the scheduler counts the changes it covers at the call),
 * and resolve to the milliseconds its index work took (for the time budget).
 */
export type FlushFunction = () => Promise<number>;

/** Fills in and checks a {@link FlushPolicy}, naming a bad field. */
export function resolveFlushPolicy(policy: FlushPolicy): Required<FlushPolicy> {
  const resolved = {
    flushIntervalMs: policy.flushIntervalMs ?? defaultFlushPolicy.flushIntervalMs,
    flushBytes: policy.flushBytes ?? defaultFlushPolicy.flushBytes,
    flushTimeBudget: policy.flushTimeBudget ?? defaultFlushPolicy.flushTimeBudget,
  };
  wholeNumber('cache', 'flushIntervalMs', resolved.flushIntervalMs, { unit: 'ms' });
  wholeNumber('cache', 'flushBytes', resolved.flushBytes, { unit: 'bytes' });
  const budget = resolved.flushTimeBudget;
  // Not numberInRange: 0 is excluded (a budget of 0 would never flush in the
  // background), and that helper's ranges are closed.
  if (typeof budget !== 'number' || !(budget > 0 && budget <= 1)) {
    throw new InvalidArgumentError(`cache option flushTimeBudget must be a number above 0 and at most 1, got ${describeValue(budget)}`);
  }
  return resolved;
}

/**
 * Decides when a cache's index is written.
 *
 * - {@link FlushScheduler.changed} is called for every change; it arms a
 *   background flush for the earliest moment the policy allows: at once when
 *   `flushBytes` were marked, else `flushIntervalMs` after the first unsaved
 *   change; never sooner than the time budget allows after the previous
 *   flush, and at least a second after a failed one (no spinning on a bad disk).
 * - {@link FlushScheduler.flushNow} is an explicit request: never delayed.
 * - At most one flush runs at a time. A request while one runs joins the
 *   single queued flush, which has not taken its snapshot yet and so covers
 *   every change made before it starts.
 *
 * @example
 * ```ts
 * const scheduler = new FlushScheduler({ flushIntervalMs: 1000 }, async () => { snapshot(); await write(); return ms; });
 * scheduler.changed(blockLength);   // after each block is marked
 * await scheduler.flushNow();       // flush() / close()
 * ```
 */
export class FlushScheduler {
  readonly #policy: Required<FlushPolicy>;
  readonly #flush: FlushFunction;
  #stopped = false;

  /** Bumped on every change; a flush covers the generation it was started at. */
  #generation = 0;
  #savedGeneration = 0;
  /** Bytes changed since the last snapshot, and when the first of them came (Date.now()). */
  #pendingBytes = 0;
  #firstPendingAt = 0;

  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  /** When the last flush ended, the pause its cost buys under the budget, and whether it failed. */
  #lastEnd = 0;
  #gapMs = 0;
  #lastFailed = false;

  /** The flush that is writing now, and the one that will start after it. */
  #inFlight: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #backgroundError: BlockfetchError | undefined;

  /**
   * @param policy - The batching; checked, and a bad field named in an `InvalidArgumentError`.
   * @param flush - Writes one flush; see {@link FlushFunction} for its contract.
   */
  constructor(policy: FlushPolicy, flush: FlushFunction) {
    this.#policy = resolveFlushPolicy(policy);
    this.#flush = flush;
  }

  /** True when there are changes no flush has saved yet. */
  get dirty(): boolean {
    return this.#generation !== this.#savedGeneration;
  }

  /** Records a change (`bytes` newly marked cached; 0 for other changes) and arms a background flush. */
  changed(bytes: number): void {
    if (this.#pendingBytes === 0) this.#firstPendingAt = Date.now();
    this.#generation++;
    this.#pendingBytes += bytes;
    this.#schedule();
  }

  /** Flushes every change made so far, at once (joining a queued flush if there is one). */
  flushNow(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const previous = this.#inFlight;
    const queued = (async (): Promise<void> => {
      await previous?.catch(() => undefined);
      this.#queued = undefined;
      const flight = this.#runOnce();
      this.#inFlight = flight;
      try {
        await flight;
      } finally {
        if (this.#inFlight === flight) this.#inFlight = undefined;
        // Changes made while this flush ran (or a failed flush) need another one.
        this.#schedule();
      }
    })();
    this.#queued = queued;
    return queued;
  }

  /** Stops background flushing for good (the cache is closing); {@link FlushScheduler.flushNow} still works. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Resolves once no flush is running or queued (whether they succeed or fail). */
  async idle(): Promise<void> {
    while (this.#queued !== undefined || this.#inFlight !== undefined) {
      await (this.#queued ?? this.#inFlight)?.catch(() => undefined);
    }
  }

  /** The failure of a background flush since the last call, if any (each is reported once). */
  takeBackgroundError(): BlockfetchError | undefined {
    const err = this.#backgroundError;
    this.#backgroundError = undefined;
    return err;
  }

  #schedule(): void {
    if (!this.dirty || this.#stopped) return;
    const { flushIntervalMs, flushBytes } = this.#policy;
    const now = Date.now();
    let at = Math.max(this.#pendingBytes >= flushBytes ? now : this.#firstPendingAt + flushIntervalMs, this.#lastEnd + this.#gapMs);
    if (this.#lastFailed) at = Math.max(at, this.#lastEnd + Math.max(flushIntervalMs, RETRY_FAILED_FLUSH_MS));
    if (this.#timer !== undefined && this.#timerAt <= at) return; // an earlier one is armed
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (at <= now) {
      this.#background();
      return;
    }
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#background();
    }, at - now);
    // A pending flush must not keep a process alive on its own; close() flushes.
    this.#timer.unref();
  }

  #background(): void {
    // A flush already running or queued reschedules when it ends.
    if (this.#inFlight !== undefined || this.#queued !== undefined) return;
    this.flushNow().catch((err: unknown) => {
      this.#backgroundError =
        err instanceof BlockfetchError
          ? err
          : new BlockfetchError('BLOCKFETCH_DISK_WRITE', `cannot flush the cache index: ${err instanceof Error ? err.message : String(err)}`, {
              cause: err,
            });
    });
  }

  async #runOnce(): Promise<void> {
    if (!this.dirty) return;
    const generation = this.#generation;
    this.#pendingBytes = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      // The flush function snapshots synchronously, in this same turn: it
      // covers exactly the changes up to `generation`.
      const indexWorkMs = await this.#flush();
      this.#savedGeneration = Math.max(this.#savedGeneration, generation);
      this.#gapMs = budgetGapMs(indexWorkMs, this.#policy.flushTimeBudget);
      this.#lastFailed = false;
    } catch (err) {
      this.#lastFailed = true;
      throw err;
    } finally {
      this.#lastEnd = Date.now();
    }
  }
}
