/**
 * A Readable over the cache's growing contiguous prefix: the bytes of the
 * file in order, while they are still being downloaded out of order.
 *
 * It reads from the data file (`cache.readAt`) in bounded chunks and only
 * when its consumer asks (Readable's `read()`), so a slow consumer holds at
 * most `highWaterMark` bytes and never slows the download: the bytes wait on
 * disk, not in memory.
 */
import { Readable } from 'node:stream';
import type { DownloadCache } from '../cache/types.js';
import { InvalidArgumentError } from '../errors.js';
import type { PrefixWatcher } from './prefix-watcher.js';

/** Options of a tail stream (see `CachingDownloader.createTailStream`). */
export interface TailStreamOptions {
  /** Bytes read from the cache per chunk pushed. @default 1048576 (1 MiB) */
  readonly chunkBytes?: number;
  /** The stream's buffer, in bytes, before it stops reading ahead. @default 4194304 (4 MiB) */
  readonly highWaterMark?: number;
}

/** {@link TailStreamOptions} defaults. */
export const defaultTailStreamOptions: Readonly<Required<TailStreamOptions>> = Object.freeze({
  chunkBytes: 1024 * 1024,
  highWaterMark: 4 * 1024 * 1024,
});

/** How a tail stream learns that it may end, or must fail. */
export interface TailSource {
  readonly cache: DownloadCache;
  readonly prefix: PrefixWatcher;
  /**
   * Whether the cached bytes may be handed on: false until the run this
   * stream follows has checked that the remote is still the revision the
   * cache holds bytes of, so bytes a changed remote made stale (and that a
   * restart would discard) never reach the consumer. `prefix` is poked when
   * it turns true.
   */
  confirmed(): boolean;
  /**
   * `'done'` once a run finished with the file complete and verified;
   * an error once the run this stream follows failed; else `'pending'`.
   * Consulted after every wake-up of `prefix`.
   */
  outcome(stream: Readable): 'pending' | 'done' | Error;
  /** Called once when the stream is finished or destroyed. */
  release(stream: Readable): void;
}

/** Builds the stream. Used by `CachingDownloader.createTailStream`. */
export function createTailStream(source: TailSource, options: TailStreamOptions = {}): Readable {
  const chunkBytes = options.chunkBytes ?? defaultTailStreamOptions.chunkBytes;
  const highWaterMark = options.highWaterMark ?? defaultTailStreamOptions.highWaterMark;
  for (const [name, value] of [
    ['chunkBytes', chunkBytes],
    ['highWaterMark', highWaterMark],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new InvalidArgumentError(`tail stream option ${name} must be a whole number >= 1, got ${String(value)} (${typeof value})`);
    }
  }
  const { contentLength } = source.cache.contentLengthAndBlockSize();
  let position = 0;
  let pumping = false;
  const stopped = new AbortController();

  const stream = new Readable({
    highWaterMark,
    read() {
      if (pumping) return;
      pumping = true;
      pump().then(
        () => (pumping = false),
        (err: unknown) => {
          pumping = false;
          stream.destroy(err instanceof Error ? err : new Error(String(err)));
        },
      );
    },
    destroy(err, callback) {
      stopped.abort();
      source.release(stream);
      callback(err);
    },
  });

  /** Pushes until the consumer is full, waiting for the prefix as needed. */
  async function pump(): Promise<void> {
    for (;;) {
      if (stopped.signal.aborted) return;
      const end = source.confirmed() ? source.prefix.refresh() : 0;
      if (position < end) {
        const n = Math.min(chunkBytes, end - position);
        const buffer = Buffer.allocUnsafe(n);
        await source.cache.readAt(buffer, position);
        position += n;
        if (!stream.push(buffer)) return; // read() is called again when the consumer drains
        continue;
      }
      const outcome = source.outcome(stream);
      if (outcome instanceof Error) throw outcome;
      if (outcome === 'done' && position >= contentLength) {
        stream.push(null);
        source.release(stream);
        return;
      }
      // Take the wake-up promise and wait in the same turn as the checks above.
      await source.prefix.changed(stopped.signal);
    }
  }

  return stream;
}
