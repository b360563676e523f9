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

// download
export type { Reader, ContentInfo } from './download/reader.js';
export { backoffDelay, RetryBudget, sleep, defaultRetryOptions, resolveRetryOptions } from './download/backoff.js';
export type { RetryOptions, RetryDecision } from './download/backoff.js';

// http
