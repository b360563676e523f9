/**
 * `blockfetch s3://BUCKET/KEY` and `blockfetch s3://BUCKET/PREFIX/ -d DIR`:
 * the download command for S3 sources. The S3 work (credentials, listing,
 * signing, reading) is `src/s3/`'s; this file only turns the command line
 * into its options, shows one object as the download command shows one
 * URL, and runs a prefix's objects as a set (`set-run.ts`).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { Dispatcher } from 'undici';

import { downloadFile, downloadPaths } from '../download-file.js';
import { isFinishedDownload, type DownloadEntry } from '../download-files.js';
import { BlockfetchError, InvalidArgumentError } from '../errors.js';
import { finishedFileStat, mtimeMatches } from '../finished-file.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { resolveS3Config } from '../s3/config.js';
import { s3DownloadEntries, type S3DownloadPlan } from '../s3/entries.js';
import { parseS3Url, s3UrlOf } from '../s3/url.js';
import type { DownloadCommand } from './args.js';
import { EventPresenter, reportDownloadFailure, sharedDownloadOptions, tlsOptions } from './download-command.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import type { CliIo } from './io.js';
import { jsonLine } from './json-lines.js';
import { JsonView, createProgressView, doneNoticeOf } from './progress.js';
import { describeFailure } from './report.js';
import { resumeCommand } from './resume-command.js';
import { createSetView } from './set-progress.js';
import { runSet, type SetSlot } from './set-run.js';

/** Runs an s3:// download command; resolves to the exit code. */
export async function runS3Download(command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  const started = performance.now();
  let dispatcher: Dispatcher | undefined;
  try {
    checkOptions(command);
    const config = await resolveS3Config({ noSignRequest: command.noSignRequest });
    if (command.verbose) {
      io.stderr.write(`s3: endpoint ${config.endpoint.url.origin} (${config.endpoint.pathStyle ? 'path style' : 'virtual-hosted style'}), region ${config.region}, credentials: ${config.credentialSource}\n`);
    }
    dispatcher = createDefaultDispatcher(process.env, await tlsOptions(command), { http2: command.http2 });
    const userAgent = command.headers.find(([name]) => name.toLowerCase() === 'user-agent')?.[1];
    const plan = await s3DownloadEntries(command.url, {
      config,
      dispatcher,
      ...(command.output === undefined ? {} : { output: command.output }),
      signal: io.signal,
      reader: {
        ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
        requestTimeoutMs: command.timeoutMs,
        idleTimeoutMs: command.timeoutMs,
        ...(userAgent === undefined ? {} : { userAgent }),
      },
    });
    const { bucket } = parseS3Url(command.url);
    for (const skipped of plan.skipped) {
      if (!skipped.folderMarker) io.stderr.write(`blockfetch: ${s3UrlOf(bucket, skipped.key)} ${skipped.reason}\n`);
    }
    if (plan.entries.length === 0 && plan.skipped.every((s) => s.folderMarker)) {
      throw new InvalidArgumentError(`${command.url}: no objects under this prefix`, { hint: 'check the bucket and prefix: the listing was empty' });
    }
    const [only] = plan.entries;
    if (plan.directory === undefined && only !== undefined) return await downloadOneObject(only, plan, command, io);
    return await downloadPrefix(plan, command, io, dispatcher, started);
  } catch (err) {
    // Before any file began (configuration, listing): nothing on disk to resume.
    return reportDownloadFailure(err, command, undefined, io);
  } finally {
    await dispatcher?.close().catch(() => undefined);
  }
}

/** Options that mean nothing (or something unsafe) to a signed S3 request, or to a prefix's set of files, are refused, not ignored. */
function checkOptions(command: DownloadCommand): void {
  if (parseS3Url(command.url).isPrefix) {
    if (command.digest !== undefined) {
      throw new InvalidArgumentError('--sha256, --sha512 and --checksum name one file, but a prefix has several', { hint: 'check one object (s3://BUCKET/KEY) with it' });
    }
  }
  if (command.toStdout) {
    throw new InvalidArgumentError('--stdout is not supported for s3:// URLs yet', { hint: 'download to a file (-o FILE), then read it' });
  }
  // Refused, not ignored: an object's own checksum (x-amz-checksum-sha256) is checked when S3 keeps one.
  if (command.checksums !== undefined) {
    throw new InvalidArgumentError('--checksums is not supported for s3:// URLs yet', { hint: 'check one object with --sha256 HEX, or verify the files afterwards (blockfetch verify FILE --sha256 HEX)' });
  }
  if (command.mirrors.length > 0) {
    throw new InvalidArgumentError('--mirror is not supported for s3:// URLs', { hint: 'give the mirrors as https:// URLs, or download the object alone' });
  }
  const extra = command.headers.filter(([name]) => name.toLowerCase() !== 'user-agent');
  if (extra.length > 0) {
    throw new InvalidArgumentError(`-H/--header is not sent with s3:// requests (got ${extra.map(([name]) => name).join(', ')})`, {
      hint: 'S3 requests are signed from the AWS credentials; drop -H',
    });
  }
}

/**
 * One object (`s3://BUCKET/KEY`): the download command's one-file view and
 * messages. A target that is already the object is left alone.
 */
async function downloadOneObject(entry: DownloadEntry, plan: S3DownloadPlan, command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  const key = entry.key ?? entry.target;
  if (!command.force && (await alreadyComplete(entry, plan))) {
    if (command.outputMode === 'json') io.stdout.write(jsonLine({ type: 'done', outcome: 'already-complete', key, target: downloadPaths(entry.target).target }));
    else if (command.outputMode !== 'quiet') io.stderr.write(`blockfetch: ${entry.target} is already complete (the same size and modification time as ${key})\n`);
    return ExitCode.SUCCESS;
  }
  const view = command.outputMode === 'json' ? new JsonView(io.stdout) : createProgressView(command.outputMode, io.stderr);
  const presenter = new EventPresenter(view, { ...command, url: key });
  try {
    await mkdir(dirname(entry.target), { recursive: true });
    const result = await downloadFile(entry.source, entry.target, {
      ...sharedDownloadOptions(command),
      ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
      ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
      signal: io.signal,
      ...entry.options,
      onEvent: (event) => presenter.handle(event),
    });
    view.done(doneNoticeOf(result));
    return ExitCode.SUCCESS;
  } catch (err) {
    view.stop(presenter.last);
    const nothingOnDisk = !existsSync(downloadPaths(entry.target).partial);
    return reportDownloadFailure(err, { ...command, url: key }, entry.target, io, nothingOnDisk);
  }
}

/**
 * A prefix: its objects as a set (`set-run.ts`): `-c` connections across
 * them, `-j` at once, the set's view, summary, `--json` lines and exit
 * code. Each key's folder is made here (downloadFiles writes only the
 * files); a target already that object is skipped; a target that is
 * another file is refused unless `--force`, as for one object.
 */
async function downloadPrefix(plan: S3DownloadPlan, command: DownloadCommand, io: CliIo, dispatcher: Dispatcher, started: number): Promise<ExitCodeValue> {
  const view = createSetView(command.outputMode, io.stdout, io.stderr);
  const slots: SetSlot[] = [];
  for (const entry of plan.entries) {
    const key = entry.key ?? entry.target;
    if (!command.force && (await alreadyComplete(entry, plan))) {
      slots.push({ settled: { file: key, outcome: 'skipped' } });
    } else if (!command.force && (await isFinishedDownload(entry.target))) {
      const error = new BlockfetchError('BLOCKFETCH_TARGET_EXISTS', `${entry.target} already exists and is not ${key} (its size or modification time differs)`, {
        hint: 'add -f/--force to replace it, or download into another directory (-d DIR)',
      });
      slots.push({ settled: { file: key, outcome: 'failed', report: describeFailure(error) } });
    } else {
      // One key whose folder cannot be made (a file of that name is in the
      // way) fails alone; the others of the prefix still download.
      const folder = dirname(entry.target);
      const madeFolder = await mkdir(folder, { recursive: true }).then(
        () => undefined,
        (err: unknown) => err,
      );
      if (madeFolder === undefined) slots.push({ entry: { ...entry, key }, url: key });
      else {
        const error = new BlockfetchError('BLOCKFETCH_UNSAFE_PATH', `cannot make the folder ${folder} for ${key}: ${(madeFolder as NodeJS.ErrnoException).code ?? String(madeFolder)}`, {
          hint: 'a file of that name is in the way: move it, or download into another directory (-d DIR)',
          cause: madeFolder,
        });
        slots.push({ settled: { file: key, outcome: 'failed', report: describeFailure(error) } });
      }
    }
  }
  // A key that could not be saved is a file the user does not have: not a success.
  const unsafe = plan.skipped.filter((s) => !s.folderMarker).length;
  return runSet(slots, {
    command,
    view,
    io,
    dispatcher,
    started,
    resume: resumeCommand(io.argv, command, undefined),
    moreExitCodes: unsafe > 0 ? [ExitCode.FAILURE] : [],
    afterDownloads: () => Promise.resolve(unsafe > 0 ? `${unsafe} key(s) under ${command.url} left out (see above)` : undefined),
  });
}

/**
 * Whether an entry's target is already that object, so a re-run over a
 * prefix skips what is done (as the download command does for one URL): a
 * regular file with no partial download beside it, of the listed size, and
 * with the listed modification time (blockfetch sets it from Last-Modified
 * when it finishes a file). One object has no listing: its HEAD tells
 * (only when the target exists, so a first run sends no extra request).
 */
async function alreadyComplete(entry: DownloadEntry, plan: S3DownloadPlan): Promise<boolean> {
  const local = await finishedFileStat(entry.target);
  if (local === undefined) return false;
  let remote = plan.listed.get(entry.key ?? '');
  const createReader = entry.options?.createReader;
  if (remote === undefined && createReader !== undefined && typeof entry.source === 'string') {
    const reader = createReader(entry.source);
    try {
      const { identity } = await reader.contentLengthAndBlockSize();
      remote = { key: entry.source, size: identity.size, etag: identity.etag, lastModified: identity.lastModified };
    } catch {
      return false; // the download itself will say what is wrong
    } finally {
      await (reader as { close?: () => Promise<void> }).close?.().catch(() => undefined);
    }
  }
  return remote !== undefined && local.size === remote.size && mtimeMatches(local, remote.lastModified);
}
