/**
 * blockfetch: resumable, parallel, revision-pinned downloads of very large files.
 *
 * This is the whole public API, and every name here is a semver promise:
 * `downloadFile` for the common case; the two downloaders, the `Reader`
 * contract with its two readers and the cache for composing your own; the
 * block bitmap; the errors with their stable codes; and each entry point's
 * options type with its one `default…Options` object. Everything else under
 * `src/` is internal and may change in any release
 * (`test/public-api.test.ts` pins this list).
 *
 * @example
 * ```ts
 * import { downloadFile, hasCode } from 'blockfetch';
 * try {
 *   await downloadFile('https://example.com/big.iso', 'big.iso', { concurrency: 8 });
 * } catch (err) {
 *   if (hasCode(err, 'BLOCKFETCH_REMOTE_CHANGED')) console.error('the file changed; pass restart: true to start over');
 *   else throw err;
 * }
 * ```
 * @module
 */

// downloading a URL (or any Reader) to a file: what the blockfetch command uses
export { downloadFile, downloadPaths, defaultDownloadFileOptions } from './download-file.js';
export type {
  DownloadFileOptions,
  DownloadFileEvent,
  DownloadFileResult,
  DownloadPaths,
  DownloadSource,
  LookRetry,
} from './download-file.js';

// a set of files in one call: one connection budget, a few files at a time, resumed by running it again
export { downloadFiles, defaultDownloadFilesOptions } from './download-files.js';
export type {
  DownloadEntry,
  DownloadEntryOptions,
  DownloadFilesOptions,
  DownloadFilesEvent,
  DownloadFilesProgress,
  DownloadFileOutcome,
  DownloadFilesResult,
} from './download-files.js';
export { ConnectionBudget } from './download/connection-budget.js';
export type { ReleaseSlot } from './download/connection-budget.js';

// errors: one base class with a stable code; subclasses where a caller acts differently
export {
  BlockfetchError,
  InvalidArgumentError,
  NotEnoughSpaceError,
  IndexError,
  LockHeldError,
  RemoteChangedError,
  HttpStatusError,
  RetriesExhaustedError,
  DigestMismatchError,
  AbortedError,
  ERROR_CODES,
  hasCode,
  redactUrl,
} from './errors.js';
export type { ErrorCode, ErrorCodeInfo, RetryResponse, RemoteChange, BlockfetchErrorOptions } from './errors.js';

// ranges: the block bitmap
export { ByteRanges } from './ranges/byte-ranges.js';
export { ByteRangesTracker } from './ranges/byte-ranges-tracker.js';
export type { ByteRange } from './ranges/byte-range.js';
export type { BlockBitmap } from './ranges/block-bitmap.js';

// cache: a preallocated data file and its JSON index, under one lock
export { LocalDownloadCache, defaultLocalDownloadCacheOptions } from './cache/local-download-cache.js';
export type { LocalDownloadCacheOptions, OpenLocalDownloadCacheOptions } from './cache/local-download-cache.js';
export type { FlushPolicy } from './cache/flush-scheduler.js';
export { CacheLock } from './cache/lock.js';
export type { CacheLockOptions, CacheLockBackend } from './cache/lock.js';
export type { DownloadCache, RemoteIdentity, ExpectedDigest, DigestAlgorithm } from './cache/types.js';

// download: the Reader contract, the two downloaders, retry timing, rate limits
export type { Reader, ContentInfo, ReadOptions } from './download/reader.js';
export { FileReader, defaultFileReaderOptions } from './download/file-reader.js';
export type { FileReaderOptions } from './download/file-reader.js';
export { CachingDownloader } from './download/caching-downloader.js';
export { defaultCachingDownloaderOptions } from './download/caching-options.js';
export type { CachingDownloaderOptions, DownloadStatus, DownloadEvent, EventError } from './download/caching-options.js';
export { StreamingDownloader } from './download/streaming-downloader.js';
export type { PipeToOptions } from './download/streaming-downloader.js';
export { defaultStreamingOptions } from './download/streaming-options.js';
export type { StreamingDownloaderOptions, StreamingStatus, StreamingEvent } from './download/streaming-options.js';
export { backoffDelay, defaultRetryOptions } from './download/backoff.js';
export type { RetryOptions } from './download/backoff.js';
export { RateLimiter } from './download/rate-limiter.js';
export type { RateLimiterOptions, RateClock } from './download/rate-limiter.js';
export type { DigestResult } from './download/digest.js';
export type { DownloadStats } from './download/stats.js';
export type { TailStreamOptions } from './download/tail-stream.js';

// http: revision-pinned ranged GETs over undici
export { HttpReader } from './http/http-reader.js';
export { defaultHttpReaderOptions } from './http/options.js';
export type { HttpReaderOptions } from './http/options.js';
export { BLOCKFETCH_VERSION } from './http/version.js';

// mirrors: one file from several URLs, each pinned by its own validator
export { MirrorReader } from './mirrors/mirror-reader.js';
export type { MirrorStats } from './mirrors/mirror-reader.js';
export { defaultMirrorReaderOptions } from './mirrors/options.js';
export type { MirrorReaderOptions, MirrorEvent } from './mirrors/options.js';
export { readerForUrls } from './mirrors/reader-for-urls.js';
export type { ReaderForUrlsOptions } from './mirrors/reader-for-urls.js';
export type { MirrorIdentity } from './cache/types.js';

// hf: Hugging Face Hub repositories (hf://), pinned to one commit
export { planHfDownload } from './hf/hf-download.js';
export type { HfPlan, HfPlanOptions, HfDownloadEntry, HfEntryOptions } from './hf/hf-download.js';
export type { HubTreeEntry } from './hf/hub-api.js';
export type { HfLocation, HubRepoType } from './hf/hf-url.js';
export type { HubSettings } from './hf/hub-settings.js';

// s3: s3:// objects, SigV4-signed and pinned to one ETag
export { S3Reader } from './s3/s3-reader.js';
export type { S3ReaderOptions } from './s3/s3-reader.js';
export { resolveS3Config } from './s3/config.js';
export type { S3Config, S3ConfigOptions, S3Credentials } from './s3/config.js';
export type { S3Endpoint } from './s3/url.js';
