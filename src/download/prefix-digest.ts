/**
 * The whole-file digest of a CachingDownloader, computed in file order over
 * the cache's growing contiguous prefix while blocks still land out of order.
 *
 * It reads the prefix back from the data file (`cache.readAt`, one reused
 * buffer of `readChunkBytes`), so memory stays bounded whatever the block
 * size, and after a resume it first catches up over what was cached before.
 * A finished download is then verified without a second pass.
 */
import type { DigestAlgorithm, DownloadCache, ExpectedDigest } from '../cache/types.js';
import { DigestMismatchError } from '../errors.js';
import { InOrderDigest, type DigestResult } from './digest.js';
import type { PrefixWatcher } from './prefix-watcher.js';

/** What hashing the whole file found. */
export interface PrefixDigestOutcome {
  /** The digest (with `verified: false` on a mismatch). */
  readonly result: DigestResult;
  /** Set when an expected digest was given and the bytes do not have it. */
  readonly mismatch?: DigestMismatchError;
}

/** What {@link digestPrefix} hashes, and how. */
export interface PrefixDigestInput {
  readonly cache: DownloadCache;
  /** Publishes the prefix's growth (the downloader's single `tail()` follower). */
  readonly prefix: PrefixWatcher;
  readonly algorithm: DigestAlgorithm;
  readonly expected: ExpectedDigest | undefined;
  /**
   * Digests of other algorithms to check in the same pass (each must match
   * too; the outcome's `result` stays `algorithm`'s).
   */
  readonly also?: readonly ExpectedDigest[];
  /** Bytes read from the data file at a time. */
  readonly readChunkBytes: number;
  /** Ends the wait early (the run ended): then resolves undefined. */
  readonly stop: AbortSignal;
}

/**
 * Hashes bytes `0 .. contentLength-1` in order, waiting for the prefix to
 * grow as needed. Resolves with the outcome once the whole file is hashed, or
 * undefined when `stop` aborts first. Rejects only when reading the data file
 * fails.
 */
export async function digestPrefix(input: PrefixDigestInput): Promise<PrefixDigestOutcome | undefined> {
  const { cache, prefix, algorithm, expected, stop } = input;
  const also = (input.also ?? []).filter((d) => d.algorithm !== algorithm);
  const { contentLength } = cache.contentLengthAndBlockSize();
  const digest = new InOrderDigest(algorithm, contentLength);
  const others = also.map((d) => new InOrderDigest(d.algorithm, contentLength));
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(input.readChunkBytes, contentLength)));
  while (digest.bytes < contentLength) {
    if (stop.aborted) return undefined;
    const end = prefix.end;
    if (end > digest.bytes) {
      const view = buffer.subarray(0, Math.min(buffer.length, end - digest.bytes));
      await cache.readAt(view, digest.bytes);
      digest.update(view); // hashes synchronously, so the buffer can be reused at once
      for (const other of others) other.update(view);
      continue;
    }
    await prefix.changed(stop);
  }
  let result: DigestResult;
  try {
    result = digest.finish(expected);
  } catch (err) {
    if (!(err instanceof DigestMismatchError)) throw err;
    return {
      result: Object.freeze({ algorithm, hex: err.actual, expected: err.expected, verified: false }),
      mismatch: err,
    };
  }
  for (const [i, other] of others.entries()) {
    try {
      other.finish(also[i]);
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err;
      return { result: Object.freeze({ ...result, verified: false }), mismatch: err };
    }
  }
  return { result };
}
