/**
 * `downloadFiles(entries, options)`: a set of files in one call, each
 * through {@link downloadFile} (so each keeps its own partial file, index,
 * lock, resume and digest check), with one connection limit for the whole
 * set and a few files at a time.
 *
 * - `concurrency` counts requests across the set: every file's requests
 *   take a slot from one {@link ConnectionBudget}. A file alone may use all
 *   of them; several share them, and a finished file's slots go to the
 *   others at once.
 * - `maxConcurrentFiles` files run at once (aria2c's
 *   `--max-concurrent-downloads`), taken in order; a small file does not
 *   wait for a large one to finish, only for a free place among them.
 *   Never more files than connections, so every running file has one.
 * - Running the same set again resumes it: a file whose target exists with
 *   no partial download beside it is finished and skipped (no request),
 *   the others resume from their blocks on disk.
 * - One file's failure does not stop the others; the result lists every
 *   file's outcome. Aborting `signal` stops every file (each saves its
 *   index) and marks the files not yet started.
 */
import { lstat } from 'node:fs/promises';
import { sep } from 'node:path';

import type { Dispatcher } from 'undici';

import type { ExpectedDigest } from './cache/types.js';
import type { RetryOptions } from './download/backoff.js';
import { ConnectionBudget } from './download/connection-budget.js';
import { combineExpectedDigests } from './download/digest.js';
import { RateLimiter } from './download/rate-limiter.js';
import type { Reader } from './download/reader.js';
import { DEFAULT_CONCURRENCY, DEFAULT_MAX_CONCURRENT_FILES } from './defaults.js';
import {
  downloadFile,
  downloadPaths,
  isOwnFileName,
  PARTIAL_SUFFIX,
  tidyFinishedDownload,
  type DownloadFileEvent,
  type DownloadFileOptions,
  type DownloadFileResult,
} from './download-file.js';
import { AbortedError, BlockfetchError, DigestMismatchError, InvalidArgumentError } from './errors.js';
import { checkDigests, finishedFileStat, type DigestCheck } from './finished-file.js';
import { definedFields, describeValue, wholeNumber } from './validate.js';

/** Per-file options: each overrides the set's option of the same name. */
export type DownloadEntryOptions = Pick<DownloadFileOptions, 'expectedDigest' | 'expectedDigests' | 'headers' | 'createReader' | 'blockSize' | 'overwrite' | 'restart'>;

/** One file of a set. */
export interface DownloadEntry {
  /** What to read: a URL, or any {@link Reader}. */
  readonly source: string | Reader;
  /** Where to save it (relative to the working directory, or absolute). */
  readonly target: string;
  /** The name events and the result use for it. @default `target` as given */
  readonly key?: string;
  /** Per-file options; each overrides the set's option of the same name. */
  readonly options?: DownloadEntryOptions;
}

/** Options of {@link downloadFiles}. Every field is optional. */
export interface DownloadFilesOptions {
  /** Requests open at once across the WHOLE set. @default 8 (`DEFAULT_CONCURRENCY`) */
  readonly concurrency?: number;
  /** Files downloading at once (aria2c's `--max-concurrent-downloads`); at most `concurrency`. @default 5 */
  readonly maxConcurrentFiles?: number;
  /** The block size of each new download (see {@link DownloadFileOptions.blockSize}). @default the reader's (1 MiB for HTTP) */
  readonly blockSize?: number;
  /** The most one request asks for, in bytes. @default 67108864 (64 MiB) */
  readonly maxRequestBytes?: number;
  /**
   * Limit the transfer of the WHOLE set to this many bytes per second: one
   * rate limiter shared by every file, so the files downloading at once
   * share the rate between them. @default undefined (no limit)
   */
  readonly bytesPerSecond?: number;
  /** Extra request headers for every file (an entry's own `headers` replace them). @default {} */
  readonly headers?: Readonly<Record<string, string>>;
  /** A digest every file must have: only for a set of one; give each entry its own instead. @default undefined */
  readonly expectedDigest?: ExpectedDigest;
  /** Discard a partial download whose remote changed, per file. @default false */
  readonly restart?: boolean;
  /** Download again and replace targets that exist (nothing is skipped). @default false */
  readonly overwrite?: boolean;
  /** Retry limits and backoff, per file. @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /** HTTP request timeout, in ms. @default 30000 */
  readonly timeoutMs?: number;
  /** How long to wait for another process's lock on one file. @default 7000 */
  readonly lockWaitMs?: number;
  /** The undici dispatcher every file's HTTP reader uses (one pool for the set). @default a new Agent per file */
  readonly dispatcher?: Dispatcher;
  /** How a URL source is read, for every entry that does not give its own. @default an `HttpReader` */
  readonly createReader?: (url: string) => Reader;
  /** Stops every file; each saves its index. Run the same set again to resume. */
  readonly signal?: AbortSignal;
  /** Receives the events of every file, keyed by entry, and the set's own (see {@link DownloadFilesEvent}). */
  readonly onEvent?: (event: DownloadFilesEvent) => void;
}

/**
 * The defaults of {@link DownloadFilesOptions}.
 *
 * @example
 * ```ts
 * await downloadFiles(entries, { maxConcurrentFiles: defaultDownloadFilesOptions.maxConcurrentFiles * 2 });
 * ```
 */
export const defaultDownloadFilesOptions = Object.freeze({
  concurrency: DEFAULT_CONCURRENCY,
  /** aria2c's default for `--max-concurrent-downloads` (`DEFAULT_MAX_CONCURRENT_FILES`). */
  maxConcurrentFiles: DEFAULT_MAX_CONCURRENT_FILES,
});

/** Totals of the set, on each `set-progress` event. */
export interface DownloadFilesProgress {
  /** Files in the set. */
  readonly files: number;
  /** Files finished by this call. */
  readonly done: number;
  /** Files skipped: already complete. */
  readonly skipped: number;
  /** Files that failed. */
  readonly failed: number;
  /** Files running now. */
  readonly active: number;
  /** Bytes on disk of the files started so far (finished, skipped and running). */
  readonly doneBytes: number;
  /** The sizes of the files known so far (a file's size is known once it has started). */
  readonly knownBytes: number;
  /** Bytes fetched by this call. */
  readonly bytesThisRun: number;
  /** Requests open now, across the set. */
  readonly connections: number;
}

/** Every {@link DownloadFileEvent} of a file, wrapped with its key, and the set's own events. */
export type DownloadFilesEvent =
  /** An event of one file's {@link downloadFile}. */
  | { readonly type: 'file'; readonly key: string; readonly event: DownloadFileEvent }
  /** A file whose target is already complete (no partial download beside it): not downloaded again. */
  | { readonly type: 'file-skipped'; readonly key: string; readonly target: string }
  /** A file is finished and in place. */
  | { readonly type: 'file-done'; readonly key: string; readonly result: DownloadFileResult }
  /** A file failed (its partial download, if any, is kept); the others go on. */
  | { readonly type: 'file-failed'; readonly key: string; readonly error: BlockfetchError }
  /** The set's totals, after each file event that changed them. */
  | ({ readonly type: 'set-progress' } & DownloadFilesProgress);

/** How one file of a set ended. */
export type DownloadFileOutcome =
  | { readonly key: string; readonly target: string; readonly outcome: 'done'; readonly result: DownloadFileResult }
  | { readonly key: string; readonly target: string; readonly outcome: 'skipped' }
  | { readonly key: string; readonly target: string; readonly outcome: 'failed'; readonly error: BlockfetchError }
  /** The set was aborted before this file started. */
  | { readonly key: string; readonly target: string; readonly outcome: 'not-started' };

/** What {@link downloadFiles} did, file by file, in the order of the entries. */
export interface DownloadFilesResult {
  /** Every file's outcome, in the order of the entries. */
  readonly files: readonly DownloadFileOutcome[];
  /** True when every file is done or skipped. */
  readonly ok: boolean;
  /** Milliseconds the call took. */
  readonly durationMs: number;
}

const OWNER = 'downloadFiles';

/**
 * Downloads every entry to its target, `maxConcurrentFiles` at a time,
 * with at most `concurrency` requests open across the whole set. Resolves
 * when every file has ended; never rejects for one file's failure (it
 * rejects only for invalid arguments, before anything is downloaded: two
 * entries with the same target, a bad option).
 *
 * @example
 * ```ts
 * import { downloadFiles } from 'blockfetch';
 * const result = await downloadFiles(
 *   [
 *     { source: 'https://example.com/model-00001.safetensors', target: 'model/00001.safetensors' },
 *     { source: 'https://example.com/model-00002.safetensors', target: 'model/00002.safetensors',
 *       options: { expectedDigest: { algorithm: 'sha256', hex: '…' } } },
 *   ],
 *   { concurrency: 16, onEvent: (e) => { if (e.type === 'file-failed') console.error(e.key, e.error.code); } },
 * );
 * if (!result.ok) process.exitCode = 1; // run it again to resume what failed
 * ```
 */
export async function downloadFiles(entries: readonly DownloadEntry[], options: DownloadFilesOptions = {}): Promise<DownloadFilesResult> {
  const started = performance.now();
  const o = resolveOptions(options);
  const checked = checkEntries(entries, o);
  const set = new SetState(checked.length, o.onEvent);
  const budget = new ConnectionBudget(o.concurrency);
  // One limiter for the set: each file's share is what the others leave.
  const shared: SharedLimits = {
    budget,
    rateLimiter: o.bytesPerSecond === undefined ? undefined : new RateLimiter({ bytesPerSecond: o.bytesPerSecond }),
  };
  const outcomes: (DownloadFileOutcome | undefined)[] = new Array<DownloadFileOutcome | undefined>(checked.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < checked.length) {
      const index = next++;
      const entry = checked[index] as CheckedEntry;
      outcomes[index] = o.signal?.aborted === true ? { key: entry.key, target: entry.target, outcome: 'not-started' } : await runOne(entry, o, shared, set);
    }
  };
  const workers = Math.min(o.maxConcurrentFiles, o.concurrency, checked.length);
  await Promise.all(Array.from({ length: workers }, worker));
  const files = outcomes.map((outcome, i) => outcome ?? { key: (checked[i] as CheckedEntry).key, target: (checked[i] as CheckedEntry).target, outcome: 'not-started' as const });
  return {
    files,
    ok: files.every((f) => f.outcome === 'done' || f.outcome === 'skipped'),
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Whether `target` is a finished download: a regular file with no partial
 * download beside it (an index alone is what a run killed right after its
 * final rename leaves; it is tidied away).
 *
 * @example
 * ```ts
 * if (await isFinishedDownload('big.iso')) console.log('nothing to do');
 * ```
 */
export async function isFinishedDownload(target: string): Promise<boolean> {
  return (await finishedFileStat(target)) !== undefined;
}

type ResolvedOptions = Omit<DownloadFilesOptions, 'concurrency' | 'maxConcurrentFiles'> & {
  readonly concurrency: number;
  readonly maxConcurrentFiles: number;
};

interface CheckedEntry {
  readonly source: string | Reader;
  readonly target: string;
  readonly key: string;
  readonly options: DownloadEntryOptions;
}

function resolveOptions(options: DownloadFilesOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`${OWNER} options must be an object, got ${describeValue(options)}`);
  }
  const o = { ...defaultDownloadFilesOptions, ...definedFields(options) };
  wholeNumber(OWNER, 'concurrency', o.concurrency, { min: 1, max: 1024 });
  wholeNumber(OWNER, 'maxConcurrentFiles', o.maxConcurrentFiles, { min: 1, max: 1024 });
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') {
    throw new InvalidArgumentError(`${OWNER} option onEvent must be a function, got ${describeValue(o.onEvent)}`);
  }
  return o;
}

/** Checks the whole set before anything is downloaded: shapes, and no two entries writing the same file. */
function checkEntries(entries: readonly DownloadEntry[], o: ResolvedOptions): CheckedEntry[] {
  if (!Array.isArray(entries)) throw new InvalidArgumentError(`${OWNER} entries must be an array, got ${describeValue(entries)}`);
  if (o.expectedDigest !== undefined && entries.length > 1) {
    throw new InvalidArgumentError(`${OWNER} option expectedDigest names one file's digest, but the set has ${entries.length} entries`, {
      hint: "give each entry its own digest (the entry's options.expectedDigest)",
    });
  }
  const byPath = new Map<string, string>();
  const keys = new Set<string>();
  return entries.map((entry: DownloadEntry, i) => {
    if (typeof entry !== 'object' || entry === null) throw new InvalidArgumentError(`${OWNER} entry ${i} must be an object, got ${describeValue(entry)}`);
    if (typeof entry.target !== 'string' || entry.target === '') {
      throw new InvalidArgumentError(`${OWNER} entry ${i} needs a target path, got ${describeValue(entry.target)}`);
    }
    if (typeof entry.source !== 'string' && (typeof entry.source !== 'object' || entry.source === null)) {
      throw new InvalidArgumentError(`${OWNER} entry ${i} source must be a URL or a Reader, got ${describeValue(entry.source)}`);
    }
    const key = entry.key ?? entry.target;
    const absolute = downloadPaths(entry.target).target;
    // Checked here too, not only by downloadFile: a set is refused whole
    // before anything runs. Every part of the path counts: a folder named
    // like a partial file (`a.blockfetch/x`) would block another entry's.
    if (entry.target.split(sep).some((part) => isOwnFileName(part))) {
      throw new InvalidArgumentError(`${OWNER}: entry ${JSON.stringify(key)} would be saved as ${absolute}, a name blockfetch gives its own files beside another download`, {
        hint: `give it a name that does not end in ${PARTIAL_SUFFIX} or ${PARTIAL_SUFFIX}.*`,
      });
    }
    const first = byPath.get(absolute);
    if (first !== undefined) {
      throw new InvalidArgumentError(`${OWNER}: entries ${JSON.stringify(first)} and ${JSON.stringify(key)} would both be saved as ${absolute}`, {
        hint: 'give each entry its own target',
      });
    }
    byPath.set(absolute, key);
    if (keys.has(key)) throw new InvalidArgumentError(`${OWNER}: two entries have the key ${JSON.stringify(key)}`, { hint: 'give each entry its own key' });
    keys.add(key);
    return { source: entry.source, target: entry.target, key, options: entry.options ?? {} };
  });
}

/** One file: skipped when finished, else downloaded; never rejects. */
/** What the files of a set share: the connection budget, and the rate limit when there is one. */
interface SharedLimits {
  readonly budget: ConnectionBudget;
  readonly rateLimiter: RateLimiter | undefined;
}

async function runOne(entry: CheckedEntry, o: ResolvedOptions, shared: SharedLimits, set: SetState): Promise<DownloadFileOutcome> {
  const { key, target } = entry;
  const overwrite = entry.options.overwrite ?? o.overwrite ?? false;
  try {
    if (!overwrite && (await isFinishedDownload(target))) {
      await checkFinishedFile(entry, o);
      await tidyFinishedDownload(target);
      set.skipped(key, target, (await lstat(target)).size);
      return { key, target, outcome: 'skipped' };
    }
    set.starting(key);
    const result = await downloadFile(entry.source, target, fileOptions(entry, o, shared, (event) => set.fileEvent(key, event)));
    set.done(key, result);
    return { key, target, outcome: 'done', result };
  } catch (err) {
    const error = asBlockfetchError(err, o.signal);
    set.failed(key, error);
    return { key, target, outcome: 'failed', error };
  }
}

/**
 * A finished file is skipped only if it has every digest known for it (the
 * entry's and the set's): a file of the same name that is another file, or
 * went bad on disk, is a mismatch, not "already complete". It is left as
 * it is (the caller's file, never deleted here).
 */
async function checkFinishedFile(entry: CheckedEntry, o: ResolvedOptions): Promise<void> {
  const expected = combineExpectedDigests(
    OWNER,
    entry.options.expectedDigest ?? o.expectedDigest,
    entry.options.expectedDigests,
  );
  if (expected.length === 0) return;
  let checks: DigestCheck[];
  try {
    checks = await checkDigests(entry.target, expected, o.signal);
  } catch (err) {
    if (o.signal?.aborted === true) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new BlockfetchError('BLOCKFETCH_DISK_READ', `cannot read ${entry.target} to check it against its digest: ${code}`, {
      hint: 'check the file\'s permissions and the disk; or delete it to download it again',
      cause: err,
    });
  }
  const bad = checks.find((c) => !c.ok);
  if (bad !== undefined) {
    throw new DigestMismatchError(bad.algorithm, bad.expected, bad.hex, {
      hint: `${entry.target} exists but is not the file that digest describes: delete it, or download it again over it (option \`overwrite\`)`,
    });
  }
}

/** The {@link downloadFile} options of one entry: the set's, then the entry's own over them. */
function fileOptions(entry: CheckedEntry, o: ResolvedOptions, limits: SharedLimits, onEvent: (event: DownloadFileEvent) => void): DownloadFileOptions {
  const { concurrency, maxConcurrentFiles: _files, onEvent: _setListener, bytesPerSecond: _rate, ...shared } = o;
  const readerGiven = typeof entry.source !== 'string' || entry.options.createReader !== undefined || shared.createReader !== undefined;
  // HTTP knobs mean nothing to a Reader of the entry's own (downloadFile refuses them there).
  const forReader = readerGiven ? { ...shared, headers: undefined, timeoutMs: undefined, dispatcher: undefined } : shared;
  return definedFields({
    ...forReader,
    ...definedFields(entry.options),
    concurrency,
    connectionBudget: limits.budget,
    rateLimiter: limits.rateLimiter,
    onEvent,
  }) as DownloadFileOptions;
}

function asBlockfetchError(err: unknown, signal: AbortSignal | undefined): BlockfetchError {
  if (err instanceof BlockfetchError) return err;
  if (signal?.aborted === true) return new AbortedError('the download was aborted', { cause: signal.reason });
  return new BlockfetchError('BLOCKFETCH_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}

/** The set's totals, kept up to date from the files' events, and the events to the caller. */
class SetState {
  readonly #files: number;
  readonly #listener: ((event: DownloadFilesEvent) => void) | undefined;
  #done = 0;
  #skipped = 0;
  #failed = 0;
  /** Bytes of files no longer running (done or skipped). */
  #settledBytes = 0;
  #settledThisRun = 0;
  /** The last stats of each running file. */
  readonly #running = new Map<string, { doneBytes: number; size: number; downloadedBytes: number; inFlight: number }>();

  constructor(files: number, listener: ((event: DownloadFilesEvent) => void) | undefined) {
    this.#files = files;
    this.#listener = listener;
  }

  starting(key: string): void {
    this.#running.set(key, { doneBytes: 0, size: 0, downloadedBytes: 0, inFlight: 0 });
  }

  fileEvent(key: string, event: DownloadFileEvent): void {
    this.#emit({ type: 'file', key, event });
    const state = this.#running.get(key);
    if (state === undefined) return;
    if (event.type === 'open') {
      Object.assign(state, { doneBytes: event.resumedBytes, size: event.size, downloadedBytes: 0, inFlight: 0 });
    } else if (event.type === 'progress' || event.type === 'start' || event.type === 'retry') {
      Object.assign(state, { doneBytes: event.stats.doneBytes, size: event.stats.size, downloadedBytes: event.stats.downloadedBytes, inFlight: event.stats.inFlight });
    } else if (event.type === 'done' || event.type === 'finish') {
      // Its requests are over: the connections it last reported are not its any more.
      state.inFlight = 0;
    } else {
      return;
    }
    this.#progress();
  }

  skipped(key: string, target: string, size: number): void {
    this.#skipped++;
    this.#settledBytes += size;
    this.#emit({ type: 'file-skipped', key, target });
    this.#progress();
  }

  done(key: string, result: DownloadFileResult): void {
    this.#running.delete(key);
    this.#done++;
    this.#settledBytes += result.size;
    this.#settledThisRun += result.stats.downloadedBytes;
    this.#emit({ type: 'file-done', key, result });
    this.#progress();
  }

  failed(key: string, error: BlockfetchError): void {
    const state = this.#running.get(key);
    this.#running.delete(key);
    this.#failed++;
    // What a failed file fetched is still on disk (its partial) and was fetched by this run.
    if (state !== undefined) this.#settledThisRun += state.downloadedBytes;
    this.#emit({ type: 'file-failed', key, error });
    this.#progress();
  }

  #progress(): void {
    let doneBytes = this.#settledBytes;
    let knownBytes = this.#settledBytes;
    let bytesThisRun = this.#settledThisRun;
    let connections = 0;
    for (const state of this.#running.values()) {
      doneBytes += state.doneBytes;
      knownBytes += state.size;
      bytesThisRun += state.downloadedBytes;
      connections += state.inFlight;
    }
    this.#emit({
      type: 'set-progress',
      files: this.#files,
      done: this.#done,
      skipped: this.#skipped,
      failed: this.#failed,
      active: this.#running.size,
      doneBytes,
      knownBytes,
      bytesThisRun,
      connections,
    });
  }

  #emit(event: DownloadFilesEvent): void {
    try {
      this.#listener?.(event);
    } catch {
      // A listener must not break the downloads (as downloadFile's onEvent).
    }
  }
}
