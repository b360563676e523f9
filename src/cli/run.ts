/**
 * The `blockfetch` command: parses the command line, runs one command and
 * returns its exit code. `main.ts` only calls {@link runCli} with the
 * process's streams; tests and the demo can call it with their own.
 *
 * Every failure ends here as one `blockfetch: ...` line and a `hint:` line
 * (see `report.ts`); the exit code comes from `exit-codes.ts`.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import { HttpReader } from '../http/http-reader.js';
import { BLOCKFETCH_VERSION } from '../http/version.js';
import { StreamingDownloader } from '../download/streaming-downloader.js';
import { RateLimiter } from '../download/rate-limiter.js';
import type { DownloadStats } from '../download/stats.js';
import { downloadFile, downloadPaths, type DownloadFileEvent } from '../download-file.js';
import { AbortedError, redactUrl } from '../errors.js';
import { parseCommandLine, type DownloadCommand, type InspectCommand, type VerifyCommand } from './args.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { chooseFilename } from './filename.js';
import { helpText } from './help.js';
import { formatInspectReport, inspectDownload } from './inspect.js';
import { JsonView, SpeedMeter, createProgressView, type ProgressSnapshot, type ProgressView } from './progress.js';
import { debugFromEnvironment, describeFailure, formatFailure } from './report.js';
import { contentDispositionOf, createHeaderCapturingDispatcher } from './response-headers.js';
import { formatBytes } from './units.js';
import { verifyFile } from './verify.js';

/** Where the command reads its arguments and writes its output. */
export interface CliIo {
  /** The arguments after the program name. */
  readonly argv: readonly string[];
  /** Data (`--stdout`) and `--json` lines (unless streaming data). */
  readonly stdout: NodeJS.WriteStream;
  /** Progress, messages and errors. */
  readonly stderr: NodeJS.WriteStream;
  /**
   * Aborted when the user interrupts (SIGINT/SIGTERM); its `reason` is an
   * {@link Interrupted} naming the signal.
   */
  readonly signal: AbortSignal;
}

/** The abort reason `main.ts` uses for a signal, so the exit code can say which. */
export class Interrupted extends AbortedError {
  /** The signal that stopped the command. */
  readonly signalName: 'SIGINT' | 'SIGTERM';
  constructor(signalName: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signalName}`);
    this.signalName = signalName;
  }
}

/**
 * Runs the command line in `io.argv` and resolves to the exit code. Never
 * rejects: every failure is printed and mapped to its exit code.
 */
export async function runCli(io: CliIo): Promise<ExitCodeValue> {
  let debug = debugFromEnvironment || io.argv.includes('--debug');
  let json = false;
  try {
    const command = parseCommandLine(io.argv);
    switch (command.kind) {
      case 'help':
        io.stdout.write(helpText(command.topic));
        return ExitCode.SUCCESS;
      case 'version':
        io.stdout.write(`blockfetch ${BLOCKFETCH_VERSION}\n`);
        return ExitCode.SUCCESS;
      case 'inspect':
        json = command.json;
        debug ||= command.debug;
        return await runInspect(command, io);
      case 'verify':
        json = command.json;
        debug ||= command.debug;
        return await runVerify(command, io);
      case 'download':
        debug ||= command.debug;
        return await runDownload(command, io);
    }
  } catch (err) {
    // Errors before a download started (usage, inspect, verify).
    if (json) writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, debug));
    return describeFailure(err).exitCode;
  }
}

async function runInspect(command: InspectCommand, io: CliIo): Promise<ExitCodeValue> {
  const report = await inspectDownload(command.path);
  io.stdout.write(command.json ? `${JSON.stringify(report)}\n` : formatInspectReport(report));
  return ExitCode.SUCCESS;
}

async function runVerify(command: VerifyCommand, io: CliIo): Promise<ExitCodeValue> {
  const results = await verifyFile(command.path, command.digests, io.signal);
  if (command.json) {
    io.stdout.write(`${JSON.stringify({ type: 'verified', path: command.path, digests: results })}\n`);
  } else {
    for (const r of results) io.stdout.write(`${command.path}: ${r.algorithm} OK\n`);
  }
  return ExitCode.SUCCESS;
}

/** Turns the downloader's statistics into what the views show. */
class SnapshotMaker {
  readonly #meter = new SpeedMeter();
  make(stats: DownloadStats): ProgressSnapshot {
    return {
      bytesDone: stats.doneBytes,
      totalBytes: stats.size,
      bytesThisRun: stats.downloadedBytes,
      elapsedMs: stats.elapsedMs,
      // Received bytes, not completed blocks: with 16 MiB blocks, completed
      // blocks arrive in lumps and would make the speed jump about.
      bytesPerSecond: this.#meter.sample(stats.elapsedMs, stats.receivedBytes),
      activeConnections: stats.inFlight,
      retries: stats.retries,
    };
  }
}

async function runDownload(command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  // With --stdout the data owns stdout, so everything else goes to stderr.
  const jsonStream = command.toStdout ? io.stderr : io.stdout;
  const view: ProgressView = command.outputMode === 'json' ? new JsonView(jsonStream) : createProgressView(command.outputMode, io.stderr);
  const capture = createHeaderCapturingDispatcher();
  let target: string | undefined = command.output;
  let lastSnapshot: ProgressSnapshot | undefined;
  try {
    if (command.toStdout) return await runStream(command, io, view, capture.dispatcher);
    // `-o DIR/` (or an existing directory): the server's name, in that directory.
    if (target === undefined || (await isDirectory(target))) {
      const name = await nameFromServer(command, capture, io.signal);
      target = target === undefined ? name : join(target, name);
    }
    const snapshots = new SnapshotMaker();
    const onEvent = (event: DownloadFileEvent): void => {
      switch (event.type) {
        case 'open':
          view.start({
            url: redactUrl(command.url),
            target: event.paths.target,
            totalBytes: event.size,
            blockSize: event.blockSize,
            concurrency: command.concurrency,
            resumedBytes: event.resumedBytes,
          });
          if (event.resumedBytes > 0) {
            view.note(`resuming: ${formatBytes(event.resumedBytes)} of ${formatBytes(event.size)} already on disk`);
          }
          break;
        case 'lock-wait':
          view.note(
            `waiting up to ${Math.round(event.waitMs / 1000)} s for another blockfetch on ${event.paths.target} (the lock of a killed one expires within 5 s)`,
          );
          break;
        case 'discard':
          view.note(`discarded the partial download (${event.reason.message}); starting over`);
          break;
        case 'start':
          if (!event.info.rangesSupported) {
            view.note('note: the server does not serve byte ranges: one connection, and a resumed download is fetched from its start again');
          } else if (!event.info.pinned) {
            view.note('note: the server sends no ETag or Last-Modified: only a change of size can be detected between requests');
          }
          lastSnapshot = snapshots.make(event.stats);
          view.update(lastSnapshot);
          break;
        case 'progress':
          lastSnapshot = snapshots.make(event.stats);
          view.update(lastSnapshot);
          break;
        case 'retry':
          lastSnapshot = snapshots.make(event.stats);
          view.retry(
            {
              from: event.range.from,
              to: event.range.to,
              attempt: event.attempt,
              delayMs: event.delayMs,
              reason: event.error.message,
              code: event.error.code,
            },
            lastSnapshot,
          );
          break;
        default:
          break;
      }
    };
    const result = await downloadFile(command.url, target, {
      concurrency: command.concurrency,
      ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
      ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
      ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
      headers: headerRecord(command.headers),
      restart: command.restart,
      overwrite: command.force,
      retry: { attemptsPerBlock: command.retries + 1 },
      timeoutMs: command.timeoutMs,
      signal: io.signal,
      dispatcher: capture.dispatcher,
      onEvent,
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
    view.stop(lastSnapshot);
    return reportDownloadFailure(err, command, target, io);
  } finally {
    await capture.dispatcher.close().catch(() => undefined);
  }
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
    await probe.contentLengthAndBlockSize(signal);
  } finally {
    await probe.close().catch(() => undefined);
  }
  return chooseFilename(command.url, contentDispositionOf(capture.firstSuccessHeaders()));
}

/** `--stdout`: parallel ranged reads emitted in order to stdout; no files, no resume. */
async function runStream(
  command: DownloadCommand,
  io: CliIo,
  view: ProgressView,
  dispatcher: ReturnType<typeof createHeaderCapturingDispatcher>['dispatcher'],
): Promise<ExitCodeValue> {
  const reader = new HttpReader({
    url: command.url,
    headers: headerRecord(command.headers),
    requestTimeoutMs: command.timeoutMs,
    idleTimeoutMs: command.timeoutMs,
    dispatcher,
    ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
  });
  const downloader = new StreamingDownloader(reader, {
    concurrency: command.concurrency,
    retry: { attemptsPerBlock: command.retries + 1 },
    ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
    ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
    ...(command.rateBytesPerSecond === undefined ? {} : { rateLimiter: new RateLimiter({ bytesPerSecond: command.rateBytesPerSecond }) }),
  });
  const snapshots = new SnapshotMaker();
  let started = false;
  let retries = 0;
  const tick = (): void => {
    const status = downloader.status();
    if (status.mode === undefined) return;
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
  const ticker = setInterval(tick, 250);
  try {
    const status = await downloader.pipeTo(io.stdout, { signal: io.signal });
    tick();
    view.done({
      target: '-',
      totalBytes: status.size,
      bytesThisRun: status.downloadedBytes,
      elapsedMs: status.durationMs,
      digest: status.digest?.verified === true ? { algorithm: status.digest.algorithm, hex: status.digest.hex } : undefined,
    });
    return ExitCode.SUCCESS;
  } finally {
    clearInterval(ticker);
    await reader.close().catch(() => undefined);
  }
}

function reportDownloadFailure(err: unknown, command: DownloadCommand, target: string | undefined, io: CliIo): ExitCodeValue {
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

function writeJsonError(stream: NodeJS.WritableStream, err: unknown, resume?: string): void {
  const report = describeFailure(err);
  stream.write(
    `${JSON.stringify({
      type: 'error',
      code: report.code ?? null,
      message: report.message,
      hint: report.hint ?? null,
      exitCode: report.exitCode,
      ...(resume === undefined ? {} : { resume }),
    })}\n`,
  );
}

/** `-H` pairs as a header record; a repeated name is joined with ", " as HTTP allows. */
function headerRecord(headers: DownloadCommand['headers']): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    record[key] = record[key] === undefined ? value : `${record[key]}, ${value}`;
  }
  return record;
}

/** Header names whose values are secrets: never printed back. */
const SECRET_HEADER = /auth|cookie|token|key|secret|session|password/i;

/**
 * The command that resumes this download, for the person to copy: the
 * original arguments, plus `-o TARGET` when the name came from the server,
 * with credentials in the URL and secret header values replaced.
 */
export function resumeCommand(argv: readonly string[], command: DownloadCommand, target: string | undefined): string {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === command.url) {
      words.push(redactUrl(arg));
    } else if ((arg === '-H' || arg === '--header') && i + 1 < argv.length) {
      words.push(arg, redactHeader(argv[++i] as string));
    } else if (arg.startsWith('--header=')) {
      words.push(`--header=${redactHeader(arg.slice('--header='.length))}`);
    } else {
      words.push(arg);
    }
  }
  if (command.output === undefined && !command.toStdout && target !== undefined) words.push('-o', target);
  return ['blockfetch', ...words].map(shellQuote).join(' ');
}

function redactHeader(header: string): string {
  const colon = header.indexOf(':');
  if (colon < 0) return header;
  const name = header.slice(0, colon);
  return SECRET_HEADER.test(name) ? `${name}: REDACTED` : header;
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

async function isDirectory(path: string): Promise<boolean> {
  if (path.endsWith('/')) return true;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
