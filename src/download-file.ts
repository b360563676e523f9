/**
 * `downloadFile(source, target, options)`: the library entry that downloads
 * one URL (or reads any other {@link Reader}) to one file, resumably, exactly
 * as the `blockfetch` command does (the command is a thin layer over it). It
 * composes the layers: a Reader ({@link HttpReader} for a URL) →
 * {@link LocalDownloadCache} → {@link CachingDownloader}, so every source
 * gets the same lock, resume, digest check and final rename.
 *
 * While a download is in progress its data and index sit NEXT TO the target,
 * in the same directory (never in /tmp): the final rename is then atomic
 * (same filesystem), the space check is made on the filesystem that will hold
 * the file, and a reboot that clears /tmp does not lose the download.
 */
import { lutimes } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Writable } from 'node:stream';

import type { Dispatcher } from 'undici';

import { cacheFilesExist, createNewFilesForCache } from './cache/cache-files.js';
import { fileKind, lstatOrUndefined, nodeFileSystem, statOrUndefined, unsafePathError } from './cache/file.js';
import { IndexFile, liveIndexPath } from './cache/index-file.js';
import { LocalDownloadCache } from './cache/local-download-cache.js';
import { CacheLock, defaultCacheLockOptions } from './cache/lock.js';
import type { ExpectedDigest } from './cache/types.js';
import { AttemptEngine, type AttemptRetry } from './download/attempts.js';
import type { RetryOptions } from './download/backoff.js';
import { CachingDownloader } from './download/caching-downloader.js';
import { ConnectionBudget } from './download/connection-budget.js';
import { RateLimiter } from './download/rate-limiter.js';
import type { DownloadEvent } from './download/caching-options.js';
import { combineExpectedDigests, type DigestResult } from './download/digest.js';
import { ConsumerStoppedError, endConsumer, failConsumer, feedConsumer, untilFed, type ConsumerFeed } from './download/feed-consumer.js';
import type { ContentInfo, Reader } from './download/reader.js';
import type { DownloadStats } from './download/stats.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT_MS } from './defaults.js';
import { AbortedError, BlockfetchError, IndexError, InvalidArgumentError, hasCode } from './errors.js';
import { HttpReader } from './http/http-reader.js';
import { blockSizeFor } from './ranges/byte-range.js';
import { booleanOption, definedFields, describeValue, wholeNumber } from './validate.js';

/** The suffix of the partial data file: `big.iso` downloads into `big.iso.blockfetch`. */
export const PARTIAL_SUFFIX = '.blockfetch';

/** The suffix of the index file: `big.iso.blockfetch.json`. */
export const INDEX_SUFFIX = `${PARTIAL_SUFFIX}.json`;

/** blockfetch's own files beside a download: `X.blockfetch`, `X.blockfetch.json`, `.live`, `.flock`, and their `.tmp` files. */
const OWN_FILE_NAME = /\.blockfetch(?:\.[A-Za-z0-9.]+)?$/;

/**
 * Whether a file name (the last part of `path`) is one blockfetch gives its
 * own files beside a download (a partial, an index, a lock, their temp
 * files). No download is saved under such a name: its final rename could
 * replace another download's partial file or index, and a person could not
 * tell the file from a download's state.
 *
 * @example
 * ```ts
 * isOwnFileName('out/big.iso.blockfetch')      // true
 * isOwnFileName('out/big.iso.blockfetch.json') // true
 * isOwnFileName('out/big.iso')                 // false
 * ```
 */
export function isOwnFileName(path: string): boolean {
  return OWN_FILE_NAME.test(basename(path));
}

/** The paths of one download. */
export interface DownloadPaths {
  /** The finished file (absolute). */
  readonly target: string;
  /** The partial data file, renamed to `target` when complete and verified. */
  readonly partial: string;
  /** The index of `partial`: which blocks are done, and of which remote revision. */
  readonly index: string;
  /**
   * The live index beside it: the same record saved many times a second
   * without fsync, trusted only on the boot that wrote it (what a kill -9
   * leaves; see docs/index-format.md). Present only while a download runs
   * or after one was killed.
   */
  readonly liveIndex: string;
  /** The directory all of them live in (fsynced after the final rename). */
  readonly directory: string;
}

/**
 * The paths for downloading to `target`. The cross-process lock is a
 * flock on `<partial>.flock` next to them (see src/cache/lock.ts).
 *
 * @example
 * ```ts
 * downloadPaths('out/big.iso')
 * // { target: '/cwd/out/big.iso', partial: '/cwd/out/big.iso.blockfetch',
 * //   index: '/cwd/out/big.iso.blockfetch.json', liveIndex: '/cwd/out/big.iso.blockfetch.live',
 * //   directory: '/cwd/out' }
 * ```
 */
export function downloadPaths(target: string): DownloadPaths {
  const absolute = resolve(target);
  return {
    target: absolute,
    partial: `${absolute}${PARTIAL_SUFFIX}`,
    index: `${absolute}${INDEX_SUFFIX}`,
    liveIndex: liveIndexPath(`${absolute}${INDEX_SUFFIX}`),
    directory: dirname(absolute),
  };
}

/**
 * The download paths a user means by `path`, which may name the target
 * (`big.iso`), the partial file (`big.iso.blockfetch`) or the index
 * (`big.iso.blockfetch.json`): what `blockfetch inspect` accepts.
 */
export function pathsFromAnyName(path: string): DownloadPaths {
  if (path.endsWith(INDEX_SUFFIX)) return downloadPaths(path.slice(0, -INDEX_SUFFIX.length));
  if (path.endsWith(PARTIAL_SUFFIX)) return downloadPaths(path.slice(0, -PARTIAL_SUFFIX.length));
  return downloadPaths(path);
}

/** A failed first look at the remote that will be tried again. */
export interface LookRetry {
  /** The failed attempt's number (1 for the first). */
  readonly attempt: number;
  /** How long until the next attempt, in ms. */
  readonly delayMs: number;
  /** Why it failed. */
  readonly error: BlockfetchError;
}

/**
 * `reader.contentLengthAndBlockSize()` with the download's retry policy: a
 * server that is briefly unreachable (refused, reset, 503) at the very first
 * request is retried with backoff like any block, instead of failing the
 * whole command at once. A non-retryable failure (404, a changed remote)
 * is thrown at once.
 *
 * @example
 * ```ts
 * const info = await lookAtRemote(new HttpReader({ url }), { onRetry: (r) => console.log(r.error.message) });
 * ```
 */
export async function lookAtRemote(
  reader: Reader,
  options: {
    readonly retry?: RetryOptions;
    readonly signal?: AbortSignal;
    readonly onRetry?: (retry: LookRetry) => void;
    /** Takes a connection for each attempt (a set's budget), given back before a backoff. */
    readonly acquireConnection?: (signal: AbortSignal) => Promise<() => void>;
  } = {},
): Promise<ContentInfo> {
  const signal = options.signal ?? new AbortController().signal;
  const asBlockfetchError = (err: unknown): BlockfetchError =>
    err instanceof BlockfetchError
      ? err
      : new BlockfetchError('BLOCKFETCH_INTERNAL', `${reader.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  const onRetry = options.onRetry;
  const engine = new AttemptEngine({
    reader,
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.acquireConnection === undefined ? {} : { acquireConnection: options.acquireConnection }),
    ...(onRetry === undefined
      ? {}
      : { onRetry: (retry: AttemptRetry) => onRetry({ attempt: retry.attempt, delayMs: retry.delayMs, error: asBlockfetchError(retry.error) }) }),
  });
  try {
    return await engine.look(signal);
  } catch (err) {
    if (signal.aborted) throw new AbortedError('the download was aborted', { cause: signal.reason });
    throw asBlockfetchError(err);
  }
}

/** Options of {@link downloadFile}. Every field is optional. */
export interface DownloadFileOptions {
  /** Requests open at once. @default 8 (`DEFAULT_CONCURRENCY`) */
  readonly concurrency?: number;
  /**
   * The block size of a NEW download, in bytes: the unit of resumption and of
   * the index. A resumed download keeps the block size it was started with.
   * For a URL it is also the HTTP reader's first request. Given a
   * {@link Reader} (or `createReader`) and no `blockSize`, the reader's own
   * preferred block size is used.
   * @default 1048576 (1 MiB, `DEFAULT_BLOCK_SIZE`; see `defaultDownloadFileOptions`)
   */
  readonly blockSize?: number;
  /**
   * The most one request asks for, in bytes: adjacent outstanding blocks are
   * fetched together up to this size, and still recorded one by one as their
   * bytes land. Left out, each request is sized from what the requests before
   * it measured, from 4 MiB up to 64 MiB (see `CachingDownloaderOptions.maxRequestBytes`).
   * @default 67108864 (64 MiB, `DEFAULT_MAX_REQUEST_BYTES`)
   */
  readonly maxRequestBytes?: number;
  /** Limit the transfer to this many bytes per second. @default undefined (no limit) */
  readonly bytesPerSecond?: number;
  /**
   * A rate limiter shared with other downloads, instead of one of this
   * download's own from `bytesPerSecond` (what `downloadFiles` passes to each
   * file of a set, so that the limit holds for the set as a whole).
   * @default undefined
   */
  readonly rateLimiter?: RateLimiter;
  /**
   * Extra request headers, e.g. `{ authorization: 'Bearer …' }`. HTTP only:
   * an error together with a {@link Reader} source or `createReader`.
   * @default {}
   */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The digest the file must have. Checked (in order, while downloading)
   * before the partial file is renamed to the target; on a mismatch the
   * partial file and its index are kept and a `DigestMismatchError` thrown.
   * @default undefined (a digest the server advertised is still checked)
   */
  readonly expectedDigest?: ExpectedDigest;
  /**
   * More digests the file must have, of other algorithms than
   * `expectedDigest` (a publisher's SHA256SUMS and SHA512SUMS, say; see
   * `parseChecksumList`): every one is checked in the same pass before the
   * rename, kept in the index with `expectedDigest` (so a later run checks
   * them even when not given again), and a mismatch of any is a
   * `DigestMismatchError` with the partial file kept. Two different digests
   * of one algorithm are an `InvalidArgumentError` before anything is written.
   * @default undefined
   */
  readonly expectedDigests?: readonly ExpectedDigest[];
  /**
   * Discard a partial download that cannot be continued and start over: when
   * the remote changed since it began (before or during this run), or when
   * its index is corrupt or does not match its data file. Without it those
   * are errors and nothing on disk is touched.
   * @default false
   */
  readonly restart?: boolean;
  /** Replace `target` if it exists. Without it an existing target is a `BLOCKFETCH_TARGET_EXISTS` error. @default false */
  readonly overwrite?: boolean;
  /** Retry limits and backoff. @default defaultRetryOptions (6 attempts per block) */
  readonly retry?: RetryOptions;
  /**
   * How long to wait for response headers, and for the next body bytes,
   * before a request fails (and is retried), in ms. HTTP only: an error
   * together with a {@link Reader} source or `createReader`.
   * @default 30000 (`DEFAULT_TIMEOUT_MS`)
   */
  readonly timeoutMs?: number;
  /**
   * How long to wait for another process's lock on the same download. On a
   * local filesystem the lock is a flock, which the kernel drops the moment
   * a killed holder dies, so waiting only helps when the holder is about to
   * finish. Where the mkdir lock is used (network filesystems, no fs-ext) a
   * killed process's lock goes stale after 5 s (`staleMs`): the default is
   * that plus 2 s, so a re-run right after a `kill -9` proceeds there too.
   * @default 7000
   */
  readonly lockWaitMs?: number;
  /** Stops the download; the index is saved and an `AbortedError` thrown. Run again to resume. */
  readonly signal?: AbortSignal;
  /** Receives typed events (see {@link DownloadFileEvent}); a listener that throws is ignored. */
  readonly onEvent?: (event: DownloadFileEvent) => void;
  /**
   * The undici dispatcher the HTTP reader uses (a proxy agent, an agent with
   * other limits, one with interceptors). The caller keeps ownership. HTTP
   * only: an error together with a {@link Reader} source or `createReader`.
   * @default a new Agent per call (or a proxy agent when HTTP(S)_PROXY is set)
   */
  readonly dispatcher?: Dispatcher;
  /**
   * How a URL `source` is read, instead of {@link HttpReader}: e.g. an
   * object-store or local reader chosen by the URL's scheme. Called with the
   * URL for each attempt (a fresh reader after `restart` discarded a changed
   * remote, so it looks again); a reader it returns with a `close()` method
   * is closed when the call ends.
   * @default a new `HttpReader` with `headers`, `timeoutMs`, `dispatcher` and `blockSize`
   */
  readonly createReader?: (url: string) => Reader;
  /**
   * A connection limit shared with other downloads (what `downloadFiles`
   * passes to each file of a set): every request of this download, the
   * first look included, takes a slot from it first. `concurrency` still
   * caps this download alone.
   * @default undefined (only `concurrency` limits the requests)
   */
  readonly connectionBudget?: ConnectionBudget;
  /**
   * Stream while saving: a Writable that receives the file's bytes in
   * order while the download continues in parallel, read back from the
   * partial file as its contiguous prefix (block 0 up to the first block
   * still missing) grows. Backpressure is respected: a slow consumer never
   * slows the download, its bytes wait on disk (memory holds at most the
   * tail's 4 MiB buffer plus the consumer's own). A resumed download
   * streams from byte 0 again (the cached prefix from disk, then the rest
   * as it arrives), and nothing is handed on before the remote was found
   * to be the revision on disk.
   *
   * Once the file is complete and its digest (if any) verified, the call
   * waits for the consumer to take the last byte, ends it (`end()`), waits
   * for its `finish`, and only then renames the file into place. On any
   * failure the consumer is destroyed with the error (as `stream.pipeline`
   * does); it may already have received bytes, up to the whole file when
   * the digest check fails at the end, so treat a rejected call as a
   * failed stream. When the consumer errors or closes early (EPIPE), the
   * download stops, keeps its partial file (resumable) and throws an
   * `AbortedError` whose `cause` is the consumer's error.
   *
   * @default undefined (nothing is streamed)
   * @example
   * ```ts
   * import { spawn } from 'node:child_process';
   * const tar = spawn('tar', ['-x', '-C', 'out'], { stdio: ['pipe', 'inherit', 'inherit'] });
   * await downloadFile(url, 'snap.tar', { consumer: tar.stdin });
   * ```
   */
  readonly consumer?: Writable;
  /**
   * Offer HTTP/2 to an https server (ALPN): with a server that chooses h2,
   * the `concurrency` requests are streams of one connection; one that does
   * not is read over HTTP/1.1 as without it. Only for the
   * dispatcher made here: with `dispatcher`, that one decides (create it
   * with undici's `allowH2`). HTTP only. See docs/benchmarks.md, "HTTP/2".
   * @default false
   */
  readonly http2?: boolean;
}

/** The options that only mean something to the built-in HTTP reader. */
const HTTP_ONLY_OPTIONS = ['headers', 'timeoutMs', 'dispatcher', 'http2'] as const;

/**
 * The defaults of {@link DownloadFileOptions}.
 *
 * @example
 * ```ts
 * await downloadFile(url, target, { concurrency: defaultDownloadFileOptions.concurrency * 2 });
 * ```
 */
export const defaultDownloadFileOptions = Object.freeze({
  concurrency: DEFAULT_CONCURRENCY,
  /** Why 1 MiB blocks fetched up to 64 MiB per request: see `DEFAULT_BLOCK_SIZE`, `DEFAULT_MAX_REQUEST_BYTES` and docs/cli.md. */
  blockSize: DEFAULT_BLOCK_SIZE,
  maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES,
  restart: false,
  overwrite: false,
  timeoutMs: DEFAULT_TIMEOUT_MS,
  /** Only the mkdir lock needs it: its stale time plus 2 s (see `lockWaitMs`). */
  lockWaitMs: defaultCacheLockOptions.staleMs + 2000,
});

/**
 * What {@link downloadFile} reports: the {@link CachingDownloader}'s events
 * (`start`, `progress`, `retry`, `pass`, `done`) plus its own steps.
 */
export type DownloadFileEvent =
  | DownloadEvent
  /** The cache is open: `resumedBytes` were already on disk from an earlier run. */
  | {
      readonly type: 'open';
      readonly paths: DownloadPaths;
      readonly size: number;
      readonly blockSize: number;
      readonly resumedBytes: number;
    }
  /** Another process holds the download's lock; waiting up to `waitMs` for it to finish (or, for the mkdir lock, for a killed holder's lock to go stale after 5 s). */
  | { readonly type: 'lock-wait'; readonly paths: DownloadPaths; readonly waitMs: number }
  /** The first request to a new download failed and will be retried after `delayMs`. */
  | ({ readonly type: 'look-retry' } & LookRetry)
  /** A partial download was discarded (`restart`), for `reason`. */
  | { readonly type: 'discard'; readonly paths: DownloadPaths; readonly reason: BlockfetchError }
  /** The download is complete and verified; the partial file is being renamed to the target. */
  | { readonly type: 'finish'; readonly paths: DownloadPaths }
  /**
   * With a `consumer`: the file is complete and verified on disk, but the
   * consumer has taken only `streamedBytes` of its `size` bytes; the final
   * rename waits until it has taken the rest.
   */
  | { readonly type: 'consumer-wait'; readonly paths: DownloadPaths; readonly size: number; readonly streamedBytes: number };

/** What a successful {@link downloadFile} did. */
export interface DownloadFileResult {
  /** The finished file (absolute path). */
  readonly target: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Bytes that were already on disk from earlier runs when this run started. */
  readonly resumedBytes: number;
  /** The digest of the file (verified when one was expected or advertised). */
  readonly digest: DigestResult | undefined;
  /** The final statistics of the last run. */
  readonly stats: DownloadStats;
  /** Milliseconds this call took, from start to rename. */
  readonly durationMs: number;
}

/**
 * What {@link downloadFile} reads: a URL (read by {@link HttpReader}, or by
 * the `createReader` option), or any {@link Reader} (a `FileReader`, a
 * reader of another service).
 *
 * @example
 * ```ts
 * const source: DownloadSource = process.argv[2]?.startsWith('/') ? new FileReader(process.argv[2]) : url;
 * await downloadFile(source, 'big.iso');
 * ```
 */
export type DownloadSource = string | Reader;

/**
 * Downloads `source` to `target`, resuming a partial download of it if there
 * is one, and renames the verified result into place. `source` is a URL, or
 * any {@link Reader}: every source gets the same lock, resume, digest check
 * and final rename.
 *
 * Steps: take the download's cross-process lock; refuse an existing target
 * (unless `overwrite`); open the partial download, or look at the remote and
 * create one (space is reserved first: `NotEnoughSpaceError` before a byte
 * is fetched); run a {@link CachingDownloader}; when complete and verified,
 * fsync the data, rename it over the target, fsync the directory and remove
 * the index.
 *
 * Every failure is a typed {@link BlockfetchError} (its `code` says which:
 * see docs/errors.md); whatever was downloaded stays on disk and the same
 * call resumes it. A remote that refuses for good (an HTTP status such as
 * 404, an unknown host, a rejected certificate) before a byte is on disk
 * leaves no partial and no index, so no empty file looks like a download
 * in progress.
 *
 * A {@link Reader} passed as `source` stays the caller's: it is used for
 * every step and never closed here. It remembers the revision it first saw,
 * so when the source changes DURING the call, `restart` discards the old
 * bytes and the next attempt fails with the same `RemoteChangedError`; run
 * again with a new Reader (or pass a URL and `createReader`, which makes a
 * fresh reader for the attempt after a discard).
 *
 * @example
 * ```ts
 * import { downloadFile } from 'blockfetch';
 * const result = await downloadFile('https://example.com/big.iso', 'big.iso', {
 *   expectedDigest: { algorithm: 'sha256', hex: '…' },
 *   onEvent: (e) => { if (e.type === 'progress') console.log(e.stats.doneBytes); },
 * });
 *
 * // Any Reader: a local copy with the same resume and verification.
 * await downloadFile(new FileReader('/mnt/nas/big.iso'), 'big.iso', { expectedDigest });
 *
 * // A URL read by another Reader.
 * await downloadFile('s3://bucket/big.iso', 'big.iso', { createReader: (url) => new MyS3Reader(url) });
 * ```
 */
export async function downloadFile(source: DownloadSource, target: string, options: DownloadFileOptions = {}): Promise<DownloadFileResult> {
  const o = resolveDownloadFileOptions(source, options);
  if (o.consumer === undefined) return download(source, target, o);
  try {
    return await download(source, target, o);
  } catch (err) {
    // As stream.pipeline does: whatever reads the consumer's output learns that the stream failed.
    failConsumer(o.consumer, err);
    throw err;
  }
}

/** {@link downloadFile} once its options are checked. */
async function download(source: DownloadSource, target: string, o: ResolvedOptions): Promise<DownloadFileResult> {
  const started = performance.now();
  const paths = downloadPaths(target);
  const emit = (event: DownloadFileEvent): void => {
    try {
      o.onEvent?.(event);
    } catch {
      // A listener must not break the download; see DownloadFileOptions.onEvent.
    }
  };
  await checkDirectory(paths.directory);
  // Before the lock, which creates a file next to the target: a target
  // that can never be downloaded to (/dev/null, a FIFO, a link, a name too
  // long) is refused with nothing written.
  await checkOwnPaths(paths);
  const lockLost = new AbortController();
  // A consumer that fails or closes stops the download, as Ctrl-C would.
  const consumerStopped = new AbortController();
  const signal = AbortSignal.any([...(o.signal === undefined ? [] : [o.signal]), lockLost.signal, consumerStopped.signal]);
  const lock = await acquireLock(paths, o.lockWaitMs, signal, lockLost, emit);
  try {
    await checkTarget(paths, o.overwrite);
    // Once through, and once more after a discard (restart) at most: a
    // remote that changes on every attempt is not chased forever.
    for (let attempt = 0; ; attempt++) {
      const { reader, owned } = readerFor(source, o);
      let cache: LocalDownloadCache | undefined;
      // In a set, this file keeps a connection from its first request to its end (see ConnectionBudget.join).
      o.connectionBudget?.join(reader);
      let feed: ConsumerFeed | undefined;
      try {
        cache = await openOrCreateCache(paths, reader, o, signal, emit);
        const { contentLength, blockSize } = cache.contentLengthAndBlockSize();
        const resumedBytes = cache.cachedBytesAndBlocks().bytes;
        emit({ type: 'open', paths, size: contentLength, blockSize, resumedBytes });
        const downloader = new CachingDownloader(reader, cache, {
          concurrency: o.concurrency,
          ...(o.requestedMaxRequestBytes === undefined ? {} : { maxRequestBytes: o.requestedMaxRequestBytes }),
          ...(o.retry === undefined ? {} : { retry: o.retry }),
          ...(o.bytesPerSecond === undefined ? {} : { bytesPerSecond: o.bytesPerSecond }),
          ...(o.rateLimiter === undefined ? {} : { rateLimiter: o.rateLimiter }),
          ...(o.expectedDigests.length === 0 ? {} : { expectedDigests: o.expectedDigests }),
          ...(o.connectionBudget === undefined ? {} : { connectionBudget: o.connectionBudget }),
          onEvent: emit,
        });
        if (o.consumer !== undefined) {
          feed = feedConsumer(downloader.createTailStream(), o.consumer);
          feed.done.catch((err: unknown) => {
            if (err instanceof ConsumerStoppedError) consumerStopped.abort(err);
          });
        }
        const status = await downloader.run(signal);
        if (status.complete && feed !== undefined && o.consumer !== undefined) {
          if (feed.written() < contentLength) emit({ type: 'consumer-wait', paths, size: contentLength, streamedBytes: feed.written() });
          // The bytes are all on disk: what is left is the consumer's pace.
          await untilFed(feed, signal);
          await endConsumer(o.consumer, signal);
        }
        const lastModified = cache.remoteIdentity()?.lastModified;
        await cache.close();
        const nothingOnDisk = cache.cachedBytesAndBlocks().bytes === 0;
        if (status.complete) {
          emit({ type: 'finish', paths });
          await finish(paths, lastModified);
          return {
            target: paths.target,
            size: contentLength,
            resumedBytes,
            digest: status.digest,
            stats: status.stats,
            durationMs: Math.round(performance.now() - started),
          };
        }
        const error = status.error ?? new BlockfetchError('BLOCKFETCH_NETWORK', `${reader.name}: the download ended incomplete`);
        if (lockLost.signal.aborted && lockLost.signal.reason instanceof BlockfetchError) throw lockLost.signal.reason;
        if (consumerStopped.signal.aborted) throw consumerStopped.signal.reason;
        // A consumer that already took bytes of the old revision cannot be
        // given the new one from byte 0: the stream fails, and the next
        // call (with `restart`) discards before it hands on anything.
        const streamed = feed?.written() ?? 0;
        if (o.restart && attempt === 0 && streamed === 0 && hasCode(error, 'BLOCKFETCH_REMOTE_CHANGED')) {
          feed?.stop(error);
          await discard(paths);
          emit({ type: 'discard', paths, reason: error });
          continue;
        }
        // A remote that refuses for good (a 404 after the probe, a host that
        // stopped resolving, a rejected certificate) with no byte on disk
        // leaves no empty preallocated partial to look like a download worth
        // resuming. Other failures keep theirs: the revision it pins is what
        // the next run must match.
        if (nothingOnDisk && REFUSED_FOR_GOOD.some((code) => hasCode(error, code))) await discard(paths);
        throw error;
      } finally {
        feed?.stop(new AbortedError('the download ended'));
        await cache?.close().catch(() => undefined);
        if (owned) await closeReader(reader);
        o.connectionBudget?.leave(reader);
      }
    }
  } finally {
    await lock.release().catch(() => undefined);
  }
}

type ResolvedOptions = Required<
  Pick<DownloadFileOptions, 'concurrency' | 'blockSize' | 'maxRequestBytes' | 'restart' | 'overwrite' | 'timeoutMs' | 'lockWaitMs'>
> &
  Omit<DownloadFileOptions, 'concurrency' | 'blockSize' | 'maxRequestBytes' | 'restart' | 'overwrite' | 'timeoutMs' | 'lockWaitMs' | 'expectedDigest' | 'expectedDigests'> & {
    /** The block size the caller asked for, or undefined to take the reader's, grown to fit the file ({@link blockSizeFor}). */
    readonly requestedBlockSize: number | undefined;
    /** The request size the caller asked for, or undefined to let the downloader size requests from what it measures. */
    readonly requestedMaxRequestBytes: number | undefined;
    /** `expectedDigest` and `expectedDigests` as one list, checked, `expectedDigest` first, one per algorithm. */
    readonly expectedDigests: readonly ExpectedDigest[];
  };

const OWNER = 'downloadFile';

function resolveDownloadFileOptions(source: DownloadSource, options: DownloadFileOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`downloadFile options must be an object, got ${describeValue(options)}`);
  }
  const defined = definedFields(options);
  if (typeof source !== 'string') checkReader(source);
  if (defined.createReader !== undefined && typeof defined.createReader !== 'function') {
    throw new InvalidArgumentError(`downloadFile option createReader must be a function, got ${describeValue(defined.createReader)}`);
  }
  // A Reader of its own brings its own transport: HTTP knobs given with it would be ignored silently.
  if (typeof source !== 'string' || defined.createReader !== undefined) {
    const given = HTTP_ONLY_OPTIONS.filter((name) => defined[name] !== undefined);
    if (given.length > 0) {
      const withWhat = typeof source === 'string' ? 'the createReader option' : `a Reader source (${source.name})`;
      throw new InvalidArgumentError(
        `downloadFile ${given.length > 1 ? 'options' : 'option'} ${given.join(', ')} only ${given.length > 1 ? 'apply' : 'applies'} to a URL read over HTTP, not to ${withWhat}`,
        { hint: 'configure the Reader itself instead' },
      );
    }
  }
  if (defined.connectionBudget !== undefined && !(defined.connectionBudget instanceof ConnectionBudget)) {
    throw new InvalidArgumentError(`downloadFile option connectionBudget must be a ConnectionBudget, got ${describeValue(defined.connectionBudget)}`);
  }
  if (defined.rateLimiter !== undefined && !(defined.rateLimiter instanceof RateLimiter)) {
    throw new InvalidArgumentError(`downloadFile option rateLimiter must be a RateLimiter, got ${describeValue(defined.rateLimiter)}`);
  }
  if (defined.rateLimiter !== undefined && defined.bytesPerSecond !== undefined) {
    throw new InvalidArgumentError('downloadFile options rateLimiter and bytesPerSecond both set a rate limit', {
      hint: 'give one: bytesPerSecond for this download alone, or a shared rateLimiter',
    });
  }
  const o = { ...defaultDownloadFileOptions, ...defined };
  wholeNumber(OWNER, 'concurrency', o.concurrency, { min: 1 });
  wholeNumber(OWNER, 'blockSize', o.blockSize, { min: 1 });
  wholeNumber(OWNER, 'maxRequestBytes', o.maxRequestBytes, { min: 0 });
  wholeNumber(OWNER, 'timeoutMs', o.timeoutMs, { min: 1 });
  wholeNumber(OWNER, 'lockWaitMs', o.lockWaitMs, { min: 0 });
  booleanOption(OWNER, 'restart', o.restart);
  booleanOption(OWNER, 'overwrite', o.overwrite);
  if (o.http2 !== undefined) booleanOption(OWNER, 'http2', o.http2);
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') {
    throw new InvalidArgumentError(`downloadFile option onEvent must be a function, got ${typeof o.onEvent}`);
  }
  if (o.consumer !== undefined && !isWritable(o.consumer)) {
    throw new InvalidArgumentError(`downloadFile option consumer must be a Writable stream, got ${describeValue(o.consumer)}`);
  }
  // A block size the caller chose is used as given (and refused if the file
  // would need more blocks than the bitmap holds); else the reader's, grown
  // to fit the file (see blockSizeFor).
  // Checked here, before the lock or any file: two digests that cannot both be right fail at once.
  const expectedDigests = combineExpectedDigests(OWNER, o.expectedDigest, o.expectedDigests);
  const { expectedDigest: _one, ...rest } = o;
  return { ...rest, expectedDigests, requestedBlockSize: defined.blockSize, requestedMaxRequestBytes: defined.maxRequestBytes };
}

/** Whether `value` can be written to and watched as a Node Writable is. */
function isWritable(value: unknown): value is Writable {
  const w = value as Partial<Writable> | null;
  return typeof w === 'object' && w !== null && typeof w.write === 'function' && typeof w.end === 'function' && typeof w.on === 'function';
}

/** A `source` that is not a string must at least look like a Reader, or the first use would be a TypeError deep inside. */
function checkReader(source: unknown): asserts source is Reader {
  const r = source as Partial<Reader> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.getReader !== 'function' ||
    typeof r.contentLengthAndBlockSize !== 'function' ||
    typeof r.digest !== 'function'
  ) {
    throw new InvalidArgumentError(`downloadFile source must be a URL string or a Reader, got ${describeValue(source)}`);
  }
}

/** The reader for one attempt, and whether this call made it (and so closes it). */
function readerFor(source: DownloadSource, o: ResolvedOptions): { reader: Reader; owned: boolean } {
  if (typeof source !== 'string') return { reader: source, owned: false };
  if (o.createReader !== undefined) return { reader: o.createReader(source), owned: true };
  const reader = new HttpReader({
    url: source,
    blockSize: o.blockSize,
    requestTimeoutMs: o.timeoutMs,
    idleTimeoutMs: o.timeoutMs,
    // One knob for the longest Retry-After honoured: the reader caps what it
    // reports at this, so a larger retry.maxRetryAfterMs must reach it too.
    ...(o.retry?.maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs: o.retry.maxRetryAfterMs }),
    ...(o.headers === undefined ? {} : { headers: o.headers }),
    ...(o.dispatcher === undefined ? {} : { dispatcher: o.dispatcher }),
    ...(o.http2 === undefined ? {} : { http2: o.http2 }),
  });
  return { reader, owned: true };
}

/** Closes a reader this call made, if it has anything to close (HttpReader's sockets); never throws. */
async function closeReader(reader: Reader): Promise<void> {
  const close = (reader as { close?: unknown }).close;
  if (typeof close !== 'function') return;
  try {
    await (close as () => Promise<void> | void).call(reader);
  } catch {
    // Closing is cleanup: the download's outcome is already decided.
  }
}

/**
 * Refuses an existing target unless `overwrite`. First removes an index left
 * by a run that was killed between its final rename and removing the index
 * (target present, partial file gone): it describes a finished download.
 */
async function checkTarget(paths: DownloadPaths, overwrite: boolean): Promise<void> {
  const target = await lstatOrUndefined(paths.target);
  if (target === undefined) return;
  if (target.isDirectory()) {
    throw new InvalidArgumentError(`${paths.target} is a directory, not a file to download into`, {
      hint: 'name a file inside it as the target',
    });
  }
  if (!target.isFile()) throw unsafePathError(paths.target, fileKind(target), undefined);
  const partial = await lstatOrUndefined(paths.partial);
  if (partial === undefined) {
    await nodeFileSystem.remove(paths.index);
    await nodeFileSystem.remove(paths.liveIndex);
  }
  if (overwrite) return;
  throw new BlockfetchError('BLOCKFETCH_TARGET_EXISTS', `${paths.target} already exists`, {
    hint: 'replace it (option `overwrite`), or choose another target path',
  });
}

/**
 * Removes what a run killed between its final rename and the index's
 * removal left next to a finished `target`: the index (its partial file is
 * gone, so it describes a finished download) and, through taking and
 * releasing the lock, a lock file a killed holder left. Does nothing while
 * another process holds the lock, or when a partial download is present.
 * For callers that decided `target` is complete without `downloadFile` (the
 * CLI's "already complete").
 *
 * @example
 * ```ts
 * await tidyFinishedDownload('big.iso'); // big.iso.blockfetch.json left by a kill after the rename: gone
 * ```
 */
export async function tidyFinishedDownload(target: string): Promise<void> {
  const paths = downloadPaths(target);
  let lock: CacheLock;
  try {
    lock = await CacheLock.acquire(paths.partial, { mode: 'fail' });
  } catch {
    return; // held by another process (or not lockable here): leave it to that process
  }
  try {
    const finished = await lstatOrUndefined(paths.target);
    if (finished?.isFile() === true && (await lstatOrUndefined(paths.partial)) === undefined) {
      await nodeFileSystem.remove(paths.index);
      await nodeFileSystem.remove(paths.liveIndex);
    }
  } finally {
    await lock.release();
  }
}

/**
 * Takes the download's lock: at once if it is free, else (after telling the
 * listener, so a person is not left looking at a silent terminal) waiting
 * up to `waitMs` for its holder to finish or for a dead holder's lock to go
 * stale.
 */
async function acquireLock(
  paths: DownloadPaths,
  waitMs: number,
  signal: AbortSignal,
  lockLost: AbortController,
  emit: (event: DownloadFileEvent) => void,
): Promise<CacheLock> {
  const options = { signal, onCompromised: (err: BlockfetchError) => lockLost.abort(err) };
  try {
    return await CacheLock.acquire(paths.partial, { ...options, mode: 'fail' });
  } catch (err) {
    if (!hasCode(err, 'BLOCKFETCH_LOCKED') || waitMs === 0) throw err;
  }
  emit({ type: 'lock-wait', paths, waitMs });
  return CacheLock.acquire(paths.partial, { ...options, mode: 'wait', waitTimeoutMs: waitMs });
}

/**
 * The longest name of a target, in UTF-8 bytes: 255 (the name limit of
 * ext4, XFS, btrfs, APFS, NTFS) less the longest name blockfetch adds next
 * to it, the index's temp file `.NAME.blockfetch.json.tmp` (21 bytes more).
 *
 * @example
 * ```ts
 * Buffer.byteLength('big.iso') <= MAX_TARGET_NAME_BYTES // true
 * ```
 */
export const MAX_TARGET_NAME_BYTES = 255 - Buffer.byteLength(`.${INDEX_SUFFIX}.tmp`);

/**
 * Refuses, before anything is written, a target whose own files cannot be
 * created safely: a name too long for the index's temp file next to it; a
 * target that is a link, a FIFO, a device or a socket (`overwrite` replaces
 * only regular files); a symbolic link (or anything but a regular file) at
 * the partial file, the index or its temp file. Links are never followed:
 * in a shared directory a planted one would make the download write through it.
 */
async function checkOwnPaths(paths: DownloadPaths): Promise<void> {
  const name = basename(paths.target);
  if (isOwnFileName(name)) {
    throw new InvalidArgumentError(
      `the target name ${JSON.stringify(name)} ends like blockfetch's own files (a partial download, its index or lock): saving a download under it could replace another download's state`,
      { hint: `choose a name that does not end in ${PARTIAL_SUFFIX} or ${PARTIAL_SUFFIX}.*` },
    );
  }
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_TARGET_NAME_BYTES) {
    throw new InvalidArgumentError(
      `the target name is ${bytes} bytes long, more than the ${MAX_TARGET_NAME_BYTES} that leave room for the download's own files next to it (.NAME${INDEX_SUFFIX}.tmp must fit in 255 bytes)`,
      { hint: `choose a target name of at most ${MAX_TARGET_NAME_BYTES} bytes` },
    );
  }
  const target = await lstatOrUndefined(paths.target);
  if (target !== undefined && !target.isFile() && !target.isDirectory()) throw unsafePathError(paths.target, fileKind(target), undefined);
  for (const path of [paths.partial, paths.index, new IndexFile(paths.index).tempPath, paths.liveIndex, new IndexFile(paths.liveIndex).tempPath]) {
    const found = await lstatOrUndefined(path);
    if (found !== undefined && !found.isFile()) throw unsafePathError(path, fileKind(found), undefined);
  }
}

/** The target's directory must exist: creating directories is left to the caller, as curl and wget do. */
async function checkDirectory(directory: string): Promise<void> {
  const found = await statOrUndefined(directory);
  if (found?.isDirectory() === true) return;
  throw new InvalidArgumentError(`cannot download into ${directory}: ${found === undefined ? 'no such directory' : 'not a directory'}`, {
    hint: found === undefined ? `create it first (mkdir -p ${directory})` : 'choose a target inside a directory',
  });
}

/**
 * A download made here records the remote's revision before its first block
 * (see CachingDownloader), so an index that claims blocks and names no
 * revision was edited: nothing says which file those bytes belong to, nor
 * which digest they must have. It is a corrupt index (`restart` starts over).
 */
async function refuseBlocksWithoutRemote(cache: LocalDownloadCache, indexPath: string): Promise<void> {
  const { blocks } = cache.cachedBytesAndBlocks();
  if (blocks === 0 || cache.remoteIdentity() !== undefined) return;
  await cache.close();
  throw new IndexError('BLOCKFETCH_INDEX_CORRUPT', indexPath, `index file is corrupt: it claims ${blocks} block(s) but records no remote revision`, {
    hint: 'start over (option `restart`); the partial file is kept until then',
  });
}

/** Failures that say the remote will not serve this file, whatever a later run does. */
const REFUSED_FOR_GOOD = ['BLOCKFETCH_HTTP_STATUS', 'BLOCKFETCH_HOST_NOT_FOUND', 'BLOCKFETCH_TLS'] as const;

/** Index errors that `restart` may resolve by starting over. A foreign or newer index is never deleted. */
const RESTARTABLE_INDEX_ERRORS = ['BLOCKFETCH_INDEX_CORRUPT', 'BLOCKFETCH_INDEX_MISMATCH'] as const;

/**
 * Opens the partial download at `paths`, or creates it. The lock is held by
 * the caller, so neither takes it again.
 */
async function openOrCreateCache(
  paths: DownloadPaths,
  reader: Reader,
  o: ResolvedOptions,
  signal: AbortSignal,
  emit: (event: DownloadFileEvent) => void,
): Promise<LocalDownloadCache> {
  const present = await cacheFilesExist(paths.partial, paths.index);
  if (present.data && present.index) {
    try {
      const cache = await LocalDownloadCache.open(paths.partial, paths.index, { lock: false });
      await refuseBlocksWithoutRemote(cache, paths.index);
      return cache;
    } catch (err) {
      if (!o.restart || !RESTARTABLE_INDEX_ERRORS.some((code) => hasCode(err, code))) throw err;
      await discard(paths);
      emit({ type: 'discard', paths, reason: err as BlockfetchError });
    }
  } else if (present.data || present.index) {
    // One without the other records nothing usable: a data file without its
    // index has no block known to be complete (a run killed while creating
    // it), an index without its data file describes bytes that are gone.
    // Starting over loses nothing.
    await discard(paths);
  }
  if (signal.aborted) throw new AbortedError('the download was aborted', { cause: signal.reason });
  // The first look is a request like any other: inside the shared budget,
  // held by the reader, each attempt taking its slot and giving it back
  // before a backoff, as the downloader's requests do.
  const budget = o.connectionBudget;
  const info = await lookAtRemote(reader, {
    signal,
    ...(o.retry === undefined ? {} : { retry: o.retry }),
    ...(budget === undefined ? {} : { acquireConnection: (s: AbortSignal) => budget.acquire(reader, s) }),
    onRetry: (retry) => emit({ type: 'look-retry', ...retry }),
  });
  await createNewFilesForCache(paths.partial, paths.index, info.contentLength, o.requestedBlockSize ?? blockSizeFor(info.contentLength, info.blockSize), {
    identity: info.identity,
    lock: false,
    signal,
  });
  return LocalDownloadCache.open(paths.partial, paths.index, { lock: false });
}

/** Removes a partial download: index first, so a crash in between never leaves an index describing missing data. */
async function discard(paths: DownloadPaths): Promise<void> {
  await nodeFileSystem.remove(paths.liveIndex);
  await nodeFileSystem.remove(paths.index);
  await nodeFileSystem.remove(paths.partial);
  await nodeFileSystem.syncDir(paths.directory);
}

/**
 * Puts the finished file in place, durably and in an order that survives a
 * crash at any step: fsync the data → rename it over the target → fsync the
 * directory (the rename is now durable) → remove the index. A crash before
 * the rename leaves a complete partial download (the next run just renames
 * it); after it, a finished target and a stale index (removed by the next run).
 */
async function finish(paths: DownloadPaths, lastModified: string | undefined): Promise<void> {
  // openExisting refuses a link (O_NOFOLLOW) and anything but a regular
  // file, so what is renamed into place is the data file, never a link
  // planted at its name; and the target is checked once more, since a link
  // may have been planted there during the download.
  const data = await nodeFileSystem.openExisting(paths.partial);
  try {
    await data.sync();
  } finally {
    await data.close();
  }
  const partial = await lstatOrUndefined(paths.partial);
  if (partial === undefined || !partial.isFile()) throw unsafePathError(paths.partial, partial === undefined ? 'gone' : fileKind(partial), undefined);
  const target = await lstatOrUndefined(paths.target);
  if (target !== undefined && !target.isFile()) throw unsafePathError(paths.target, fileKind(target), undefined);
  // The remote's Last-Modified becomes the file's mtime (as `curl -R` and
  // `wget -N` do), so that a later run can tell the file is that revision
  // (lutimes: a link planted since the check above is not followed).
  const modified = lastModified === undefined ? NaN : Date.parse(lastModified);
  if (Number.isFinite(modified)) await lutimes(paths.partial, new Date(), new Date(modified)).catch(() => undefined);
  await nodeFileSystem.rename(paths.partial, paths.target);
  await nodeFileSystem.syncDir(paths.directory);
  await nodeFileSystem.remove(paths.liveIndex);
  await nodeFileSystem.remove(paths.index);
  await nodeFileSystem.syncDir(paths.directory);
}
