/**
 * The CachingDownloader: fetches the blocks a {@link DownloadCache} is
 * missing from a {@link Reader}, many at once, streaming every body straight
 * into its place in the data file, and verifies the whole file's digest in
 * order while it runs.
 *
 * One run, step by step:
 * 1. Look at the remote (`reader.contentLengthAndBlockSize`, retried) and
 *    check it is the revision the cache holds bytes of (size, ETag,
 *    Last-Modified); a cache with no identity yet records it.
 * 2. Plan requests over the outstanding blocks (adjacent ones coalesced up
 *    to `maxRequestBytes`) and run them with at most `concurrency` open.
 *    Each body is written chunk by chunk (`writeData`), rate limited chunk by
 *    chunk, and each block is marked (`markCached`) only once exactly its
 *    bytes were written. A failed attempt resumes at the first unwritten
 *    byte, after a backoff: the attempt engine (`attempts.ts`) retries,
 *    resumes and checks body lengths; this class only says where the bytes
 *    go (`CacheSink`).
 * 3. Meanwhile one loop follows `cache.tail()` and feeds the growing prefix
 *    to the in-order digest and to any tail streams, reading the data file
 *    in bounded chunks.
 * 4. With `waitForCompletion`, blocks whose attempts ran out get further
 *    passes. At the end the index is flushed, whatever happened.
 */
import { setMaxListeners } from 'node:events';
import type { Readable } from 'node:stream';
import PQueue from 'p-queue';
import type { DownloadCache, ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import {
  AbortedError,
  BlockfetchError,
  DigestMismatchError,
  InvalidArgumentError,
  RemoteChangedError,
  RetriesExhaustedError,
} from '../errors.js';
import { numBlocks } from '../ranges/byte-range.js';
import { AttemptEngine, blockKey, type BodySink } from './attempts.js';
import { backoffDelay, sleep } from './backoff.js';
import {
  outcomeOf,
  resolveCachingOptions,
  type CachingDownloaderOptions,
  type DownloadEvent,
  type DownloadStatus,
  type ResolvedCachingOptions,
} from './caching-options.js';
import { chooseDigest, mergeDigests, type DigestResult } from './digest.js';
import { debug, EventReporter, retryEventOf } from './events.js';
import { compareIdentity } from './identity.js';
import { digestPrefix, type PrefixDigestOutcome } from './prefix-digest.js';
import { PrefixWatcher } from './prefix-watcher.js';
import { RateLimiter } from './rate-limiter.js';
import type { ContentInfo, Reader } from './reader.js';
import { shrinkingBlocksPerRequest, planRequests, type PlannedRequest } from './request-planner.js';
import { IdleShare, idleMs } from './idle-time.js';
import { RequestSizer, type RequestTimings } from './request-sizer.js';
import { keepLast, median } from './samples.js';
import { StatsRecorder, type DownloadStats } from './stats.js';
import { createTailStream, type TailStreamOptions } from './tail-stream.js';

/** The state of one `run()`. */
interface RunState {
  /** Aborted by the caller's signal or by the first fatal error. */
  readonly signal: AbortSignal;
  readonly abort: (reason: unknown) => void;
  readonly stats: StatsRecorder;
  /** The first error that must stop the whole run. */
  fatal: unknown;
  /** Errors raised by the cache's writes: they make the run not resumable, and are never retried. */
  readonly internal: WeakSet<object>;
  /** Every request of the run, the look and the revalidation go through it: one retry budget. */
  readonly engine: AttemptEngine;
  /** The `stats.version` of the last progress event. */
  progressVersion: number;
}

/**
 * Bytes of writes ALL requests together may have in flight (each request
 * gets its share, see {@link writeWindowBytes}). Chosen when writes waited
 * their turn in the thread pool holding their socket chunks: at 16
 * connections x 4 MiB that was 185-204 MB peak RSS against 150-159 MB with
 * 1 MiB each (docs/benchmarks.md, issue 10, 2026-12-07). Since the data
 * write is made on the main thread (see src/cache/file.ts) the window
 * rarely fills; it still bounds what a slow write can hold.
 */
const WRITE_WINDOWS_BYTES = 16 * 2 ** 20;

/**
 * One request's write window at `concurrency`: its share of
 * {@link WRITE_WINDOWS_BYTES}, from 1 MiB (enough for one gathered write
 * running while the next gathers) to 4 MiB.
 */
function writeWindowBytes(concurrency: number): number {
  return Math.min(4 * 2 ** 20, Math.max(2 ** 20, Math.floor(WRITE_WINDOWS_BYTES / concurrency)));
}

/**
 * Socket chunks smaller than this (a 1 MiB read buffer holds what the
 * socket had: often less) are copied into a gather buffer of this many
 * bytes, written as one `pwritev` (see {@link GatherBuffers}): one write
 * per chunk was 8,294 pwrite64 per 512 MiB
 * when each was a thread-pool round trip (see docs/benchmarks.md). Since
 * the gathered write is made on the main thread (no round trip), 128 KiB
 * costs less CPU than 1 MiB: 2.1-2.7 against 3.2-3.6 CPU s per GiB at c8
 * (issue 10, "CPU per byte"), as a chunk held until 1 MiB has gathered
 * lives long enough to be promoted and freed only by a full collection.
 */
const COALESCE_BYTES = 128 * 2 ** 10;

/**
 * The buffers chunks are gathered in (each {@link COALESCE_BYTES}), used
 * again once the write of their bytes has settled: a download at full speed
 * allocates none after its first few writes. Copying a chunk into one
 * (about 0.03 CPU s per GiB, from memory the socket read just touched) is
 * what lets the HTTP reader read every socket chunk into the same few
 * buffers (`ReadOptions.lend`): no allocation per chunk for the collector
 * to find, and both kernel copies work on memory already in the CPU's
 * cache (bench/undici-body.mjs: reading 1 GiB into a reused buffer costs
 * 0.17-0.20 user and 0.56-0.59 sys s, into a new one per read 0.29-0.37
 * and 0.73-0.96).
 */
class GatherBuffers {
  readonly #free: Buffer[] = [];

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(COALESCE_BYTES);
  }

  /** A buffer whose write has settled (kept up to 16, about one per connection's window). */
  give(buffer: Buffer): void {
    if (this.#free.length < 16) this.#free.push(buffer);
  }
}

/**
 * The tail splits only a request whose blocks ahead would take longer than
 * this at its own rate so far (ms), and none younger than this (too soon to
 * tell its rate). A split costs what the victim's connection already has in
 * flight past the cut: on loopback the server is 4-6 MiB ahead of the
 * reader, and splitting 4 MiB requests that would have ended within 10-40
 * ms made a 1 GiB run send 4-51 MiB beyond the file for no time gained
 * (0-12 with this rule; docs/benchmarks.md, seventh session). A slow route's request (5 MB/s: 200 ms a MiB) and a
 * large remainder at any speed are still split.
 */
const SPLIT_MIN_MS = 50;

/**
 * While requests are still being planned, a running request is split early
 * only when its body rate so far is under this share of the median body
 * rate of the running requests (see `#splitLaggard`): a slow route, not a
 * request that is merely large.
 */
const LAGGARD_RATE_SHARE = 0.5;

/**
 * The tail splits a request only when the event loop was idle for at least
 * this share of the last {@link TAIL_IDLE_WINDOW_MS}: a new connection adds
 * speed only while the process waits for bytes. On loopback the loop was
 * never idle (0.00 at every tail split of 1 GiB from nginx at c8, 3 runs):
 * the bytes a request has ahead already sat in the socket queues, each
 * split made the server send them again, and 1 GiB sent 11-23 MiB beyond
 * the file. From the capped and slow-route bench servers the loop was idle
 * 0.33-0.80 of the time at each split (c4, c8, c16). A process the network
 * limits idles; one that limits itself does not, and once only a slow
 * request runs, it idles too.
 */
const TAIL_MIN_IDLE_SHARE = 0.1;

/** The window {@link TAIL_MIN_IDLE_SHARE} is measured over, in ms. */
const TAIL_IDLE_WINDOW_MS = 100;

/** A running request the tail may split: its blocks ahead, how long they would take at its rate, and that rate. */
interface Victim {
  readonly sink: CacheSink;
  readonly first: number;
  readonly last: number;
  readonly ms: number;
  readonly rate: number;
}

/** How many ended requests' rates the tail keeps to judge what a new request will get. */
const ENDED_RATES_KEPT = 8;

/** How often the tail looks again while a connection is free and no request is worth splitting yet, in ms. */
const SPLIT_RECHECK_MS = 10;

/**
 * The writes one attempt has started and not yet awaited. A rejection is
 * kept (never left unhandled) and thrown by the next {@link WriteWindow.drain}.
 */
class WriteWindow {
  #pending: Promise<void>[] = [];
  #failure: { readonly error: unknown } | undefined;
  /** Bytes in the writes not yet drained. */
  bytes = 0;

  add(write: Promise<void>, bytes: number): void {
    this.#pending.push(
      write.catch((error: unknown) => {
        this.#failure ??= { error };
      }),
    );
    this.bytes += bytes;
  }

  /** Waits for every write started so far; throws the first that failed. */
  async drain(): Promise<void> {
    const failure = await this.settle();
    if (failure) throw failure.error;
  }

  /** Waits for every write started so far; returns the first failure instead of throwing it. */
  async settle(): Promise<{ readonly error: unknown } | undefined> {
    const pending = this.#pending;
    this.#pending = [];
    this.bytes = 0;
    await Promise.all(pending);
    return this.#failure;
  }
}

/**
 * Downloads what a cache is missing, resumably and verified.
 *
 * `run()` RESOLVES with a {@link DownloadStatus} for every outcome of the
 * download itself: complete, failed (`status.error`, a typed
 * `BlockfetchError`), or aborted (`BLOCKFETCH_ABORTED`). It REJECTS only
 * for programming errors: calling `run()` while a run is in progress. Bad
 * options throw from the constructor. The caller owns the cache (and closes it).
 *
 * @example
 * ```ts
 * const cache = await LocalDownloadCache.open(...);
 * const dl = new CachingDownloader(new FileReader('/data/big.iso'), cache, { concurrency: 16 });
 * const tail = dl.createTailStream();           // optional: the bytes in order, as they arrive
 * tail.pipe(createHash('sha1'));
 * const status = await dl.run(AbortSignal.timeout(3_600_000));
 * await cache.close();
 * if (!status.complete) throw status.error;
 * ```
 */
export class CachingDownloader {
  readonly #reader: Reader;
  readonly #cache: DownloadCache;
  readonly #options: ResolvedCachingOptions;
  readonly #limiter: RateLimiter;
  readonly #events: EventReporter<DownloadEvent>;
  readonly #prefix: PrefixWatcher;
  readonly #contentLength: number;
  readonly #blockSize: number;
  readonly #numBlocks: number;
  /** Open tail streams, and the error each must end with once its run failed. */
  readonly #tails = new Map<Readable, Error | undefined>();
  /** Where every request's chunks are gathered before a write. */
  readonly #gatherBuffers = new GatherBuffers();
  /** Bytes per ms of the last {@link ENDED_RATES_KEPT} requests that ended, oldest first (for the tail's shares). */
  readonly #endedRates: number[] = [];
  /** How idle the event loop was of late (see {@link TAIL_MIN_IDLE_SHARE}); read as requests are planned, end and split. */
  readonly #recentIdle = new IdleShare(TAIL_IDLE_WINDOW_MS);
  /** Sizes requests from the head waits and rates of those that ended; undefined when the caller fixed `maxRequestBytes`. */
  readonly #sizer: RequestSizer | undefined;
  #running = false;
  /** True once a run ended with the file complete and verified. */
  #verified = false;
  /**
   * True once the current run (or, between runs, the last one) found the
   * remote to be the revision the cache holds: only then do tail streams
   * hand on cached bytes (see `TailSource.confirmed`).
   */
  #confirmed = false;
  #lastStats: StatsRecorder | undefined;

  /**
   * @param reader where the bytes come from.
   * @param cache where they go; its size and block size rule (the reader's
   *   preferred block size is only a suggestion for creating a cache).
   * @param options see {@link CachingDownloaderOptions}; checked here.
   * @throws InvalidArgumentError for a bad option.
   */
  constructor(reader: Reader, cache: DownloadCache, options: CachingDownloaderOptions = {}) {
    if (typeof reader !== 'object' || reader === null || typeof reader.getReader !== 'function') {
      throw new InvalidArgumentError(`CachingDownloader reader must be a Reader, got ${String(reader)} (${typeof reader})`);
    }
    if (typeof cache !== 'object' || cache === null || typeof cache.writeData !== 'function') {
      throw new InvalidArgumentError(`CachingDownloader cache must be a DownloadCache, got ${String(cache)} (${typeof cache})`);
    }
    this.#reader = reader;
    this.#cache = cache;
    this.#options = resolveCachingOptions(options);
    this.#sizer = this.#options.sizeRequests ? new RequestSizer(this.#options.maxRequestBytes) : undefined;
    const o = this.#options;
    this.#limiter =
      o.rateLimiter ??
      new RateLimiter({
        ...(o.bytesPerSecond === undefined ? {} : { bytesPerSecond: o.bytesPerSecond }),
        ...(o.requestsPerSecond === undefined ? {} : { requestsPerSecond: o.requestsPerSecond }),
      });
    this.#events = new EventReporter<DownloadEvent>('blockfetch:download', o.onEvent);
    const { contentLength, blockSize } = cache.contentLengthAndBlockSize();
    this.#contentLength = contentLength;
    this.#blockSize = blockSize;
    this.#numBlocks = numBlocks(contentLength, blockSize);
    this.#prefix = new PrefixWatcher(cache);
  }

  /** A snapshot of the current (or last) run's statistics, or undefined before the first run. */
  stats(): DownloadStats | undefined {
    return this.#lastStats?.snapshot();
  }

  /**
   * A Readable of the file's bytes in order, yielded as the contiguous cached
   * prefix grows (read back from the data file, so a slow reader never slows
   * the download). It ends once a run finished with the file complete and its
   * digest verified, and errors with the run's error when the run it follows
   * fails. Created before or during `run()`; created between runs it follows
   * the next one (or ends at once if the last run completed). Not a byte is
   * handed on before the run has checked that the remote is still the
   * revision the cache holds bytes of: a resumed download whose remote
   * changed errors the stream without emitting a stale byte.
   *
   * @example
   * ```ts
   * const tail = dl.createTailStream();
   * const copying = pipeline(tail, createWriteStream('/dev/stdout'));
   * await dl.run();
   * await copying;
   * ```
   */
  createTailStream(options: TailStreamOptions = {}): Readable {
    const stream = createTailStream(
      {
        cache: this.#cache,
        prefix: this.#prefix,
        confirmed: () => this.#confirmed,
        outcome: (s) => this.#tails.get(s) ?? (this.#verified && !this.#running ? 'done' : 'pending'),
        release: (s) => void this.#tails.delete(s),
      },
      options,
    );
    this.#tails.set(stream, undefined);
    return stream;
  }

  /**
   * Runs the download until it is complete or cannot go on, and reports how
   * it ended. Aborting `signal` stops every request and wait at once, flushes
   * the index and resolves with a resumable status whose error is
   * `BLOCKFETCH_ABORTED`.
   *
   * @throws InvalidArgumentError (rejects) when a run is already in progress.
   */
  async run(signal?: AbortSignal): Promise<DownloadStatus> {
    if (this.#running) {
      throw new InvalidArgumentError('CachingDownloader.run: a run is already in progress; await it before starting another');
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError(`CachingDownloader.run: signal must be an AbortSignal, got ${typeof signal}`);
    }
    this.#running = true;
    this.#verified = false;
    this.#confirmed = false;
    try {
      return await this.#run(signal);
    } finally {
      this.#running = false;
      this.#prefix.poke();
    }
  }

  async #run(outer: AbortSignal | undefined): Promise<DownloadStatus> {
    const controller = new AbortController();
    // Every open request legitimately listens on the run's signal (the
    // reader's request, a backoff sleep, a rate-limiter wait), each removing
    // its listener when done: raise Node's leak warning threshold to match.
    setMaxListeners(4 * this.#options.concurrency + 16, controller.signal);
    const cached = this.#cache.cachedBytesAndBlocks();
    const stats = new StatsRecorder({
      size: this.#contentLength,
      blockSize: this.#blockSize,
      doneBytes: cached.bytes,
      doneBlocks: cached.blocks,
    });
    const internal = new WeakSet<object>();
    const budget = this.#options.connectionBudget;
    const run: RunState = {
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      stats,
      fatal: undefined,
      internal,
      engine: new AttemptEngine({
        reader: this.#reader,
        retry: this.#options.retry,
        random: this.#options.random,
        stats,
        limiter: this.#limiter,
        // A block whose attempts ran out waits for the next pass.
        blockExhaustion: 'defer',
        isFatal: (err) => typeof err === 'object' && err !== null && internal.has(err),
        onRetry: (retry) => this.#events.emit(retryEventOf(retry, stats.snapshot())),
        // In a set, each attempt takes a slot of the shared budget and gives
        // it back before any backoff. The reader is the holder: downloadFile's
        // first look used the same one (see ConnectionBudget.join).
        ...(budget === undefined ? {} : { acquireConnection: (signal: AbortSignal) => budget.acquire(this.#reader, signal) }),
      }),
      progressVersion: -1,
    };
    this.#lastStats = run.stats;
    const onOuterAbort = (): void =>
      controller.abort(new AbortedError('the download was aborted', { cause: outer?.reason }));
    if (outer?.aborted) onOuterAbort();
    else outer?.addEventListener('abort', onOuterAbort, { once: true });
    // Stops the prefix follower and the digest loop when the run ends.
    const followers = new AbortController();
    const ticker = setInterval(() => this.#progress(run), this.#options.progressIntervalMs);
    ticker.unref();

    let error: BlockfetchError | undefined;
    let resumable = true;
    let digest: DigestResult | undefined;
    let flushed = false;
    try {
      const info = await this.#look(run);
      this.#sizer?.firstLooked(info.firstAnswerIdleMs);
      this.#confirmed = true;
      this.#prefix.poke();
      this.#events.emit({ type: 'start', info, connections: this.#connections(info), stats: run.stats.snapshot() });
      void this.#prefix.follow(followers.signal);
      const hashing = this.#hashInOrder(info, followers.signal);
      // A failed read of the data file stops the run at once, not at the end.
      hashing.catch((err: unknown) => this.#fail(run, err));

      await this.#passes(run, info);
      // Bytes fetched in this run could include a revision the remote
      // switched to in place while a response was under way: ask once more.
      if (this.#cache.complete() && run.stats.snapshot().downloadedBytes > 0) await this.#revalidate(run);
      this.#prefix.refresh();
      const hashed = await hashing;
      if (hashed !== undefined) {
        digest = hashed.result;
        if (hashed.mismatch !== undefined) throw this.#mismatch(hashed.mismatch);
      }
      await this.#flush(run);
      flushed = true;
    } catch (err) {
      ({ error, resumable } = this.#classify(run, err));
    } finally {
      followers.abort();
      clearInterval(ticker);
      outer?.removeEventListener('abort', onOuterAbort);
    }
    if (!flushed) {
      // Whatever ended the run, the blocks that did land must reach the index.
      try {
        await this.#flush(run);
      } catch (err) {
        const classified = this.#classify(run, err);
        error ??= classified.error;
        resumable = false;
      }
    }

    const complete = error === undefined && this.#cache.complete();
    const status: DownloadStatus = Object.freeze({
      stats: run.stats.snapshot(),
      complete,
      resumable,
      durationMs: Math.round(run.stats.snapshot().elapsedMs),
      ...(error === undefined ? {} : { error }),
      ...(digest === undefined ? {} : { digest }),
    });
    this.#settleTails(complete, error);
    debug('download %s ended: complete=%s resumable=%s %s', this.#reader.name, complete, resumable, error?.message ?? '');
    this.#events.emit({ type: 'done', outcome: outcomeOf(complete, error), status });
    return status;
  }

  /**
   * Asks the reader whether the remote is still the revision this run
   * fetched ({@link Reader.revalidate}), retried by the engine; a
   * `RemoteChangedError` ends the run not complete.
   */
  async #revalidate(run: RunState): Promise<void> {
    await run.engine.revalidate(run.signal);
  }

  /**
   * A digest mismatch, with a hint that says whose digest it was: only a
   * digest the caller gave is one to "check"; the server's (or one an
   * earlier run recorded in the index) means the bytes are wrong.
   */
  #mismatch(err: DigestMismatchError): DigestMismatchError {
    if (this.#options.expectedDigests.some((d) => d.algorithm === err.algorithm && d.hex === err.expected)) return err;
    return new DigestMismatchError(err.algorithm, err.expected, err.actual, {
      cause: err,
      hint: 'the expected digest is the one the server advertised (or an earlier run recorded in the index), not one you gave: the bytes on disk do not match it; the partial file is kept; start over (option `restart`) to fetch it again',
    });
  }

  /** Looks at the remote (retried by the engine) and checks it is the cached revision. */
  async #look(run: RunState): Promise<ContentInfo> {
    const info = await run.engine.look(run.signal);
    const atRisk = this.#cache.cachedBytesAndBlocks().bytes;
    if (info.contentLength !== this.#contentLength) {
      throw new RemoteChangedError(
        this.#reader.name,
        [{ field: 'size', before: String(this.#contentLength), after: String(info.contentLength) }],
        atRisk,
      );
    }
    const stored = this.#cache.remoteIdentity();
    if (stored !== undefined) {
      const changes = compareIdentity(stored, info.identity);
      if (changes.length > 0) throw new RemoteChangedError(this.#reader.name, changes, atRisk);
    }
    // Every digest this run knows goes into the index, so every later run
    // verifies the file against it even when it is not given again (and
    // the server no longer advertises one): a block that went bad on disk,
    // or an index whose claims were forged, then fails the digest instead
    // of ending as a wrong file.
    // One per algorithm; the caller's wins over a stored one of its
    // algorithm, a stored one over what the remote says now.
    const recorded = stored ?? info.identity;
    const before = recordedDigests(recorded);
    const known = mergeDigests([...this.#options.expectedDigests, ...before, this.#reader.digest(), info.identity.digest]);
    if (stored === undefined || !sameDigests(before, known)) {
      const [digest, ...extraDigests] = known;
      const { digest: _d, extraDigests: _e, ...rest } = recorded;
      const identity = { ...rest, ...(digest === undefined ? {} : { digest }), ...(extraDigests.length === 0 ? {} : { extraDigests }) };
      await this.#cacheCall(run, 'recording the remote identity', () => this.#cache.setRemoteIdentity(identity));
    }
    return info;
  }

  /** Passes over the outstanding blocks until complete, or until it is time to give up. */
  async #passes(run: RunState, info: ContentInfo): Promise<void> {
    const o = this.#options;
    for (let pass = 1; ; pass++) {
      run.stats.passStarted();
      await this.#pass(run, info);
      if (run.fatal !== undefined) throw run.fatal;
      run.signal.throwIfAborted();
      if (this.#cache.complete()) return;
      const missing = this.#numBlocks - this.#cache.cachedBytesAndBlocks().blocks;
      if (!o.waitForCompletion || pass >= o.maxPasses) {
        const lastFailure = run.engine.lastFailure;
        const last = lastFailure instanceof Error ? `; last error: ${lastFailure.message}` : '';
        throw new RetriesExhaustedError(
          `${missing} block(s) of ${this.#reader.name} still missing after ${pass} pass(es)${last}`,
          run.stats.snapshot().errors,
          { cause: lastFailure },
        );
      }
      const delayMs = backoffDelay(pass, o.retry, undefined, o.random);
      this.#events.emit({ type: 'pass', pass: pass + 1, outstandingBlocks: missing, delayMs, stats: run.stats.snapshot() });
      debug('%s: %d block(s) outstanding after pass %d; next pass in %d ms', this.#reader.name, missing, pass, delayMs);
      await sleep(delayMs, run.signal);
    }
  }

  /**
   * How many requests at once: `concurrency`, or 1 for {@link #oneStream}.
   */
  #connections(info: ContentInfo): number {
    return this.#oneStream(info) ? 1 : this.#options.concurrency;
  }

  /**
   * True when the file must come as one stream, in order: the server serves
   * no byte ranges, or nothing could show that bytes of parallel requests are
   * of one revision (no ETag or Last-Modified pins them, and no digest is
   * known to check the whole file against at the end). Then, as seed 002
   * does for a remote with no validator, each run of outstanding blocks is
   * one request, so a file replaced mid-download is not stitched from
   * parallel pieces of both.
   */
  #oneStream(info: ContentInfo): boolean {
    return !info.rangesSupported || (!info.pinned && this.#cache.remoteIdentity()?.digest === undefined);
  }

  /** One pass: every outstanding block is requested once (with retries). */
  async #pass(run: RunState, info: ContentInfo): Promise<void> {
    const o = this.#options;
    // Attempts per block start afresh each pass; the total limit is for the whole run.
    run.engine.newPass();
    const oneStream = this.#oneStream(info);
    const connections = this.#connections(info);
    const queue = new PQueue({ concurrency: connections });
    const onAbort = (): void => queue.clear();
    run.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const requests: Iterable<PlannedRequest> = info.rangesSupported
        ? planRequests(
            this.#cache,
            oneStream
              ? this.#numBlocks
              : shrinkingBlocksPerRequest({
                  blockSize: this.#blockSize,
                  maxRequestBytes: o.maxRequestBytes,
                  outstandingBytes: this.#contentLength - this.#cache.cachedBytesAndBlocks().bytes,
                  concurrency: o.concurrency,
                  ...(this.#sizer === undefined ? {} : { capBytes: this.#sizer.capBytes.bind(this.#sizer) }),
                }),
          )
        : this.#cache.complete()
          ? []
          : [{ firstBlock: 0, lastBlock: this.#numBlocks - 1, from: 0, to: this.#contentLength - 1 }];
      const running = new Set<CacheSink>();
      this.#recentIdle.sample(performance.now());
      const canSplit = info.rangesSupported && connections > 1;
      for (const request of requests) {
        if (run.signal.aborted) break;
        // The next request is about to be made: a request on a far slower
        // route gives up its blocks ahead first (#splitLaggard).
        const planned = request.lastBlock - request.firstBlock + 1;
        for (let split = canSplit ? this.#splitLaggard(running, connections, planned) : undefined; split !== undefined && !run.signal.aborted; ) {
          const taken = split;
          void queue.add(() => this.#fetch(run, taken, true, running));
          await queue.onSizeLessThan(1);
          split = this.#splitLaggard(running, connections, planned);
        }
        void queue.add(() => this.#fetch(run, request, info.rangesSupported, running));
        // Plan lazily: one request waits for a connection, so the next is
        // sized from the requests that ended until just before it.
        if (queue.size >= 1) await queue.onSizeLessThan(1);
      }
      // Nothing left to plan: a connection that comes free takes over part
      // of what the slowest request still has ahead of it (#splitTail).
      while (!run.signal.aborted && canSplit) {
        const free = queue.size === 0 && queue.pending < connections;
        if (free) {
          const split = this.#splitTail(running);
          if (split !== undefined) {
            void queue.add(() => this.#fetch(run, split, true, running));
            continue;
          }
        }
        if (queue.pending === 0 && queue.size === 0) break;
        // A free connection looks again soon: a request too young to judge,
        // or one that slows down, may be worth splitting before any ends.
        await nextOrTimeout(queue, free ? SPLIT_RECHECK_MS : undefined);
      }
      await queue.onIdle();
    } finally {
      run.signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Fetches one request through the engine (which retries and resumes);
   * never rejects: a fatal error stops the run instead, and a request whose
   * attempts ran out stays outstanding for the next pass.
   */
  async #fetch(run: RunState, request: PlannedRequest, ranged: boolean, running?: Set<CacheSink>): Promise<void> {
    const writeDataNow = ranged ? this.#cache.writeDataNow?.bind(this.#cache) : undefined;
    const target: CacheTarget = {
      write: (parts, offset) => this.#write(run, parts, offset, ranged),
      writeNow:
        writeDataNow === undefined
          ? undefined
          : (chunk, offset) => this.#cacheCall(run, `writing bytes at ${offset}`, () => writeDataNow(chunk, offset)),
      mark: (index) => this.#mark(run, index, ranged),
      blockEnd: (index) => this.#blockEnd(index),
      blockSize: this.#blockSize,
      writeWindowBytes: writeWindowBytes(this.#options.concurrency),
    };
    // A copy: its end (`to`, the engine's range) may be lowered by the tail.
    const live: LiveRequest = { ...request };
    const sink = new CacheSink(target, live, ranged, this.#gatherBuffers);
    running?.add(sink);
    try {
      await run.engine.fetch(blockKey(request.firstBlock), live, sink, run.signal);
    } catch (err) {
      this.#fail(run, err);
    } finally {
      running?.delete(sink);
      const now = performance.now();
      this.#recentIdle.sample(now);
      const rate = sink.rateSoFar(now, 1);
      if (rate !== undefined && rate > 0) keepLast(this.#endedRates, rate, ENDED_RATES_KEPT);
      if (this.#sizer !== undefined) {
        const timings = sink.timings(now);
        if (timings !== undefined) this.#sizer.requestEnded(timings);
      }
    }
  }

  /**
   * The tail: when a connection is free and nothing is left to plan, the
   * running request whose blocks ahead (after the one it is receiving)
   * would take longest at its rate so far (a slow route, a throttled
   * replica) gives the upper part of them to a new request, as aria2 splits
   * a segment: a share by speed, half when the requests run alike. Only a
   * request whose blocks ahead would take more than {@link SPLIT_MIN_MS} is
   * split, and only while the event loop idles ({@link TAIL_MIN_IDLE_SHARE}).
   */
  #splitTail(running: ReadonlySet<CacheSink>): PlannedRequest | undefined {
    const now = performance.now();
    if ((this.#recentIdle.share(now) ?? 1) < TAIL_MIN_IDLE_SHARE) return undefined;
    let best: Victim | undefined;
    const rates = new Map<CacheSink, number>();
    for (const sink of running) {
      const rate = sink.rateSoFar(now);
      if (rate !== undefined) rates.set(sink, rate);
      const { first, last } = sink.spareBlocks;
      if (last < first || rate === undefined) continue;
      const ms = (this.#blockEnd(last) - first * this.#blockSize + 1) / rate;
      if (ms > SPLIT_MIN_MS && (best === undefined || ms > best.ms)) best = { sink, first, last, ms, rate };
    }
    if (best === undefined) return undefined;
    return this.#cut(best, rates);
  }

  /**
   * While requests are still being planned: a running request whose body
   * rate so far is under {@link LAGGARD_RATE_SHARE} of the median of the
   * running requests' body rates, and whose blocks ahead would take longer
   * at that rate than the rest of the download at the median rate on the
   * other connections, gives up its upper blocks now, as the tail would
   * later (a share by speed, as `#cut` takes it), but at most `maxBlocks`
   * (the size of the request the plan made next) at a time: the next free
   * connection takes the next piece. Without this, a slow route's request
   * holds its blocks until nothing is left to plan, and the tail then splits
   * them into many small requests at once. Body rates, from each request's
   * first byte: a request still waiting for its head is not slow, only far.
   */
  #splitLaggard(running: ReadonlySet<CacheSink>, connections: number, maxBlocks: number): PlannedRequest | undefined {
    const now = performance.now();
    this.#recentIdle.sample(now);
    const rates = new Map<CacheSink, number>();
    for (const sink of running) {
      const rate = sink.bodyRateSoFar(now);
      if (rate !== undefined) rates.set(sink, rate);
    }
    if (rates.size < 2) return undefined;
    const typical = median([...rates.values()]);
    if (typical === undefined || typical <= 0) return undefined;
    const outstandingBytes = this.#contentLength - this.#cache.cachedBytesAndBlocks().bytes;
    let best: Victim | undefined;
    for (const [sink, rate] of rates) {
      if (rate >= LAGGARD_RATE_SHARE * typical) continue;
      const { first, last } = sink.spareBlocks;
      if (last < first) continue;
      const spareBytes = this.#blockEnd(last) - first * this.#blockSize + 1;
      const ms = spareBytes / Math.max(rate, Number.MIN_VALUE);
      const othersMs = (outstandingBytes - spareBytes) / (typical * Math.max(1, connections - 1));
      if (ms > SPLIT_MIN_MS && ms > othersMs && (best === undefined || ms > best.ms)) best = { sink, first, last, ms, rate };
    }
    return best === undefined ? undefined : this.#cut(best, rates, maxBlocks);
  }

  /**
   * Takes the upper part of `best`'s blocks ahead, at most `maxBlocks`, for
   * a new request: the victim keeps what its rate gets through while the
   * median rate of the other requests does the rest.
   */
  #cut(best: Victim, rates: ReadonlyMap<CacheSink, number>, maxBlocks = Number.POSITIVE_INFINITY): PlannedRequest {
    const spare = best.last - best.first + 1;
    // Shares by speed, so both sides end together: the victim keeps what its
    // rate gets through while the median rate of the other requests (those
    // running and the last few ended) does the rest: half when they are
    // alike, little or nothing beyond the block it is receiving for a slow
    // route. At least one block is taken.
    const otherRates = [...this.#endedRates];
    for (const [sink, rate] of rates) if (sink !== best.sink) otherRates.push(rate);
    const others = median(otherRates) ?? best.rate;
    const share = best.rate + others === 0 ? 0.5 : best.rate / (best.rate + others);
    const taken = Math.max(1, Math.min(maxBlocks, spare - Math.round(spare * share)));
    const firstBlock = best.last - taken + 1;
    best.sink.shrinkTo(firstBlock - 1);
    return { firstBlock, lastBlock: best.last, from: firstBlock * this.#blockSize, to: this.#blockEnd(best.last) };
  }

  /**
   * Writes adjacent chunks from `offset`, in one write where the cache can
   * (`writeDataParts`); without ranges, skips the parts of blocks already cached.
   */
  async #write(run: RunState, parts: readonly Uint8Array[], offset: number, ranged: boolean): Promise<void> {
    const cache = this.#cache;
    const writeParts = cache.writeDataParts?.bind(cache);
    if (ranged && writeParts !== undefined) {
      await this.#cacheCall(run, `writing bytes at ${offset}`, () => writeParts(parts, offset));
      return;
    }
    const chunk = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
    if (ranged) {
      await this.#cacheCall(run, `writing bytes at ${offset}`, () => cache.writeData(chunk, offset));
      return;
    }
    const end = offset + chunk.length;
    for (let from = offset; from < end; ) {
      const block = Math.floor(from / this.#blockSize);
      const to = Math.min(end, (block + 1) * this.#blockSize);
      if (this.#isOutstanding(block)) {
        const piece = chunk.subarray(from - offset, to - offset);
        await this.#cacheCall(run, `writing bytes at ${from}`, () => this.#cache.writeData(piece, from));
      }
      from = to;
    }
  }

  /** Marks a block cached and counts it (a block already cached, without ranges, is skipped). */
  #mark(run: RunState, index: number, ranged: boolean): void {
    if (!ranged && !this.#isOutstanding(index)) return;
    try {
      this.#cache.markCached(index);
    } catch (err) {
      throw this.#internal(run, `marking block ${index} cached`, err);
    }
    run.stats.blockDone(this.#blockEnd(index) - index * this.#blockSize + 1);
  }

  #isOutstanding(index: number): boolean {
    return this.#cache.nextOutstanding(index, { from: -1, to: -1 }) === index + 1;
  }

  #blockEnd(index: number): number {
    return Math.min((index + 1) * this.#blockSize, this.#contentLength) - 1;
  }

  /**
   * Starts hashing the file in order (see {@link digestPrefix}), with the
   * caller's expected digest, else the remote's; resolves undefined when
   * hashing is off or the run ends first.
   */
  #hashInOrder(info: ContentInfo, stop: AbortSignal): Promise<PrefixDigestOutcome | undefined> {
    // The digests recorded in the index (every one an earlier run or this
    // one knew, see #look) count as much as one advertised now.
    const stored = recordedDigests(this.#cache.remoteIdentity());
    const remote: ExpectedDigest | undefined = this.#reader.digest() ?? info.identity.digest ?? stored[0];
    const wanted = this.#options.computeDigest ?? (this.#options.expectedDigest !== undefined || remote !== undefined);
    if (!wanted) return Promise.resolve(undefined);
    const { algorithm, expected } = chooseDigest(this.#options.expectedDigest, remote);
    return digestPrefix({
      cache: this.#cache,
      prefix: this.#prefix,
      algorithm,
      expected,
      also: mergeDigests([expected, ...this.#options.expectedDigests, ...stored]).filter((d) => d.algorithm !== algorithm),
      readChunkBytes: this.#options.readChunkBytes,
      stop,
    });
  }

  async #flush(run: RunState): Promise<void> {
    await this.#cacheCall(run, 'flushing the index', () => this.#cache.flush());
  }

  /** Runs a cache write; its failure becomes a `BLOCKFETCH_DISK_WRITE` error that ends the run unresumable. */
  async #cacheCall(run: RunState, what: string, call: () => Promise<void>): Promise<void> {
    try {
      await call();
    } catch (err) {
      throw this.#internal(run, what, err);
    }
  }

  #internal(run: RunState, what: string, err: unknown): BlockfetchError {
    const wrapped =
      err instanceof BlockfetchError
        ? err
        : new BlockfetchError('BLOCKFETCH_DISK_WRITE', `${what} failed: ${messageOf(err)}`, {
            cause: err,
            hint: 'check the disk (space, permissions, health); the blocks already recorded are kept',
          });
    run.internal.add(wrapped);
    return wrapped;
  }

  /** Records the first fatal error and stops everything else. */
  #fail(run: RunState, err: unknown): void {
    if (run.signal.aborted) return;
    run.fatal = err;
    run.abort(err);
  }

  /** Turns whatever ended the run into a typed error, and says whether a later run can continue. */
  #classify(run: RunState, err: unknown): { error: BlockfetchError; resumable: boolean } {
    const cause = run.fatal ?? err;
    if (typeof cause === 'object' && cause !== null && run.internal.has(cause)) {
      return { error: cause as BlockfetchError, resumable: false };
    }
    if (cause instanceof RemoteChangedError) {
      const atRisk = this.#cache.cachedBytesAndBlocks().bytes;
      const error =
        cause.bytesAtRisk === atRisk ? cause : new RemoteChangedError(this.#reader.name, cause.changes, atRisk, { cause });
      return { error, resumable: false };
    }
    if (cause instanceof DigestMismatchError) return { error: cause, resumable: false };
    if (cause instanceof BlockfetchError) return { error: cause, resumable: true };
    return {
      error: new BlockfetchError('BLOCKFETCH_INTERNAL', `${this.#reader.name}: ${messageOf(cause)}`, { cause }),
      resumable: true,
    };
  }

  #progress(run: RunState): void {
    const version = run.stats.version;
    if (version === run.progressVersion) return;
    run.progressVersion = version;
    this.#events.emit({ type: 'progress', stats: run.stats.snapshot() });
  }

  #settleTails(complete: boolean, error: BlockfetchError | undefined): void {
    this.#verified = complete;
    if (!complete) {
      const reason = error ?? new BlockfetchError('BLOCKFETCH_ABORTED', 'the download ended incomplete');
      for (const stream of this.#tails.keys()) this.#tails.set(stream, reason);
    }
    this.#prefix.poke();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}


/** A planned request whose end the tail may lower while it runs (see {@link CacheSink.shrinkTo}). */
interface LiveRequest {
  readonly firstBlock: number;
  lastBlock: number;
  readonly from: number;
  to: number;
}

/** What a {@link CacheSink} needs of its downloader (its private write and mark steps, bound to one run). */
interface CacheTarget {
  /** Writes adjacent chunks from `offset` (skipping blocks already cached, without ranges). */
  write(parts: readonly Uint8Array[], offset: number): Promise<void>;
  /**
   * Writes `chunk` at `offset` and is done with its memory when it returns
   * (`DownloadCache.writeDataNow`); only with ranges, and when the cache has it.
   */
  readonly writeNow: ((chunk: Uint8Array, offset: number) => Promise<void>) | undefined;
  /** Marks a block cached and counts it. */
  mark(index: number): void;
  /** The last byte of block `index`. */
  blockEnd(index: number): number;
  readonly blockSize: number;
  /** Bytes of writes the request may have in flight before it waits for them. */
  readonly writeWindowBytes: number;
}

/**
 * Where the bytes of one request go: the cache's data file, through a
 * window of writes that run while the next chunks arrive, and the block
 * marks once a block's bytes are all written.
 *
 * Chunks are copied into a gather buffer of {@link COALESCE_BYTES} and
 * written as one when it fills, at a block's end, or at the body's end; a
 * chunk at least that large is written from where it is when the cache
 * takes its bytes during the call (`writeDataNow`): 512 MiB from nginx at
 * c8 took 0.82-0.91 CPU s against 1.09-1.22 with the copy
 * (docs/benchmarks.md, fifth session). Writes are not awaited one by one: up to the target's
 * `writeWindowBytes` of them run while the next chunks arrive, so the socket and the disk work at
 * the same time instead of taking turns (awaiting each 64 KiB write made a
 * loopback download about half as fast). A block is marked only after every
 * write that touched it has resolved, which is all `markCached` asks.
 */
class CacheSink implements BodySink {
  readonly #target: CacheTarget;
  /** The request, whose end {@link CacheSink.shrinkTo} may lower (its `to` is the engine's range). */
  readonly #request: LiveRequest;
  /** The first byte not yet received (where the engine's next chunk starts). */
  #nextByte: number;
  /** When the request started (performance.now()), for its rate so far. */
  readonly #startedAt = performance.now();
  /** The event loop's idle time (ms, cumulative) when the request started. */
  readonly #idleAtStart = idleMs();
  /** How long the event loop was idle while the request waited for its first body byte; undefined before that byte. */
  #idleHeadWaitMs: number | undefined;
  /** When the first body byte arrived (performance.now()). */
  #firstByteAt = 0;
  readonly #ranged: boolean;
  #writes = new WriteWindow();
  readonly #buffers: GatherBuffers;
  /** Where chunks received and not yet handed to a write are copied: adjacent, from `#gatheredFrom`. */
  #gathered: Buffer | undefined;
  #gatheredFrom = 0;
  #gatheredBytes = 0;
  /** The first block of the request not yet marked cached. */
  #nextToMark: number;
  /** True when an attempt marked a block since the last failure (what counts as progress without ranges). */
  #marked = false;

  /** Chunks are copied into the gather buffers: the reader may reuse their memory (`ReadOptions.lend`). */
  readonly copiesChunks = true;

  constructor(target: CacheTarget, request: LiveRequest, ranged: boolean, buffers: GatherBuffers) {
    this.#buffers = buffers;
    this.#target = target;
    this.#request = request;
    this.#ranged = ranged;
    this.#nextToMark = request.firstBlock;
    this.#nextByte = request.from;
  }

  /**
   * Bytes per ms this request has received since it started; undefined
   * while it is younger than `minAgeMs` (too soon to tell while it runs).
   */
  rateSoFar(now: number, minAgeMs = SPLIT_MIN_MS): number | undefined {
    const age = now - this.#startedAt;
    if (age < minAgeMs) return undefined;
    return (this.#nextByte - this.#request.from) / age;
  }

  /**
   * Bytes per ms since the first body byte; undefined until the body has
   * run for `minBodyMs` (a request waiting for its head has no body rate).
   */
  bodyRateSoFar(now: number, minBodyMs = SPLIT_MIN_MS): number | undefined {
    if (this.#idleHeadWaitMs === undefined) return undefined;
    const bodyMs = now - this.#firstByteAt;
    if (bodyMs < minBodyMs) return undefined;
    return (this.#nextByte - this.#request.from) / bodyMs;
  }

  /**
   * What the request showed of its head wait and rate (for the
   * `RequestSizer`); undefined when no body byte arrived.
   */
  timings(now: number): RequestTimings | undefined {
    if (this.#idleHeadWaitMs === undefined) return undefined;
    return { idleHeadWaitMs: this.#idleHeadWaitMs, bytes: this.#nextByte - this.#request.from, bodyMs: now - this.#firstByteAt };
  }

  /** The request's blocks after the one being received, which another request could take over. */
  get spareBlocks(): { readonly first: number; readonly last: number } {
    const receiving = Math.floor(this.#nextByte / this.#target.blockSize);
    return { first: Math.max(this.#nextToMark, receiving + 1), last: this.#request.lastBlock };
  }

  /**
   * Ends the request at `lastBlock` (at or after the block being received):
   * the engine's body in flight stops there, and the blocks after it are
   * another request's to fetch.
   */
  shrinkTo(lastBlock: number): void {
    this.#request.lastBlock = lastBlock;
    this.#request.to = this.#target.blockEnd(lastBlock);
  }

  write(chunk: Uint8Array, offset: number): void | Promise<void> {
    if (this.#idleHeadWaitMs === undefined) {
      this.#idleHeadWaitMs = idleMs() - this.#idleAtStart;
      this.#firstByteAt = performance.now();
    }
    this.#nextByte = offset + chunk.length;
    if (this.#gatheredBytes > 0 && offset !== this.#gatheredFrom + this.#gatheredBytes) this.#writeGathered();
    const writeNow = this.#target.writeNow;
    if (writeNow !== undefined && chunk.length >= COALESCE_BYTES) {
      // A chunk as large as a gather buffer is written from where it is:
      // the copy would buy no fewer writes.
      this.#writeGathered();
      this.#writes.add(writeNow(chunk, offset), chunk.length);
    } else {
      this.#gather(chunk, offset);
    }
    const end = offset + chunk.length;
    // Mark every block that is now whole, except the request's last: only
    // the end of the body shows that it was not longer than asked.
    const markable = this.#nextToMark < this.#request.lastBlock && this.#target.blockEnd(this.#nextToMark) < end;
    if (markable) return this.#markWhole(end);
    if (this.#writes.bytes >= this.#target.writeWindowBytes) return this.#writes.drain();
    return undefined;
  }

  async end(): Promise<void> {
    this.#writeGathered();
    await this.#writes.drain();
    while (this.#nextToMark <= this.#request.lastBlock) this.#markNext();
  }

  async settle(): Promise<void> {
    // The bytes gathered arrived whole, inside the range: they are written
    // before the attempt resumes after them.
    this.#writeGathered();
    const failure = await this.#writes.settle();
    if (failure) throw failure.error;
  }

  /** Copies `chunk` (the bytes from `offset`, right after those gathered) into gather buffers, writing each one that fills. */
  #gather(chunk: Uint8Array, offset: number): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#gathered === undefined) {
        this.#gathered = this.#buffers.take();
        this.#gatheredFrom = offset + at;
      }
      const piece = chunk.subarray(at, at + COALESCE_BYTES - this.#gatheredBytes);
      this.#gathered.set(piece, this.#gatheredBytes);
      this.#gatheredBytes += piece.length;
      at += piece.length;
      if (this.#gatheredBytes === COALESCE_BYTES) this.#writeGathered();
    }
  }

  /** Hands the gathered bytes to one write instead of a write per chunk; the buffer is used again once it settled. */
  #writeGathered(): void {
    const bytes = this.#gatheredBytes;
    const buffer = this.#gathered;
    if (bytes === 0 || buffer === undefined) return;
    this.#gathered = undefined;
    this.#gatheredBytes = 0;
    const write = this.#target.write([buffer.subarray(0, bytes)], this.#gatheredFrom);
    const buffers = this.#buffers;
    write.then(
      () => buffers.give(buffer),
      () => buffers.give(buffer),
    );
    this.#writes.add(write, bytes);
  }

  resumeAt(position: number, overran: boolean): number {
    // Without ranges the only request there is starts at byte 0 (blocks
    // already cached are skipped by the writes).
    if (!this.#ranged) {
      this.#nextToMark = this.#request.firstBlock;
      this.#nextByte = 0;
      return 0;
    }
    // Longer than asked: keep none of the unmarked block's bytes, and fetch
    // it again whole (they came from a confused body).
    return overran ? this.#nextToMark * this.#target.blockSize : position;
  }

  progressed(attemptFrom: number, position: number): boolean {
    // With ranges an attempt resumes where the last one stopped, so any byte
    // gained counts; without, only blocks newly marked do (the next attempt
    // starts at 0).
    const marked = this.#marked;
    this.#marked = false;
    return this.#ranged ? position > attemptFrom : marked;
  }

  async #markWhole(end: number): Promise<void> {
    this.#writeGathered();
    await this.#writes.drain();
    while (this.#nextToMark < this.#request.lastBlock && this.#target.blockEnd(this.#nextToMark) < end) this.#markNext();
  }

  #markNext(): void {
    this.#target.mark(this.#nextToMark++);
    this.#marked = true;
  }
}

/** The digests an identity records, `digest` first. */
function recordedDigests(identity: RemoteIdentity | undefined): ExpectedDigest[] {
  if (identity === undefined) return [];
  return [...(identity.digest === undefined ? [] : [identity.digest]), ...(identity.extraDigests ?? [])];
}

/** True when two digest lists name the same digests in the same order. */
function sameDigests(a: readonly ExpectedDigest[], b: readonly ExpectedDigest[]): boolean {
  return a.length === b.length && a.every((d, i) => d.algorithm === b[i]?.algorithm && d.hex === b[i]?.hex);
}

/** Resolves when `queue` finishes a task, or after `ms` (when given), whichever comes first. */
function nextOrTimeout(queue: PQueue, ms: number | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      queue.off('next', done);
      resolve();
    };
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    queue.once('next', done);
  });
}
