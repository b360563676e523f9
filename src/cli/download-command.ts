/**
 * `blockfetch <url> [-o FILE]`: the download command, a thin layer over
 * {@link downloadFile}: it chooses the file name, turns the download's
 * events into progress for the chosen view, and reports the outcome.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import { HttpReader } from '../http/http-reader.js';
import { downloadFile, downloadPaths, lookAtRemote, type DownloadFileEvent, type LookRetry } from '../download-file.js';
import { redactUrl } from '../errors.js';
import { headerRecord, type DownloadCommand } from './args.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { chooseFilename } from './filename.js';
import { Interrupted, StdoutClosed, type CliIo } from './io.js';
import { JsonView, SnapshotMaker, createProgressView, type ProgressSnapshot, type ProgressView } from './progress.js';
import { debugFromEnvironment, describeFailure, formatFailure, writeJsonError } from './report.js';
import { contentDispositionOf, createHeaderCapturingDispatcher } from './response-headers.js';
import { resumeCommand } from './resume-command.js';
import { runStream } from './stream-command.js';
import { formatBytes } from './units.js';

/**
 * `blockfetch <url>`: downloads to a file through {@link downloadFile} (or
 * streams to stdout), showing progress, and maps the outcome to an exit code.
 */
export async function runDownload(command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  // With --stdout the data owns stdout, so everything else goes to stderr.
  const jsonStream = command.toStdout ? io.stderr : io.stdout;
  const view: ProgressView = command.outputMode === 'json' ? new JsonView(jsonStream) : createProgressView(command.outputMode, io.stderr);
  const capture = createHeaderCapturingDispatcher();
  let target: string | undefined = command.output;
  let presenter: EventPresenter | undefined;
  try {
    if (command.toStdout) return await runStream(command, io, view, capture.dispatcher);
    // `-o DIR/` (or an existing directory): the server's name, in that directory.
    if (target === undefined || (await isDirectory(target))) {
      const name = await nameFromServer(command, capture, io.signal, (retry) => showLookRetry(view, retry));
      target = target === undefined ? name : join(target, name);
    }
    presenter = new EventPresenter(view, command);
    const result = await downloadFile(command.url, target, {
      concurrency: command.concurrency,
      ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
      ...(command.requestSize === undefined ? {} : { maxRequestBytes: command.requestSize }),
      ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
      ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
      headers: headerRecord(command.headers),
      restart: command.restart,
      overwrite: command.force,
      retry: { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs },
      timeoutMs: command.timeoutMs,
      signal: io.signal,
      dispatcher: capture.dispatcher,
      onEvent: presenter.handle,
    });
    view.done({
      target: result.target,
      totalBytes: result.size,
      bytesThisRun: result.stats.downloadedBytes,
      elapsedMs: result.durationMs,
      digest: result.digest?.verified === true ? { algorithm: result.digest.algorithm, hex: result.digest.hex } : undefined,
    });
    return ExitCode.SUCCESS;
  } catch (err) {
    view.stop(presenter?.last);
    return reportDownloadFailure(err, command, target, io);
  } finally {
    await capture.dispatcher.close().catch(() => undefined);
  }
}

/** Shows the events of one {@link downloadFile} call on a progress view. */
class EventPresenter {
  readonly #view: ProgressView;
  readonly #command: DownloadCommand;
  #snapshots = new SnapshotMaker();
  /** The last progress shown, for the view's final state on failure. */
  last: ProgressSnapshot | undefined;

  constructor(view: ProgressView, command: DownloadCommand) {
    this.#view = view;
    this.#command = command;
  }

  /** The `onEvent` listener (an arrow, so it can be passed as is). */
  readonly handle = (event: DownloadFileEvent): void => {
    switch (event.type) {
      case 'open':
        // A new run (the first, or one after a restart): its clock and counts start at 0.
        this.#snapshots = new SnapshotMaker();
        this.#view.start({
          url: redactUrl(this.#command.url),
          target: event.paths.target,
          totalBytes: event.size,
          blockSize: event.blockSize,
          concurrency: this.#command.concurrency,
          resumedBytes: event.resumedBytes,
        });
        if (event.resumedBytes > 0) {
          this.#view.note(`resuming: ${formatBytes(event.resumedBytes)} of ${formatBytes(event.size)} already on disk`);
        }
        break;
      case 'lock-wait':
        this.#view.note(
          `waiting up to ${Math.round(event.waitMs / 1000)} s for another blockfetch on ${event.paths.target} (the lock of a killed one expires within 5 s)`,
        );
        break;
      case 'look-retry':
        showLookRetry(this.#view, event);
        break;
      case 'discard':
        this.#view.note(`discarded the partial download (${event.reason.message}); starting over`);
        break;
      case 'start':
        if (!event.info.rangesSupported) {
          this.#view.note('note: the server does not serve byte ranges: one connection, and a resumed download is fetched from its start again');
        } else if (!event.info.pinned) {
          this.#view.note('note: the server sends no ETag or Last-Modified: only a change of size can be detected between requests');
        }
        this.last = this.#snapshots.make(event.stats);
        this.#view.update(this.last);
        break;
      case 'progress':
        this.last = this.#snapshots.make(event.stats);
        this.#view.update(this.last);
        break;
      case 'retry':
        this.last = this.#snapshots.make(event.stats);
        this.#view.retry(
          {
            from: event.range.from,
            to: event.range.to,
            attempt: event.attempt,
            delayMs: event.delayMs,
            reason: event.error.message,
            code: event.error.code,
          },
          this.last,
        );
        break;
      default:
        break;
    }
  };
}

/**
 * The local name when `-o` was not given: the server's Content-Disposition
 * (sanitized) or the URL's last segment. The server is asked with a 1-byte
 * ranged GET through the capturing dispatcher, which the download then
 * reuses (same connection).
 */
async function nameFromServer(
  command: DownloadCommand,
  capture: ReturnType<typeof createHeaderCapturingDispatcher>,
  signal: AbortSignal,
  onRetry: (retry: LookRetry) => void,
): Promise<string> {
  const probe = new HttpReader({
    url: command.url,
    blockSize: 1,
    headers: headerRecord(command.headers),
    requestTimeoutMs: command.timeoutMs,
    idleTimeoutMs: command.timeoutMs,
    dispatcher: capture.dispatcher,
  });
  try {
    await lookAtRemote(probe, { signal, retry: { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs }, onRetry });
  } finally {
    await probe.close().catch(() => undefined);
  }
  return chooseFilename(command.url, contentDispositionOf(capture.firstSuccessHeaders()));
}

/** Prints why a download stopped (and, when it can be resumed, how) and returns the exit code. */
function reportDownloadFailure(err: unknown, command: DownloadCommand, target: string | undefined, io: CliIo): ExitCodeValue {
  // `--stdout | head`: the reader has what it wanted; say nothing, like SIGPIPE.
  if (io.signal.aborted && io.signal.reason instanceof StdoutClosed) return ExitCode.STDOUT_CLOSED;
  const interrupted = io.signal.aborted && io.signal.reason instanceof Interrupted ? io.signal.reason : undefined;
  const resume = resumeCommand(io.argv, command, target);
  if (interrupted !== undefined) {
    const code = interrupted.signalName === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
    if (command.outputMode === 'json') {
      const stream = command.toStdout ? io.stderr : io.stdout;
      stream.write(`${JSON.stringify({ type: 'interrupted', signal: interrupted.signalName, exitCode: code, resume })}\n`);
    }
    if (command.toStdout) {
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName}; a stream to stdout cannot be resumed\n`);
    } else if (target !== undefined) {
      const paths = downloadPaths(target);
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName}; progress saved in ${paths.partial}\n`);
      io.stderr.write(`resume with: ${resume}\n`);
    } else {
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName} before the download started\n`);
    }
    return code;
  }
  const report = describeFailure(err);
  if (command.outputMode === 'json') writeJsonError(command.toStdout ? io.stderr : io.stdout, err, report.exitCode === ExitCode.NETWORK ? resume : undefined);
  io.stderr.write(formatFailure(err, command.debug || debugFromEnvironment));
  if (report.exitCode === ExitCode.NETWORK && !command.toStdout && target !== undefined) {
    io.stderr.write(`resume with: ${resume}\n`);
  }
  return report.exitCode;
}


async function isDirectory(path: string): Promise<boolean> {
  if (path.endsWith('/')) return true;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** A retry of the first request, shown like a block's (a range of -1 means "the first look"). */
function showLookRetry(view: ProgressView, retry: LookRetry): void {
  const snapshot: ProgressSnapshot = {
    bytesDone: 0,
    totalBytes: 0,
    bytesThisRun: 0,
    elapsedMs: 0,
    bytesPerSecond: 0,
    activeConnections: 0,
    retries: retry.attempt,
  };
  view.retry(
    { from: -1, to: -1, attempt: retry.attempt, delayMs: retry.delayMs, reason: retry.error.message, code: retry.error.code },
    snapshot,
  );
}
