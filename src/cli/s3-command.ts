/**
 * `blockfetch s3://BUCKET/KEY` and `blockfetch s3://BUCKET/PREFIX/ -d DIR`:
 * the download command for S3 sources. The S3 work (credentials, listing,
 * signing, reading) is `src/s3/`'s; this file only turns the command line
 * into its options, shows each file's progress as the download command
 * does, and reports the outcome.
 */
import { existsSync } from 'node:fs';
import { lstat } from 'node:fs/promises';

import type { Dispatcher } from 'undici';

import { downloadPaths, type DownloadFileEvent } from '../download-file.js';
import { InvalidArgumentError } from '../errors.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { resolveS3Config } from '../s3/config.js';
import { s3DownloadEntries, type DownloadEntry, type S3DownloadPlan } from '../s3/entries.js';
import { downloadS3EntriesSequentially, type EntryOutcome } from '../s3/run-entries.js';
import { parseS3Url, s3UrlOf } from '../s3/url.js';
import type { DownloadCommand } from './args.js';
import { EventPresenter, reportDownloadFailure, tlsOptions } from './download-command.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import type { CliIo } from './io.js';
import { jsonLine } from './json-lines.js';
import { JsonView, createProgressView, type ProgressView } from './progress.js';

/** Runs an s3:// download command; resolves to the exit code. */
export async function runS3Download(command: DownloadCommand, io: CliIo): Promise<ExitCodeValue> {
  const jsonStream = io.stdout;
  const newView = (): ProgressView => (command.outputMode === 'json' ? new JsonView(jsonStream) : createProgressView(command.outputMode, io.stderr));
  let dispatcher: Dispatcher | undefined;
  try {
    checkOptions(command);
    const config = await resolveS3Config({ noSignRequest: command.noSignRequest });
    if (command.verbose) {
      io.stderr.write(`s3: endpoint ${config.endpoint.url.origin} (${config.endpoint.pathStyle ? 'path style' : 'virtual-hosted style'}), region ${config.region}, credentials: ${config.credentialSource}\n`);
    }
    dispatcher = createDefaultDispatcher(process.env, await tlsOptions(command));
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
    return await downloadPlan(plan, command, io, newView);
  } catch (err) {
    // Before any file began (configuration, listing): nothing on disk to resume.
    return reportDownloadFailure(err, command, undefined, io);
  } finally {
    await dispatcher?.close().catch(() => undefined);
  }
}

/** Options that mean nothing (or something unsafe) to a signed S3 request are refused, not ignored. */
function checkOptions(command: DownloadCommand): void {
  if (command.toStdout) {
    throw new InvalidArgumentError('--stdout is not supported for s3:// URLs yet', { hint: 'download to a file (-o FILE), then read it' });
  }
  const extra = command.headers.filter(([name]) => name.toLowerCase() !== 'user-agent');
  if (extra.length > 0) {
    throw new InvalidArgumentError(`-H/--header is not sent with s3:// requests (got ${extra.map(([name]) => name).join(', ')})`, {
      hint: 'S3 requests are signed from the AWS credentials; drop -H',
    });
  }
}

/** Downloads every entry of the plan, one after another, and says how it went. */
async function downloadPlan(plan: S3DownloadPlan, command: DownloadCommand, io: CliIo, newView: () => ProgressView): Promise<ExitCodeValue> {
  let view: ProgressView | undefined;
  let presenter: EventPresenter | undefined;
  let current: DownloadEntry | undefined;
  let exitCode: ExitCodeValue = ExitCode.SUCCESS;
  const onOutcome = (outcome: EntryOutcome): void => {
    const entry = outcome.entry;
    const shown = view;
    const last = presenter?.last;
    // The next file gets a view of its own, even if it fails before its first event.
    current = undefined;
    view = undefined;
    presenter = undefined;
    const key = entry.key ?? entry.target;
    if (outcome.kind === 'skipped') {
      if (command.outputMode === 'json') io.stdout.write(jsonLine({ type: 'done', outcome: 'already-complete', key, target: downloadPaths(entry.target).target }));
      else if (command.outputMode !== 'quiet') io.stderr.write(`blockfetch: ${entry.target} is already complete (the same size and modification time as ${key})\n`);
      return;
    }
    if (outcome.kind === 'done') {
      const { result } = outcome;
      shown?.done({
        target: result.target,
        totalBytes: result.size,
        bytesThisRun: result.stats.downloadedBytes,
        elapsedMs: result.durationMs,
        digest: result.digest?.verified === true ? { algorithm: result.digest.algorithm, hex: result.digest.hex } : undefined,
      });
      return;
    }
    shown?.stop(last);
    const nothingOnDisk = !existsSync(downloadPaths(entry.target).partial);
    const code = reportDownloadFailure(outcome.error, { ...command, url: key }, entry.target, io, nothingOnDisk);
    if (exitCode === ExitCode.SUCCESS) exitCode = code;
  };
  const outcomes = await downloadS3EntriesSequentially(plan.entries, {
    concurrency: command.concurrency,
    ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
    ...(command.requestSize === undefined ? {} : { maxRequestBytes: command.requestSize }),
    ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
    ...(command.digest === undefined ? {} : { expectedDigest: command.digest }),
    restart: command.restart,
    overwrite: command.force,
    retry: { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs },
    signal: io.signal,
    isComplete: async (entry) => !command.force && (await alreadyComplete(entry, plan)),
    onEvent: (key: string, event: DownloadFileEvent) => {
      const entry = plan.entries.find((e) => e.key === key);
      if (entry !== current) {
        // A new file: its own view and presenter, so its bar and counts start at 0.
        current = entry;
        view = newView();
        presenter = new EventPresenter(view, { ...command, url: key });
      }
      presenter?.handle(event);
    },
    onOutcome,
  });
  if (plan.directory !== undefined) {
    const count = (kind: EntryOutcome['kind']): number => outcomes.filter((o) => o.kind === kind).length;
    const unsafe = plan.skipped.filter((s) => !s.folderMarker).length;
    const left = plan.entries.length - outcomes.length;
    const summary = `${plan.entries.length} file(s) under ${command.url} into ${plan.directory}: ${count('done')} downloaded, ${count('skipped')} already complete, ${count('failed')} failed${left > 0 ? `, ${left} not started` : ''}${unsafe > 0 ? `; ${unsafe} key(s) left out` : ''}`;
    // --json has no set-level line yet (docs/cli-json.schema.json ends a run with done, error or
    // interrupted; downloadFiles will bring one): each file's own lines say it there.
    if (command.outputMode === 'auto') io.stderr.write(`blockfetch: ${summary}\n`);
    // A key that could not be saved is a file the user does not have: not a success.
    if (exitCode === ExitCode.SUCCESS && unsafe > 0) exitCode = ExitCode.FAILURE;
  }
  return exitCode;
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
  const paths = downloadPaths(entry.target);
  const local = await lstat(paths.target).catch(() => undefined);
  if (local === undefined || !local.isFile()) return false;
  if ((await lstat(paths.partial).catch(() => undefined)) !== undefined) return false;
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
  if (remote?.lastModified === undefined || local.size !== remote.size) return false;
  const modified = Date.parse(remote.lastModified);
  return Number.isFinite(modified) && Math.floor(local.mtimeMs / 1000) === Math.floor(modified / 1000);
}
