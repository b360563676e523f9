/**
 * `blockfetch <url> --stdout`: parallel ranged reads emitted strictly in
 * order to stdout through the {@link StreamingDownloader}; progress goes to
 * the view (on stderr). Nothing is written to disk, so nothing resumes.
 */
import type { Dispatcher } from 'undici';

import { HttpReader } from '../http/http-reader.js';
import { StreamingDownloader } from '../download/streaming-downloader.js';
import type { StreamingEvent, StreamingStatus } from '../download/streaming-options.js';
import { RateLimiter } from '../download/rate-limiter.js';
import { redactUrl } from '../errors.js';
import { DEFAULT_MAX_REQUEST_BYTES, DEFAULT_STREAM_BUFFER_BYTES } from '../defaults.js';
import { headerRecord, type DownloadCommand } from './args.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import type { CliIo } from './io.js';
import { SnapshotMaker, type ProgressView } from './progress.js';
import { retryOptionsOf } from './download-command.js';

/** `--stdout`: parallel ranged reads emitted in order to stdout; no files, no resume. */
export async function runStream(
  command: DownloadCommand,
  io: CliIo,
  view: ProgressView,
  dispatcher: Dispatcher,
): Promise<ExitCodeValue> {
  // Nothing is resumed from a stream, so its unit is the request: each block
  // is one request (--block-size, then --request-size, win when given).
  const streamBlockSize = command.blockSize ?? command.requestSize ?? streamBlockSizeFor(command.concurrency);
  const reader = new HttpReader({
    url: command.url,
    headers: headerRecord(command.headers),
    requestTimeoutMs: command.timeoutMs,
    idleTimeoutMs: command.timeoutMs,
    dispatcher,
    blockSize: streamBlockSize,
  });
  const snapshots = new SnapshotMaker();
  let started = false;
  let retries = 0;
  // Driven by the downloader's events (start, then progress at most every
  // 250 ms), not by polling its status.
  const show = (status: StreamingStatus): void => {
    if (!started) {
      started = true;
      view.start({
        url: redactUrl(command.url),
        target: '-',
        totalBytes: status.size,
        blockSize: status.blockSize,
        concurrency: status.concurrency,
        resumedBytes: 0,
      });
    }
    const snapshot = snapshots.make(status);
    if (status.retries > retries) {
      retries = status.retries;
      view.note(`retrying (${retries} so far)`);
    }
    view.update(snapshot);
  };
  const onEvent = (event: StreamingEvent): void => {
    if (event.type === 'start' || event.type === 'progress') show(event.stats);
  };
  const downloader = new StreamingDownloader(reader, {
    concurrency: command.concurrency,
    retry: retryOptionsOf(command),
    blockSize: streamBlockSize,
    ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
    ...(command.rateBytesPerSecond === undefined ? {} : { rateLimiter: new RateLimiter({ bytesPerSecond: command.rateBytesPerSecond }) }),
    onEvent,
  });
  try {
    // stdout (a file, pipe, socket or terminal) is done with each chunk once
    // its write callback ran: the stream may reuse its buffers.
    const status = await downloader.pipeTo(io.stdout, { signal: io.signal, reuseBuffers: true });
    show(status);
    view.done({
      target: '-',
      totalBytes: status.size,
      bytesThisRun: status.downloadedBytes,
      elapsedMs: status.durationMs,
      digest: status.digest?.verified === true ? { algorithm: status.digest.algorithm, hex: status.digest.hex } : undefined,
    });
    return ExitCode.SUCCESS;
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/**
 * The block (and request) size of a stream at `concurrency`: the largest
 * power of two, from 256 KiB to 16 MiB, whose reorder window (2 ×
 * concurrency blocks) fits in {@link DEFAULT_STREAM_BUFFER_BYTES}, so what
 * a slow consumer makes the stream hold stays bounded: 2 MiB at 8
 * connections, 1 MiB at 16.
 *
 * @example
 * ```ts
 * streamBlockSizeFor(8)  // 2097152
 * streamBlockSizeFor(16) // 1048576
 * ```
 */
export function streamBlockSizeFor(concurrency: number): number {
  let size = DEFAULT_MAX_REQUEST_BYTES;
  while (size > 256 * 1024 && 2 * concurrency * size > DEFAULT_STREAM_BUFFER_BYTES) size /= 2;
  return size;
}
