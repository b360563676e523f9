/**
 * Running a set of files for the command line, whatever listed them: the
 * URLs and input file of `blockfetch URL URL…`/`-i FILE`, a Hugging Face
 * repository (`hf://`), an S3 prefix (`s3://BUCKET/PREFIX/`). Each caller
 * decides the files and their targets; this module hands them to
 * {@link downloadFiles} with the command line's options (one connection
 * budget for `-c`, `-j` files at once), turns its events into the set's
 * view (terminal, log, `--json` lines with a `file` field, or quiet),
 * prints the summary and gives the one exit code
 * ({@link mostSevereExitCode}; 130/143 when interrupted, every partial
 * saved).
 */
import type { Dispatcher } from 'undici';

import { downloadFiles, type DownloadEntry, type DownloadFilesEvent } from '../download-files.js';
import { redactUrl, type BlockfetchError } from '../errors.js';
import type { DownloadCommand } from './args.js';
import { sharedDownloadOptions, type SharedDownloadFlags } from './download-command.js';
import { ExitCode, mostSevereExitCode, type ExitCodeValue } from './exit-codes.js';
import { Interrupted, type CliIo } from './io.js';
import { describeFailure, type FailureReport } from './report.js';
import { JsonSetView, type SetFileOutcome, type SetView } from './set-progress.js';

/**
 * One file of a set: an entry to download (with the URL its `--json`
 * `start` line shows), or an outcome decided before any download (its
 * first request failed, a different file is in the way, it is already
 * complete).
 */
export type SetSlot =
  | { readonly entry: DownloadEntry & { readonly key: string }; readonly url: string }
  | { readonly settled: SetFileOutcome };

/** The command line's options a set run reads (a set command's, or one `hf://`/`s3://` URL's). */
export type SetRunCommand = SharedDownloadFlags & Pick<DownloadCommand, 'maxConcurrentFiles' | 'timeoutMs' | 'outputMode' | 'rateBytesPerSecond'>;

/** How {@link runSet} runs and shows a set. */
export interface SetRunSettings {
  readonly command: SetRunCommand;
  /** The view the caller made (`createSetView`), already showing the caller's notes. */
  readonly view: SetView;
  readonly io: CliIo;
  /** The pool every URL source's reader uses; entries with their own reader ignore it. @default a new Agent per file */
  readonly dispatcher?: Dispatcher;
  /** When the command started (`performance.now()`), for the summary's time. */
  readonly started: number;
  /** The command that resumes the set, secrets redacted. */
  readonly resume: string;
  /** Exit codes the set owes beyond its files' (keys of a prefix left out). @default [] */
  readonly moreExitCodes?: readonly ExitCodeValue[];
  /** Runs once the downloads ended (also when interrupted), before the summary; may return a note to show. @default nothing */
  readonly afterDownloads?: () => Promise<string | undefined>;
  /** How a file's failure is reported (a checksum list's mismatch names the list). @default describeFailure */
  readonly explain?: (key: string, err: BlockfetchError) => FailureReport;
}

/**
 * Downloads the set's entries, shows the settled slots and every event,
 * prints the summary, and resolves to the exit code: 0 when every file is
 * done or skipped, else the most severe failure's; 130/143 when
 * interrupted.
 *
 * @example
 * ```ts
 * const view = createSetView(command.outputMode, io.stdout, io.stderr);
 * const code = await runSet([{ entry: { source: url, target: 'a.bin', key: 'a.bin' }, url }], { command, view, io, started: performance.now(), resume: 'blockfetch …' });
 * ```
 */
export async function runSet(slots: readonly SetSlot[], settings: SetRunSettings): Promise<ExitCodeValue> {
  const { command, view, io } = settings;
  const explain = settings.explain ?? ((_key: string, err: BlockfetchError): FailureReport => describeFailure(err));
  const entries: DownloadEntry[] = [];
  const entrySlot: number[] = [];
  const outcomes: (SetFileOutcome | undefined)[] = slots.map(() => undefined);
  for (const [i, slot] of slots.entries()) {
    if ('settled' in slot) {
      outcomes[i] = slot.settled;
      if (slot.settled.outcome === 'failed') view.failed(slot.settled.file, slot.settled.report);
      else if (slot.settled.outcome === 'skipped') view.skipped(slot.settled.file);
      continue;
    }
    if (view instanceof JsonSetView) view.setUrl(slot.entry.key, redactUrl(slot.url));
    entries.push(slot.entry);
    entrySlot.push(i);
  }
  const result =
    io.signal.aborted || entries.length === 0
      ? undefined
      : await downloadFiles(entries, {
          ...sharedDownloadOptions(command),
          maxConcurrentFiles: command.maxConcurrentFiles,
          ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
          timeoutMs: command.timeoutMs,
          ...(settings.dispatcher === undefined ? {} : { dispatcher: settings.dispatcher }),
          signal: io.signal,
          onEvent: (event) => show(event, view, command.concurrency, io.signal, explain),
        });
  for (const [n, f] of (result?.files ?? []).entries()) {
    outcomes[entrySlot[n] as number] =
      f.outcome === 'failed' ? { file: f.key, outcome: 'failed', report: explain(f.key, f.error) } : f.outcome === 'done' ? { file: f.key, outcome: 'done', result: f.result } : { file: f.key, outcome: f.outcome };
  }
  const note = await settings.afterDownloads?.();
  if (note !== undefined) view.note(note);
  const files = outcomes.map((o, i) => o ?? { file: fileName(slots[i] as SetSlot), outcome: 'not-started' as const });
  const interrupted = io.signal.aborted && io.signal.reason instanceof Interrupted ? io.signal.reason.signalName : undefined;
  const exitCode =
    interrupted !== undefined
      ? interrupted === 'SIGTERM'
        ? ExitCode.TERMINATED
        : ExitCode.INTERRUPTED
      : mostSevereExitCode([
          ...files.map((f) => (f.outcome === 'failed' ? f.report.exitCode : f.outcome === 'not-started' ? ExitCode.FAILURE : ExitCode.SUCCESS)),
          ...(settings.moreExitCodes ?? []),
        ]);
  view.finish({ files, exitCode, elapsedMs: Math.round(performance.now() - settings.started), interruptedBy: interrupted, resume: settings.resume });
  if (interrupted !== undefined && command.outputMode !== 'json') io.stderr.write(`blockfetch: interrupted by ${interrupted}; every partial download is saved\n`);
  return exitCode;
}

function fileName(slot: SetSlot): string {
  return 'settled' in slot ? slot.settled.file : slot.entry.key;
}

/** One event of the set, on the view. */
function show(
  event: DownloadFilesEvent,
  view: SetView,
  concurrency: number,
  signal: AbortSignal,
  explain: (key: string, err: BlockfetchError) => FailureReport,
): void {
  switch (event.type) {
    case 'file':
      view.fileEvent(event.key, event.event, concurrency);
      break;
    case 'file-skipped':
      view.skipped(event.key);
      break;
    case 'file-done':
      view.done(event.key, event.result);
      break;
    case 'file-failed':
      // An interrupted file is not a failure to list as it happens: the summary says it.
      if (!signal.aborted) view.failed(event.key, explain(event.key, event.error));
      break;
    case 'set-progress':
      view.total(event);
      break;
  }
}
