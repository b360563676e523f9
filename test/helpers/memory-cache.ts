/**
 * An in-memory {@link DownloadCache} that keeps the whole contract (tail()
 * wake-ups, uncached reads rejected, flush/close, remote identity), with a
 * "disk" ({@link MemoryStore}) that survives the cache object so a test can
 * close and reopen it between rounds, and hooks to inject write faults.
 *
 * Only what was flushed survives a reopen, like the real index: a test that
 * forgets to flush loses marks exactly as a crash would.
 */
import type { DownloadCache, RemoteIdentity } from '../../src/cache/types.js';
import { BlockfetchError } from '../../src/errors.js';
import { rangeForIndex, type ByteRange } from '../../src/ranges/byte-range.js';
import { ByteRanges } from '../../src/ranges/byte-ranges.js';

/** What would be on disk: the data file, the last flushed bitmap and identity. */
export class MemoryStore {
  readonly data: Uint8Array;
  persisted: Uint8Array | undefined;
  identity: RemoteIdentity | undefined;
  flushes = 0;
  constructor(
    readonly contentLength: number,
    readonly blockSize: number,
  ) {
    this.data = new Uint8Array(contentLength);
  }
}

/** Fault hooks: return an error to make that call fail. */
export interface MemoryCacheFaults {
  writeData?: (offset: number, length: number) => Error | undefined;
  readAt?: (offset: number, length: number) => Error | undefined;
  flush?: () => Error | undefined;
}

export class MemoryCache implements DownloadCache {
  readonly store: MemoryStore;
  readonly faults: MemoryCacheFaults;
  readonly #ranges: ByteRanges;
  /** The prefix end (`to`) the last tail() call returned. */
  #lastTail = -1;
  #closed = false;
  /** Calls of markCached, for tests that count them. */
  marks = 0;

  /** A new, empty cache of a file of that shape. */
  static create(contentLength: number, blockSize: number, faults: MemoryCacheFaults = {}): MemoryCache {
    return new MemoryCache(new MemoryStore(contentLength, blockSize), faults);
  }

  /** Opens the cache again over `store`, as a new process would. */
  static reopen(store: MemoryStore, faults: MemoryCacheFaults = {}): MemoryCache {
    return new MemoryCache(store, faults);
  }

  private constructor(store: MemoryStore, faults: MemoryCacheFaults) {
    this.store = store;
    this.faults = faults;
    this.#ranges =
      store.persisted === undefined
        ? new ByteRanges(store.contentLength, store.blockSize)
        : ByteRanges.deserialize(store.persisted, store.contentLength, store.blockSize);
  }

  contentLengthAndBlockSize(): { contentLength: number; blockSize: number } {
    return { contentLength: this.store.contentLength, blockSize: this.store.blockSize };
  }

  cachedBytesAndBlocks(): { bytes: number; blocks: number } {
    return { bytes: this.#ranges.setBytes, blocks: this.#ranges.setCount };
  }

  nextOutstanding(start: number, out: ByteRange): number {
    return this.#ranges.nextClear(start, out);
  }

  nextCached(start: number, out: ByteRange): number {
    return this.#ranges.nextSet(start, out);
  }

  async tail(signal?: AbortSignal): Promise<ByteRange> {
    for (;;) {
      const grown = this.#ranges.notify(); // take the promise before looking
      const t = this.#ranges.tail();
      if (t.to > this.#lastTail || this.#ranges.complete) {
        this.#lastTail = Math.max(this.#lastTail, t.to);
        return t;
      }
      if (signal?.aborted) return { from: -1, to: -1 };
      const aborted = await new Promise<boolean>((resolve) => {
        const onAbort = (): void => resolve(true);
        signal?.addEventListener('abort', onAbort, { once: true });
        void grown.then(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve(false);
        });
      });
      if (aborted) return { from: -1, to: -1 };
    }
  }

  complete(): boolean {
    return this.#ranges.complete;
  }

  async writeAt(data: Uint8Array, offset: number): Promise<number> {
    this.#open();
    const index = offset / this.store.blockSize;
    const range = rangeForIndex(index, this.store.contentLength, this.store.blockSize);
    if (range.from < 0 || data.length !== range.to - range.from + 1) {
      throw new BlockfetchError('BLOCKFETCH_INVALID_WRITE', `writeAt(${data.length} bytes, ${offset}) is not one whole block`);
    }
    await this.writeData(data, offset);
    this.markCached(index);
    return data.length;
  }

  async writeData(data: Uint8Array, offset: number): Promise<void> {
    this.#open();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > this.store.contentLength) {
      throw new BlockfetchError('BLOCKFETCH_INVALID_WRITE', `writeData(${data.length} bytes, ${offset}) is outside the file`);
    }
    await Promise.resolve(); // asynchronous, like a real write
    const fault = this.faults.writeData?.(offset, data.length);
    if (fault !== undefined) throw fault;
    this.store.data.set(data, offset);
  }

  markCached(index: number): void {
    this.#open();
    if (!Number.isInteger(index) || index < 0 || index >= this.#ranges.numBlocks) {
      throw new BlockfetchError('BLOCKFETCH_INVALID_WRITE', `markCached(${index}): no such block`);
    }
    this.marks++;
    this.#ranges.setBlock(index);
  }

  async readAt(data: Uint8Array, offset: number): Promise<number> {
    this.#open();
    await Promise.resolve();
    if (data.length === 0) return 0;
    const last = offset + data.length - 1;
    if (offset < 0 || last >= this.store.contentLength) {
      throw new BlockfetchError('BLOCKFETCH_UNCACHED_RANGE', `readAt ${offset}-${last} is outside the file`);
    }
    for (let b = Math.floor(offset / this.store.blockSize); b <= Math.floor(last / this.store.blockSize); b++) {
      if (!this.#ranges.isBlockSet(b)) {
        throw new BlockfetchError('BLOCKFETCH_UNCACHED_RANGE', `readAt ${offset}-${last}: block ${b} is not cached`);
      }
    }
    const fault = this.faults.readAt?.(offset, data.length);
    if (fault !== undefined) throw fault;
    data.set(this.store.data.subarray(offset, last + 1));
    return data.length;
  }

  remoteIdentity(): RemoteIdentity | undefined {
    return this.store.identity;
  }

  async setRemoteIdentity(identity: RemoteIdentity): Promise<void> {
    this.#open();
    this.store.identity = identity;
    await this.flush();
  }

  async flush(): Promise<void> {
    this.#open();
    await Promise.resolve();
    const fault = this.faults.flush?.();
    if (fault !== undefined) throw fault;
    this.store.persisted = this.#ranges.serialize();
    this.store.flushes++;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new BlockfetchError('BLOCKFETCH_CACHE_CLOSED', 'the memory cache is closed');
  }
}
