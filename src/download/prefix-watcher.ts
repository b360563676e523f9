/**
 * Following the cache's contiguous prefix for several consumers at once.
 *
 * `DownloadCache.tail()` keeps ONE "last returned" position per cache, so two
 * loops awaiting it would steal each other's wake-ups. The downloader runs a
 * single loop over `tail()` here and fans each growth out to every consumer
 * (the in-order digest, any number of tail streams) through a plain
 * promise that any of them can await.
 */
import type { DownloadCache } from '../cache/types.js';

/**
 * Knows how many bytes from the start of the file are cached contiguously
 * ({@link PrefixWatcher.end}) and wakes waiters when that grows or when the
 * owner says something else changed ({@link PrefixWatcher.poke}).
 */
export class PrefixWatcher {
  readonly #cache: DownloadCache;
  readonly #contentLength: number;
  #end = 0;
  #wake: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(cache: DownloadCache) {
    this.#cache = cache;
    this.#contentLength = cache.contentLengthAndBlockSize().contentLength;
  }

  /** Bytes `0 .. end-1` are cached (so `end` is the prefix's length). */
  get end(): number {
    return this.#end;
  }

  /**
   * Looks at the cache directly (without `tail()`, whose wake-up state
   * belongs to {@link PrefixWatcher.follow}) and wakes waiters if the prefix
   * grew. Cheap: one `nextOutstanding` from block 0.
   */
  refresh(): number {
    const out = { from: -1, to: -1 };
    const end = this.#cache.nextOutstanding(0, out) === -1 ? this.#contentLength : out.from;
    if (end > this.#end) {
      this.#end = end;
      this.poke();
    }
    return this.#end;
  }

  /**
   * Awaits `cache.tail()` in a loop, publishing each growth, until the file
   * is wholly cached or `signal` aborts. Never rejects.
   */
  async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.refresh() < this.#contentLength) {
      try {
        const t = await this.#cache.tail(signal);
        if (t.from < 0 && signal.aborted) return;
      } catch {
        return; // a closed cache: the consumers find out when they read
      }
    }
  }

  /** Wakes every waiter (the prefix grew, or the run ended). */
  poke(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }

  /**
   * Settles at the next {@link PrefixWatcher.poke} (or prefix growth), or
   * when `signal` aborts. Check the state and call this in the same
   * synchronous turn and no wake-up is missed.
   */
  changed(signal?: AbortSignal): Promise<void> {
    if (this.#wake === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#wake = { promise, resolve };
    }
    const wake = this.#wake.promise;
    if (signal === undefined) return wake;
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      void wake.then(done);
    });
  }
}
