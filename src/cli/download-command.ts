/**
 * `blockfetch <url> [-o FILE]`: the download command, a thin layer over
 * {@link downloadFile}: it chooses the file name, turns the download's
 * events into progress for the chosen view, and reports the outcome.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';

import type { Dispatcher } from 'undici';
import { basename, join } from 'node:path';

import { HttpReader } from '../http/http-reader.js';
import { downloadFile, downloadPaths, lookAtRemote, tidyFinishedDownload, type DownloadFileEvent, type DownloadFileOptions, type LookRetry } from '../download-file.js';
import type { RetryOptions } from '../download/backoff.js';
import type { ContentInfo, Reader } from '../download/reader.js';
import { readerForUrls } from '../mirrors/reader-for-urls.js';
import { DigestMismatchError, InvalidArgumentError, redactUrl } from '../errors.js';
import { digestsMatch, finishedFileStat, mtimeMatches } from '../finished-file.js';
import type { ExpectedDigest } from '../cache/types.js';
import { digestsFor, type ChecksumList } from '../download/checksum-list.js';
import type { DispatcherTlsOptions } from '../http/dispatcher.js';
import type { RemoteIdentity } from '../cache/types.js';
import { inspectDownload } from './inspect.js';
import { headerRecord, type DownloadCommand } from './args.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { expectedDigestsFor, listedNote, checksumListForRun } from './checksum-list-source.js';
import { chooseFilename } from './filename.js';
import { jsonLine } from './json-lines.js';
import { Interrupted, StdoutClosed, type CliIo } from './io.js';
import { JsonView, SnapshotMaker, createProgressView, doneNoticeOf, type ProgressSnapshot, type ProgressView } from './progress.js';
import { debugFromEnvironment, describeFailure, formatFailure, writeJsonError } from './report.js';
import { contentDispositionOf, createHeaderCapturingDispatcher, type HeaderCapturingDispatcher } from './response-headers.js';
import { resumeCommand } from './resume-command.js';
import { runStream } from './stream-command.js';
import { formatBytes } from './units.js';

/**
 * `blockfetch <url>`: downloads to a file through {@link downloadFile} (or
 * streams to stdout), showing progress, and maps the outcome to an exit code.
 */
export async function runDownload(command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  if (command.url.startsWith('s3://')) return (await import('./s3-command.js')).runS3Download(command, io);
  // With --stdout the data owns stdout, so everything else goes to stderr.
  const jsonStream = command.toStdout ? io.stderr : io.stdout;
  const view: ProgressView = command.outputMode === 'json' ? new JsonView(jsonStream) : createProgressView(command.outputMode, io.stderr);
  let target: string | undefined = command.output;
  let checksums: ChecksumList | undefined;
  let presenter: EventPresenter | undefined;
  let tls: DispatcherTlsOptions;
  try {
    tls = await tlsOptions(command);
  } catch (err) {
    return reportDownloadFailure(err, command, undefined, io);
  }
  if (command.tls.insecure) {
    const warning = 'warning: -k/--insecure: TLS certificates are not checked in this run; anyone on the path can read or change the download';
    if (command.outputMode === 'json') view.note(warning);
    else io.stderr.write(`${warning}\n`);
  }
  const capture = createHeaderCapturingDispatcher(tls, { http2: command.http2 });
  try {
    // Before anything is downloaded: a list that cannot be had or read stops the run here.
    if (command.checksums !== undefined) checksums = await checksumListForRun(command, [command.url, ...command.mirrors], tls, io.signal);
    // `--stdout` alone: nothing on disk. With `-o FILE` too: stream while saving, below.
    if (command.toStdout && command.output === undefined) return await runStream(command, io, view, capture.dispatcher);
    // `-o DIR/` (or an existing directory): the server's name, in that directory.
    if (target === undefined || (await isDirectory(target))) {
      const name = await nameFromServer(command.url, {
        headers: headerRecord(command.headers),
        command,
        capture,
        signal: io.signal,
        onRetry: (retry) => showLookRetry(view, retry),
      });
      target = target === undefined ? name : join(target, name);
    }
    // Every digest to check: the one given, and what the list gives for this name (a conflict is a usage error here).
    const digests =
      checksums !== undefined ? expectedDigestsFor(checksums, target, command.digest) : command.digest === undefined ? [] : [command.digest];
    if (checksums !== undefined) noteListed(checksums, target, digests, command, view, io);
    if (!command.force && (await alreadyComplete(command, target, digests, capture.dispatcher, io.signal))) {
      await tidyFinishedDownload(target);
      // Stream while saving, run again after it finished: the stream is the finished file.
      if (command.toStdout) await streamFinishedFile(target, io);
      io.stderr.write(command.outputMode === 'quiet' ? '' : `blockfetch: ${target} is already complete (the same size and revision as the remote)\n`);
      if (command.outputMode === 'json') jsonStream.write(`${JSON.stringify({ type: 'done', outcome: 'already-complete', target: downloadPaths(target).target })}\n`);
      return ExitCode.SUCCESS;
    }
    presenter = new EventPresenter(view, command);
    const http = { headers: headerRecord(command.headers), timeoutMs: command.timeoutMs, dispatcher: capture.dispatcher };
    // What a partial download of this target recorded: the mirrors' reader
    // resumes from it (only for the first reader: a restart discards it).
    let recorded = command.mirrors.length === 0 ? undefined : await recordedRemote(target);
    const result = await downloadFile(command.url, target, {
      ...sharedDownloadOptions(command),
      ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
      ...(digests.length === 0 ? {} : { expectedDigests: digests }),
      signal: io.signal,
      onEvent: presenter.handle,
      ...(command.toStdout ? { consumer: io.stdout } : {}),
      // With --mirror the HTTP settings go to every mirror's reader instead.
      ...(command.mirrors.length === 0 ? http : {
            createReader: (url: string) => {
              const reader = mirrorReaderFor([url, ...command.mirrors], {
                headers: headerRecord(command.headers),
                command,
                dispatcher: capture.dispatcher,
                digests,
                recorded,
                note: (message) => view.note(message),
              });
              recorded = undefined;
              return reader;
            },
          }),
    });
    view.done(doneNoticeOf(result));
    return ExitCode.SUCCESS;
  } catch (err) {
    view.stop(presenter?.last);
    // No partial download on disk (the first request failed): nothing to resume.
    const nothingOnDisk = streamsOnly(command) || target === undefined || !(await exists(downloadPaths(target).partial));
    return reportDownloadFailure(listedMismatch(err, checksums, target), command, target, io, nothingOnDisk);
  } finally {
    await capture.dispatcher.close().catch(() => undefined);
  }
}

/** The command-line options {@link sharedDownloadOptions} reads. */
export type SharedDownloadFlags = Pick<DownloadCommand, 'concurrency' | 'blockSize' | 'requestSize' | 'restart' | 'force' | 'retries' | 'speedLimitBytesPerSecond' | 'speedTimeMs'>;

/**
 * The options every download of a command takes from its flags, named
 * alike in `downloadFile` and `downloadFiles`: `-c`, `--block-size`,
 * `--request-size`, `--restart`, `--force` and the retry limits. One
 * place, so one URL, a set, an `hf://` repository and an `s3://` source
 * read the flags the same way.
 *
 * @example
 * ```ts
 * await downloadFile(command.url, target, { ...sharedDownloadOptions(command), signal });
 * ```
 */
export function sharedDownloadOptions(command: SharedDownloadFlags): Pick<DownloadFileOptions, 'concurrency' | 'blockSize' | 'maxRequestBytes' | 'restart' | 'overwrite' | 'retry'> {
  return {
    concurrency: command.concurrency,
    ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
    ...(command.requestSize === undefined ? {} : { maxRequestBytes: command.requestSize }),
    restart: command.restart,
    overwrite: command.force,
    retry: retryOptionsOf(command),
  };
}

/**
 * The retry limits of `--retries`, `--speed-limit` and `--speed-time`: for
 * the downloads ({@link sharedDownloadOptions}) and for every first look a
 * command makes before them.
 *
 * @example
 * ```ts
 * await lookAtRemote(reader, { signal, retry: retryOptionsOf(command) });
 * ```
 */
export function retryOptionsOf(command: Pick<DownloadCommand, 'retries' | 'speedLimitBytesPerSecond' | 'speedTimeMs'>): RetryOptions {
  return { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs };
}

/**
 * The certificate checks of this run: `-k` accepts any certificate, and
 * `--cacert FILE` trusts the PEM certificates in FILE instead of the
 * system's (as curl's `--cacert`), read here so that a wrong path is a usage
 * error before any request.
 */
export async function tlsOptions(command: Pick<DownloadCommand, 'tls'>): Promise<DispatcherTlsOptions> {
  if (command.tls.insecure) return { rejectUnauthorized: false };
  const file = command.tls.caFile;
  if (file === undefined) return {};
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'an error';
    throw new InvalidArgumentError(`--cacert ${JSON.stringify(file)} cannot be read (${code})`, {
      hint: 'give the path of a PEM file of CA certificates, e.g. --cacert ./ca.pem',
      cause: err,
    });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new InvalidArgumentError(`--cacert ${JSON.stringify(file)} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`, {
      hint: 'convert a DER certificate with: openssl x509 -inform der -in ca.crt -out ca.pem',
    });
  }
  return { ca: pem };
}

/**
 * Whether `target` is already the finished download of the remote, so a
 * re-run (as `wget -c` and `curl -C -` do) succeeds instead of refusing: the
 * target is a regular file with no partial download beside it, of the
 * remote's size, and either its mtime is the remote's Last-Modified (set
 * when blockfetch finished it) or it has `digests` (given with --sha256,
 * --sha512 or --checksum, and those --checksums lists for it). One look at
 * the remote (`contentLengthAndBlockSize`); anything that cannot be told is
 * `false`, and downloadFile then refuses the existing target as before.
 */
async function alreadyComplete(
  command: DownloadCommand,
  target: string,
  digests: readonly ExpectedDigest[],
  dispatcher: Dispatcher,
  signal: AbortSignal,
): Promise<boolean> {
  const local = await finishedFileStat(target);
  if (local === undefined) return false;
  const reader = new HttpReader({
    url: command.url,
    blockSize: 1,
    headers: headerRecord(command.headers),
    requestTimeoutMs: command.timeoutMs,
    idleTimeoutMs: command.timeoutMs,
    dispatcher,
  });
  let info: ContentInfo;
  try {
    info = await lookAtRemote(reader, { signal, retry: { attemptsPerBlock: command.retries + 1 } });
  } catch {
    return false;
  } finally {
    await reader.close().catch(() => undefined);
  }
  if (info.contentLength !== local.size) return false;
  const wanted = digests.length > 0 ? digests : info.identity.digest === undefined ? [] : [info.identity.digest];
  if (wanted.length > 0) return digestsMatch(downloadPaths(target).target, wanted, signal).catch(() => false);
  return mtimeMatches(local, info.identity.lastModified);
}

/**
 * One line about what the list said for the file: that it does not name it
 * (the download goes on unchecked by the list; not an error, since a list
 * may cover other files), or, with `-v`, which digests it gave.
 */
function noteListed(list: ChecksumList, target: string, digests: readonly ExpectedDigest[], command: DownloadCommand, view: ProgressView, io: CliIo): void {
  const note = listedNote(list, target, digests, command.verbose);
  if (note === undefined || command.outputMode === 'quiet') return;
  if (command.outputMode === 'json') view.note(note);
  else io.stderr.write(`blockfetch: ${note}\n`);
}

/**
 * A mismatch against a digest the checksum list gave: said so in the hint,
 * since "the digest you gave" would send a person looking for a --sha256
 * they never typed. Any other error is returned as it is.
 *
 * @example
 * ```ts
 * report(listedMismatch(err, list, 'out/a.iso')) // hint: the file does not have the sha256 that SHA256SUMS gives for a.iso: …
 * ```
 */
export function listedMismatch(err: unknown, list: ChecksumList | undefined, target: string | undefined): unknown {
  if (!(err instanceof DigestMismatchError) || list === undefined || target === undefined) return err;
  const listed = digestsFor(list, target).some((d) => d.algorithm === err.algorithm && d.hex === err.expected);
  if (!listed) return err;
  return new DigestMismatchError(err.algorithm, err.expected, err.actual, {
    cause: err,
    hint: `the file does not have the ${err.algorithm} that ${list.source} gives for ${basename(target)}: check that the list is for this release; the partial file is kept (delete ${basename(target)}.blockfetch* to download it again)`,
  });
}

/** What {@link mirrorReaderFor} needs besides the URLs. */
export interface MirrorReaderSettings {
  /** The file's request headers (`-H`, and an input file's `header=` lines). */
  readonly headers: Readonly<Record<string, string>>;
  /** The flags every mirror's requests follow: `--timeout` and `--block-size`. */
  readonly command: Pick<DownloadCommand, 'timeoutMs' | 'blockSize'>;
  /** The run's dispatcher, shared by every mirror. */
  readonly dispatcher: Dispatcher;
  /** Every digest known for the file: any one proves the mirrors serve the same bytes. */
  readonly digests: readonly ExpectedDigest[];
  /** What a partial download of the file recorded, for the reader to resume from. @default undefined */
  readonly recorded?: RemoteIdentity | undefined;
  /** Shows a note: a mirror dropped, or one cooling down after a failure. */
  readonly note: (message: string) => void;
}

/**
 * The reader of one file served at `urls` (the first, then its mirrors:
 * `--mirror`, or the TAB-separated URLs of an input-file line), with the
 * run's HTTP settings and every digest known for the file (given, and the
 * checksum list's: any one of them proves the mirrors serve the same
 * bytes), showing each mirror dropped or cooling down as a note. One place,
 * so one URL with `--mirror` and a set's mirrored files read alike.
 *
 * @example
 * ```ts
 * const reader = mirrorReaderFor([url, ...command.mirrors], {
 *   headers: headerRecord(command.headers),
 *   command,
 *   dispatcher,
 *   digests,
 *   note: (message) => view.note(message),
 * });
 * ```
 */
export function mirrorReaderFor(urls: readonly string[], settings: MirrorReaderSettings): Reader {
  const { headers, command, dispatcher, digests, recorded, note } = settings;
  return readerForUrls(urls, {
    ...(recorded === undefined ? {} : { expected: recorded }),
    http: {
      headers,
      requestTimeoutMs: command.timeoutMs,
      idleTimeoutMs: command.timeoutMs,
      dispatcher,
      ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
    },
    ...(digests.length === 0 ? {} : { expectedDigests: digests }),
    onEvent: (event) => {
      if (event.type === 'mirror-dropped') note(event.message);
      else note(`mirror ${event.mirror} failed (${event.error.message}); others serve its share for ${Math.round(event.delayMs / 1000)} s`);
    },
  });
}

/** The remote identity a partial download at `target` recorded, if there is one that can be read. */
async function recordedRemote(target: string): Promise<RemoteIdentity | undefined> {
  try {
    return (await inspectDownload(target)).remote ?? undefined;
  } catch {
    return undefined; // no partial, or one downloadFile will report on itself
  }
}

/** Shows the events of one {@link downloadFile} call on a progress view. */
export class EventPresenter {
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
      case 'consumer-wait':
        this.#view.note(
          `${event.paths.target}: all ${formatBytes(event.size)} on disk; stdout's reader has taken ${formatBytes(event.streamedBytes)}, finishing when it has the rest`,
        );
        break;
      case 'start':
        if (!event.info.rangesSupported) {
          this.#view.note('the server does not serve byte ranges: one connection, and a resumed download is fetched from its start again');
        } else if (!event.info.pinned) {
          // A weak ETag (W/"…") promises equivalent content, not the same bytes: it cannot pin a range.
          const sends = event.info.identity.etag === undefined ? 'sends no ETag or Last-Modified' : 'sends only a weak ETag, which cannot pin byte ranges, and no Last-Modified';
          this.#view.note(
            event.connections === 1
              ? `the server ${sends}: nothing shows that parallel requests get one revision, so one connection, in order${this.#command.concurrency > 1 ? ' (give --sha256 to use more)' : ''}`
              : `the server ${sends}: the whole file is checked against the digest at the end`,
          );
        }
        if (this.#command.verbose) this.#view.note(describeRemote(event.info, this.#command.concurrency));
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

/** What {@link nameFromServer} needs besides the URL. */
export interface NameFromServerOptions {
  /** The request headers of the file (`-H`, and an input file's `header=` lines). */
  readonly headers: Readonly<Record<string, string>>;
  /** The flags the first request follows: `--timeout` and the retry limits. */
  readonly command: Pick<DownloadCommand, 'timeoutMs' | 'retries' | 'speedLimitBytesPerSecond' | 'speedTimeMs'>;
  /** A dispatcher that records the first 2xx response's headers, for its Content-Disposition. */
  readonly capture: HeaderCapturingDispatcher;
  readonly signal: AbortSignal;
  /** Shows a retry of the first request. */
  readonly onRetry: (retry: LookRetry) => void;
}

/**
 * The local name of `url` when no name was given (no `-o`, no `out=`):
 * the server's Content-Disposition (sanitized) or the URL's last segment.
 * The server is asked with a 1-byte ranged GET through `capture`, whose
 * connections the download then reuses. Throws what that first request
 * failed with.
 *
 * @example
 * ```ts
 * const capture = createHeaderCapturingDispatcher(tls);
 * const name = await nameFromServer(command.url, { headers: headerRecord(command.headers), command, capture, signal, onRetry });
 * // 'ubuntu-24.04.iso' (the URL's last segment, or the server's Content-Disposition filename)
 * ```
 */
export async function nameFromServer(url: string, options: NameFromServerOptions): Promise<string> {
  const { headers, command, capture, signal, onRetry } = options;
  const probe = new HttpReader({
    url,
    blockSize: 1,
    headers,
    requestTimeoutMs: command.timeoutMs,
    idleTimeoutMs: command.timeoutMs,
    dispatcher: capture.dispatcher,
  });
  try {
    await lookAtRemote(probe, { signal, retry: retryOptionsOf(command), onRetry });
  } finally {
    await probe.close().catch(() => undefined);
  }
  return chooseFilename(url, contentDispositionOf(capture.firstSuccessHeaders()));
}

/** Prints why a download stopped (and, when it can be resumed, how) and returns the exit code. */
export function reportDownloadFailure(
  err: unknown,
  command: DownloadCommand,
  target: string | undefined,
  io: CliIo,
  nothingDownloaded = true,
): ExitCodeValue {
  if (io.signal.aborted && io.signal.reason instanceof StdoutClosed) {
    // `--stdout | head`: the reader has what it wanted; say nothing, like SIGPIPE.
    if (streamsOnly(command) || target === undefined || nothingDownloaded) return ExitCode.STDOUT_CLOSED;
    // `-o FILE --stdout | head`: the download stopped with it; say where it is kept.
    const kept = `stdout was closed by its reader; the download stopped, progress saved in ${downloadPaths(target).partial}`;
    if (command.outputMode === 'json') io.stderr.write(jsonLine({ type: 'note', message: kept }));
    else if (command.outputMode !== 'quiet') io.stderr.write(`blockfetch: ${kept}\nresume with: ${resumeCommand(io.argv, command, target)}\n`);
    return ExitCode.STDOUT_CLOSED;
  }
  const interrupted = io.signal.aborted && io.signal.reason instanceof Interrupted ? io.signal.reason : undefined;
  const resume = resumeCommand(io.argv, command, target);
  if (interrupted !== undefined) {
    const code = interrupted.signalName === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
    if (command.outputMode === 'json') {
      const stream = command.toStdout ? io.stderr : io.stdout;
      stream.write(jsonLine({ type: 'interrupted', outcome: 'interrupted', signal: interrupted.signalName, exitCode: code, resume }));
    }
    if (streamsOnly(command)) {
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName}; a stream to stdout cannot be resumed\n`);
    } else if (target !== undefined && !nothingDownloaded) {
      const paths = downloadPaths(target);
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName}; progress saved in ${paths.partial}\n`);
      io.stderr.write(`resume with: ${resume}\n`);
    } else {
      io.stderr.write(`blockfetch: interrupted by ${interrupted.signalName} before any byte was saved\n`);
    }
    return code;
  }
  // Nothing on disk (the first request failed): there is nothing to
  // resume, so no "resume with" and no promise of one.
  const options = { nothingDownloaded };
  const report = describeFailure(err, options);
  const resumable = report.exitCode === ExitCode.NETWORK && !streamsOnly(command) && target !== undefined && !nothingDownloaded;
  if (command.outputMode === 'json') writeJsonError(command.toStdout ? io.stderr : io.stdout, err, resumable ? resume : undefined, options);
  io.stderr.write(formatFailure(err, command.debug || debugFromEnvironment, options));
  if (command.verbose && !command.debug && !debugFromEnvironment) io.stderr.write(`code: ${report.code ?? '(none)'}, exit status ${report.exitCode}\n`);
  if (resumable) {
    io.stderr.write(`resume with: ${resume}\n`);
  }
  if (command.toStdout && report.exitCode === ExitCode.INTEGRITY) {
    // Stream while saving: the bytes went out before the digest could be checked.
    io.stderr.write('blockfetch: the bytes already written to stdout failed the digest check: whatever read them must discard its result\n');
  }
  return report.exitCode;
}

/** `--stdout` (or `-o -`) alone: the StreamingDownloader, nothing on disk, nothing to resume. */
function streamsOnly(command: DownloadCommand): boolean {
  return command.toStdout && command.output === undefined;
}

/**
 * `-o FILE --stdout` run again after FILE was finished: streams FILE to
 * stdout (so a pipeline re-run after its consumer failed gets the whole
 * file again) and ends stdout.
 */
async function streamFinishedFile(target: string, io: CliIo): Promise<void> {
  await pipeline(createReadStream(target), io.stdout, { signal: io.signal });
}


/** `-v`: what the remote is and how it will be fetched, in one line. */
function describeRemote(info: ContentInfo, concurrency: number): string {
  const { identity } = info;
  const revision = [
    identity.etag === undefined ? undefined : `ETag ${identity.etag}`,
    identity.lastModified === undefined ? undefined : `Last-Modified ${identity.lastModified}`,
    identity.digest === undefined ? undefined : `${identity.digest.algorithm} ${identity.digest.hex}`,
  ].filter((part) => part !== undefined);
  const plan = info.rangesSupported ? `${concurrency} connections` : 'one connection (no byte ranges)';
  return `remote: ${formatBytes(info.contentLength)} (${info.contentLength} bytes), ${revision.length === 0 ? 'no revision validators' : revision.join(', ')}; ${plan}`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
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
