/**
 * blockfetch: resumable, parallel, revision-pinned downloads of very large files.
 *
 * Exports by name, layer by layer: ranges → cache → download → http.
 * (Each layer's helper adds its own exports in its section below.)
 */

// errors
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
  redactUrl,
  retryResponseOf,
  hasCode,
} from './errors.js';
export type { ErrorCode, RetryResponse, RemoteChange, BlockfetchErrorOptions } from './errors.js';

// ranges
export { NO_RANGE, rangeLength, validateSizes, numBlocks, rangeForIndex, ranges } from './ranges/byte-range.js';
export type { ByteRange } from './ranges/byte-range.js';
export { ByteRanges } from './ranges/byte-ranges.js';
export { ByteRangesTracker } from './ranges/byte-ranges-tracker.js';
export type { BlockBitmap } from './ranges/block-bitmap.js';

// cache
export type { DownloadCache, RemoteIdentity, ExpectedDigest, DigestAlgorithm } from './cache/types.js';
export { reserveSpace, checkFreeSpace, defaultReserveSpaceOptions } from './cache/reserve-space.js';
export type { ReserveSpaceOptions, ReserveSpaceResult, ReserveMethod } from './cache/reserve-space.js';
export { NodeCacheFile, nodeFileSystem } from './cache/file.js';
export type { CacheFileReadWriter, CacheFileSystem } from './cache/file.js';
export { INDEX_FORMAT, INDEX_VERSION, MAX_INDEX_BYTES, encodeIndex, decodeIndex, canonicalJson, rangesFromIndex, indexFromRanges } from './cache/index-format.js';
export type { IndexContents } from './cache/index-format.js';
export { IndexFile } from './cache/index-file.js';
export { CacheLock, defaultCacheLockOptions } from './cache/lock.js';
export type { CacheLockOptions } from './cache/lock.js';
export { createNewFilesForCache, cacheFilesExist, openCacheFiles } from './cache/cache-files.js';
export type { CreateCacheFilesOptions, CacheFilesPresence, OpenedCacheFiles } from './cache/cache-files.js';
export { LocalDownloadCache, defaultLocalDownloadCacheOptions } from './cache/local-download-cache.js';
export type { LocalDownloadCacheOptions, OpenLocalDownloadCacheOptions } from './cache/local-download-cache.js';
export { FlushScheduler, defaultFlushPolicy } from './cache/flush-scheduler.js';
export type { FlushPolicy, FlushFunction } from './cache/flush-scheduler.js';

// download
export type { Reader, ContentInfo } from './download/reader.js';
export { backoffDelay, RetryBudget, sleep, defaultRetryOptions, resolveRetryOptions } from './download/backoff.js';
export type { RetryOptions, RetryDecision } from './download/backoff.js';
export { StreamingDownloader, defaultStreamingOptions } from './download/streaming-downloader.js';
export type { StreamingDownloaderOptions, StreamingStatus, StreamingEvent } from './download/streaming-downloader.js';
export { ReorderBuffer } from './download/reorder-buffer.js';
export { CachingDownloader } from './download/caching-downloader.js';
export { defaultCachingDownloaderOptions, resolveCachingOptions } from './download/caching-options.js';
export type { CachingDownloaderOptions, DownloadStatus, DownloadEvent, EventError } from './download/caching-options.js';
export { FileReader, defaultFileReaderOptions } from './download/file-reader.js';
export type { FileReaderOptions } from './download/file-reader.js';
export { compareIdentity } from './download/identity.js';
export { RateLimiter, systemClock } from './download/rate-limiter.js';
export type { RateLimiterOptions, RateClock } from './download/rate-limiter.js';
export {
  InOrderDigest,
  checkDigest,
  chooseDigest,
  defaultDigestAlgorithm,
  expectedDigestFromBase64,
  isDigestAlgorithm,
  normalizeExpectedDigest,
  parseExpectedDigest,
} from './download/digest.js';
export type { DigestResult } from './download/digest.js';
export { StatsRecorder } from './download/stats.js';
export type { DownloadStats, StatsStart } from './download/stats.js';
export { EventReporter } from './download/events.js';
export type { EventListener } from './download/events.js';
export { defaultTailStreamOptions } from './download/tail-stream.js';
export type { TailStreamOptions } from './download/tail-stream.js';

// http
export { HttpReader } from './http/http-reader.js';
export { defaultHttpReaderOptions } from './http/options.js';
export type { HttpReaderOptions } from './http/options.js';
export { createDefaultDispatcher, defaultAgentOptions } from './http/dispatcher.js';
export { digestFromHeaders, parseReprDigest, parseLegacyDigest } from './http/digest-headers.js';
export { followRedirect, DEFAULT_SENSITIVE_HEADERS, REDIRECT_STATUSES } from './http/redirect.js';
export type { RedirectTarget } from './http/redirect.js';
export { RETRYABLE_STATUSES } from './http/failures.js';
export { parseContentRange, parseRetryAfter } from './http/headers.js';
export type { ContentRange } from './http/headers.js';
export { pinHeaders, pinKind } from './http/identity.js';
export type { PinKind } from './http/identity.js';
export { BLOCKFETCH_VERSION, DEFAULT_USER_AGENT } from './http/version.js';

// downloading a URL to a file (what the blockfetch command uses)
export {
  downloadFile,
  lookAtRemote,
  downloadPaths,
  pathsFromAnyName,
  defaultDownloadFileOptions,
  PARTIAL_SUFFIX,
  INDEX_SUFFIX,
} from './download-file.js';
export type { DownloadFileOptions, DownloadFileEvent, DownloadFileResult, DownloadPaths, LookRetry } from './download-file.js';
