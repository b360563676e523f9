/**
 * When the live index (src/cache/live-index.ts) is next due to be saved:
 * the one owner of its three rules.
 *
 * - {@link LIVE_SAVE_BYTES} of newly marked blocks make a save due at once;
 * - otherwise one is due {@link LIVE_SAVE_INTERVAL_MS} after the last;
 * - either way no sooner than the flush time budget allows: a save whose
 *   encoding took `d` ms is followed by at least `d * (1 / budget - 1)` ms
 *   without one, `d` being the least of the last {@link LIVE_WORK_SAMPLES}
 *   encodings.
 *
 * Times are `performance.now()` values, passed in (the pacer reads no clock).
 *
 * @module
 */
import { budgetGapMs } from './flush-scheduler.js';

/**
 * The longest time between two live saves while blocks are being marked,
 * in ms, unless {@link LIVE_SAVE_BYTES} come first. A save is one in-place
 * write on the main thread after encoding the index, 0.16-0.19 ms (median)
 * at 1,024 blocks during a download.
 */
export const LIVE_SAVE_INTERVAL_MS = 20;

/**
 * Bytes of newly marked blocks that make the next live save due before
 * {@link LIVE_SAVE_INTERVAL_MS} is over. Time alone bounded a kill's loss
 * badly: within one long event-loop turn the socket queues are drained at
 * memory speed, and kills of 1 GiB from nginx found 3-48 MiB of whole
 * blocks on disk that no index named, once 17 MiB with the last save 3 ms
 * before the kill (docs/benchmarks.md, seventh session). 4 MiB is about
 * what the blocks part-way through their requests hold at a kill (2-5 MiB
 * at 1 MiB blocks, c8), the part no save can cover.
 */
export const LIVE_SAVE_BYTES = 4 * 1024 * 1024;

/**
 * How many recent encodings the time budget takes the least of. One slowed
 * by a collection or a descheduled thread (1-2 ms against a median of
 * 0.17 ms at 1,024 blocks) would otherwise hold the next save 19-38 ms
 * away; a large index is slow every time, so the budget still holds it.
 */
export const LIVE_WORK_SAMPLES = 4;

/**
 * Paces the saves of one live index.
 *
 * @example
 * ```ts
 * const pacer = new LiveSavePacer(0.05);
 * pacer.marked(1024 * 1024);
 * if (pacer.dueAt() <= performance.now()) {
 *   const started = performance.now();
 *   const bytes = encodeIndex(contents);
 *   pacer.saved(performance.now() - started, performance.now());
 *   writer.save(bytes);
 * }
 * ```
 */
export class LiveSavePacer {
  readonly #budget: number;
  /** When a save is due with fewer than {@link LIVE_SAVE_BYTES} marked. */
  #intervalAt = 0;
  /** The earliest a save may be made under the time budget. */
  #budgetAt = 0;
  /** Bytes of the blocks marked since the last save. */
  #unsavedBytes = 0;
  /** The encoding ms of the last {@link LIVE_WORK_SAMPLES} saves, oldest first. */
  readonly #workMs: number[] = [];

  /** `budget`: the share of time saves may take (the flush policy's `flushTimeBudget`, 0 < budget <= 1). */
  constructor(budget: number) {
    this.#budget = budget;
  }

  /** Counts `bytes` of newly marked blocks. */
  marked(bytes: number): void {
    this.#unsavedBytes += bytes;
  }

  /** When the next save is due (at once, before the first). */
  dueAt(): number {
    return this.#unsavedBytes >= LIVE_SAVE_BYTES ? this.#budgetAt : this.#intervalAt;
  }

  /** Records a save made at `now` whose encoding took `workMs`. */
  saved(workMs: number, now: number): void {
    this.#unsavedBytes = 0;
    this.#workMs.push(workMs);
    if (this.#workMs.length > LIVE_WORK_SAMPLES) this.#workMs.shift();
    const gap = budgetGapMs(Math.min(...this.#workMs), this.#budget);
    this.#budgetAt = now + gap;
    this.#intervalAt = now + Math.max(LIVE_SAVE_INTERVAL_MS, gap);
  }
}
