/**
 * One limit on the requests open at once, shared by several downloads (a
 * set of files), so that the limit counts connections across all of them
 * rather than per file.
 *
 * A downloader takes a slot before each request and gives it back when the
 * request ends. Slots go, when one comes free, to the waiting holder that
 * holds the FEWEST slots (first come, first served among equals): so a
 * download that has none gets the next free one, every download that runs
 * makes progress, and the slots of a finished download go to the others at
 * once instead of staying with whoever asked first.
 *
 * A holder that has {@link ConnectionBudget.join joined} keeps its last slot
 * between two requests until it {@link ConnectionBudget.leave leaves}: a
 * started file always has a connection, and the response an HTTP reader
 * keeps open between its first look and the first block's request (it
 * becomes that block's body) is inside the file's slot rather than beyond
 * the limit.
 */
import { AbortedError, InvalidArgumentError } from '../errors.js';
import { wholeNumber } from '../validate.js';

/** Gives a slot back; calling it again does nothing. */
export type ReleaseSlot = () => void;

interface Waiter {
  readonly holder: object;
  readonly grant: () => void;
}

/**
 * A counting semaphore over connections with a fair hand-out per holder.
 *
 * @example
 * ```ts
 * const budget = new ConnectionBudget(8);
 * await Promise.all(urls.map((url, i) => downloadFile(url, `part${i}`, { connectionBudget: budget })));
 * // never more than 8 requests open at once, across all the files
 * ```
 */
export class ConnectionBudget {
  /** How many slots there are. */
  readonly limit: number;
  #inUse = 0;
  readonly #held = new Map<object, number>();
  readonly #waiting: Waiter[] = [];
  /** Joined holders, and whether each has a slot parked between two requests. */
  readonly #joined = new Map<object, boolean>();

  /** @param limit the most requests open at once, 1 to 1024. */
  constructor(limit: number) {
    this.limit = wholeNumber('ConnectionBudget', 'limit', limit, { min: 1, max: 1024 });
  }

  /** Slots taken right now. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Requests waiting for a slot right now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Takes a slot for `holder` (one downloader), waiting until one is free.
   * Rejects with an `AbortedError` if `signal` aborts first (nothing is held then).
   */
  acquire(holder: object, signal?: AbortSignal): Promise<ReleaseSlot> {
    if (typeof holder !== 'object' || holder === null) {
      throw new InvalidArgumentError('ConnectionBudget.acquire: holder must be an object (the downloader taking the slot)');
    }
    if (signal?.aborted === true) return Promise.reject(new AbortedError('the download was aborted', { cause: signal.reason }));
    if (this.#joined.get(holder) === true) {
      // Its own parked slot: already counted, taken back without waiting.
      this.#joined.set(holder, false);
      return Promise.resolve(this.#releaser(holder));
    }
    if (this.#inUse < this.limit && this.#waiting.length === 0) return Promise.resolve(this.#take(holder));
    return new Promise<ReleaseSlot>((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(new AbortedError('the download was aborted', { cause: signal?.reason }));
      };
      const waiter: Waiter = {
        holder,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.#take(holder));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Runs `work` holding a slot for `holder`, and gives the slot back however it ends. */
  async run<T>(holder: object, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    const release = await this.acquire(holder, signal);
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * From now until {@link leave}, `holder` keeps one slot when it releases
   * its last: its next request takes it back at once.
   */
  join(holder: object): void {
    if (!this.#joined.has(holder)) this.#joined.set(holder, false);
  }

  /** `holder` is done: its parked slot, if any, goes to the others at once. */
  leave(holder: object): void {
    const parked = this.#joined.get(holder);
    this.#joined.delete(holder);
    if (parked === true) this.#giveBack(holder);
  }

  #take(holder: object): ReleaseSlot {
    this.#inUse++;
    this.#held.set(holder, (this.#held.get(holder) ?? 0) + 1);
    return this.#releaser(holder);
  }

  #releaser(holder: object): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A joined holder keeps its LAST slot between its requests: straight
      // to its own next request when that one is already waiting (parking
      // it instead would deadlock once every running holder parked a slot
      // with its next request queued behind it), else parked until it asks.
      // Any other slot goes back to be shared out.
      if (this.#joined.get(holder) === false && this.#held.get(holder) === 1) {
        const own = this.#waiting.findIndex((w) => w.holder === holder);
        if (own < 0) this.#joined.set(holder, true);
        else this.#handOver(own);
      } else this.#giveBack(holder);
    };
  }

  /** Moves a slot its holder is releasing to that holder's waiting request at `index`: the counts stay as they are. */
  #handOver(index: number): void {
    const [waiter] = this.#waiting.splice(index, 1);
    if (waiter === undefined) return;
    this.#inUse--;
    this.#held.set(waiter.holder, (this.#held.get(waiter.holder) ?? 1) - 1);
    waiter.grant();
  }

  #giveBack(holder: object): void {
    this.#inUse--;
    const left = (this.#held.get(holder) ?? 1) - 1;
    if (left === 0) this.#held.delete(holder);
    else this.#held.set(holder, left);
    this.#handOut();
  }

  /** Gives free slots to the waiters whose holders hold the fewest. */
  #handOut(): void {
    while (this.#inUse < this.limit && this.#waiting.length > 0) {
      let best = 0;
      let fewest = Infinity;
      for (let i = 0; i < this.#waiting.length; i++) {
        const held = this.#held.get((this.#waiting[i] as Waiter).holder) ?? 0;
        if (held < fewest) {
          fewest = held;
          best = i;
          if (held === 0) break;
        }
      }
      const [waiter] = this.#waiting.splice(best, 1);
      waiter?.grant();
    }
  }
}
