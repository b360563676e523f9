/**
 * Showing a set of files: on a terminal a total line and a line per
 * running file, redrawn in place; in a log a line per file that starts,
 * ends or fails and a total every few seconds; JSON lines that each name
 * their `file`; or nothing. The summary at the end lists every file.
 *
 * The views know nothing of downloading: the set command turns
 * `downloadFiles` events into these calls.
 */
import type { DownloadFileEvent, DownloadFileResult } from '../download-file.js';
import type { DownloadFilesProgress } from '../download-files.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { jsonLine } from './json-lines.js';
import { CLEAR_LINE, JsonView, REDRAW_MS, SnapshotMaker, SpeedMeter, TerminalCursor, doneNoticeOf, formatEta, type ProgressSnapshot } from './progress.js';
import type { FailureReport } from './report.js';
import { formatBytes, formatDuration, formatRate } from './units.js';

/** How one file of the set ended, for the summary. */
export type SetFileOutcome =
  | { readonly file: string; readonly outcome: 'done'; readonly result: DownloadFileResult }
  | { readonly file: string; readonly outcome: 'skipped' }
  | { readonly file: string; readonly outcome: 'failed'; readonly report: FailureReport }
  | { readonly file: string; readonly outcome: 'not-started' };

/** The end of a set: every file's outcome and the exit code. */
export interface SetSummary {
  readonly files: readonly SetFileOutcome[];
  readonly exitCode: ExitCodeValue;
  readonly elapsedMs: number;
  /** The interrupting signal, when the run was interrupted. */
  readonly interruptedBy: 'SIGINT' | 'SIGTERM' | undefined;
  /** The command that resumes the set (the same command, secrets redacted). */
  readonly resume: string;
}

/** Receives a set's progress and shows it somehow. */
export interface SetView {
  /** An event of one file's download. */
  fileEvent(file: string, event: DownloadFileEvent, concurrency: number): void;
  /** A file is already complete and is not downloaded again. */
  skipped(file: string): void;
  /** A file is finished. */
  done(file: string, result: DownloadFileResult): void;
  /** A file failed; the others go on. */
  failed(file: string, report: FailureReport): void;
  /** The set's totals changed. */
  total(progress: DownloadFilesProgress): void;
  /** A line for the person, about the set or one file. */
  note(message: string, file?: string): void;
  /** The set ended: stop drawing and print the summary. */
  finish(summary: SetSummary): void;
}

/** The view for an output mode: a terminal's, a log's, JSON lines, or quiet (failures only, in the summary). */
export function createSetView(mode: 'auto' | 'quiet' | 'json', stdout: NodeJS.WritableStream, stderr: NodeJS.WriteStream): SetView {
  if (mode === 'json') return new JsonSetView(stdout);
  if (mode === 'quiet') return new QuietSetView(stderr);
  return stderr.isTTY ? new TerminalSetView(stderr) : new LineSetView(stderr);
}

/** The summary's lines for a person: a count line, then one line per file (all of them, or only failures). */
export function summaryText(summary: SetSummary, onlyFailures = false): string {
  const count = (outcome: SetFileOutcome['outcome']): number => summary.files.filter((f) => f.outcome === outcome).length;
  const parts = [`${count('done')} done`, `${count('skipped')} skipped`, `${count('failed')} failed`];
  if (count('not-started') > 0) parts.push(`${count('not-started')} not started`);
  const lines: string[] = [];
  if (!onlyFailures) {
    lines.push(`summary: ${summary.files.length} file${summary.files.length === 1 ? '' : 's'} in ${formatDuration(summary.elapsedMs)}: ${parts.join(', ')} (exit status ${summary.exitCode})`);
  }
  for (const f of summary.files) {
    if (onlyFailures && f.outcome !== 'failed') continue;
    switch (f.outcome) {
      case 'done':
        lines.push(`  done     ${f.file} (${formatBytes(f.result.size)}${f.result.digest?.verified === true ? `, ${f.result.digest.algorithm} verified` : ''})`);
        break;
      case 'skipped':
        lines.push(`  skipped  ${f.file} (already complete)`);
        break;
      case 'failed':
        if (summary.interruptedBy !== undefined && f.report.code === 'BLOCKFETCH_ABORTED') {
          lines.push(`  stopped  ${f.file} (interrupted; its partial download is saved)`);
          break;
        }
        lines.push(`  failed   ${f.file}: exit ${f.report.exitCode}${f.report.code === undefined ? '' : ` ${f.report.code}`}: ${f.report.message}`);
        if (f.report.hint !== undefined) lines.push(`           hint: ${f.report.hint}`);
        break;
      case 'not-started':
        lines.push(`  waiting  ${f.file} (not started)`);
        break;
    }
  }
  // Only when running it again would help: an interruption, or a failure that says "resumable" (3).
  const resumable = summary.interruptedBy !== undefined || summary.files.some((f) => f.outcome === 'not-started' || (f.outcome === 'failed' && f.report.exitCode === ExitCode.NETWORK));
  if (resumable && !onlyFailures) lines.push(`resume with: ${summary.resume}`);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** What a person's view keeps of a running file. */
interface RunningFile {
  snapshots: SnapshotMaker;
  last: ProgressSnapshot | undefined;
  size: number;
}

/** The person's notes for a file's events (resuming, waiting for a lock, a discard, the first request's retries). */
function noteFor(event: DownloadFileEvent): string | undefined {
  switch (event.type) {
    case 'open':
      return event.resumedBytes > 0 ? `resuming: ${formatBytes(event.resumedBytes)} of ${formatBytes(event.size)} already on disk` : undefined;
    case 'lock-wait':
      return `waiting up to ${Math.round(event.waitMs / 1000)} s for another blockfetch on this file`;
    case 'discard':
      return `discarded the partial download (${event.reason.message}); starting over`;
    case 'look-retry':
      return `retrying the first request in ${formatDuration(event.delayMs)} (attempt ${event.attempt} failed: ${event.error.message})`;
    default:
      return undefined;
  }
}

/** The most running files drawn; more are counted on the last line. */
const MAX_FILE_LINES = 8;

/**
 * On a terminal: a block of lines redrawn in place, the set's total first
 * (files done of all, bytes, speed, connections), then one line per running
 * file (percent, bytes, speed). Notes and finished files are printed above
 * the block, which is drawn again below them.
 */
class TerminalSetView implements SetView {
  readonly #stream: NodeJS.WriteStream;
  readonly #running = new Map<string, RunningFile>();
  readonly #meter = new SpeedMeter();
  readonly #started = performance.now();
  #total: DownloadFilesProgress | undefined;
  #speed = 0;
  /** Lines of the block on screen now (the cursor is at the start of its last line). */
  #drawnLines = 0;
  #drawnAt = -Infinity;
  readonly #cursor: TerminalCursor;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
    this.#cursor = new TerminalCursor(stream);
  }

  fileEvent(file: string, event: DownloadFileEvent): void {
    const note = noteFor(event);
    if (note !== undefined) this.note(note, file);
    if (event.type === 'open') this.#running.set(file, { snapshots: new SnapshotMaker(), last: undefined, size: event.size });
    if (event.type === 'progress' || event.type === 'start' || event.type === 'retry') {
      const state = this.#running.get(file);
      if (state !== undefined) state.last = state.snapshots.make(event.stats);
      this.#draw(false);
    }
  }

  skipped(file: string): void {
    this.#above(`skipped: ${file} (already complete)`);
  }

  done(file: string, result: DownloadFileResult): void {
    this.#running.delete(file);
    this.#above(`done: ${file} (${formatBytes(result.size)})`);
  }

  failed(file: string, report: FailureReport): void {
    this.#running.delete(file);
    this.#above(`failed: ${file}: ${report.message}`);
  }

  total(progress: DownloadFilesProgress): void {
    this.#total = progress;
    this.#speed = this.#meter.sample(performance.now() - this.#started, progress.bytesThisRun);
    this.#draw(false);
  }

  note(message: string, file?: string): void {
    this.#above(file === undefined ? message : `${file}: ${message}`);
  }

  finish(summary: SetSummary): void {
    this.#erase();
    this.#cursor.show();
    this.#stream.write(summaryText(summary));
  }

  #above(line: string): void {
    this.#erase();
    this.#stream.write(`${line}\n`);
    this.#draw(true);
  }

  /** Erases the block: the cursor ends at the start of its first line. */
  #erase(): void {
    if (this.#drawnLines === 0) return;
    let out = CLEAR_LINE;
    for (let i = 1; i < this.#drawnLines; i++) out += `\u001b[1A${CLEAR_LINE}`;
    this.#stream.write(out);
    this.#drawnLines = 0;
  }

  #draw(force: boolean): void {
    const total = this.#total;
    if (total === undefined) return;
    const now = performance.now();
    if (!force && now - this.#drawnAt < REDRAW_MS) return;
    this.#drawnAt = now;
    this.#cursor.hide();
    const columns = (typeof this.#stream.columns === 'number' && this.#stream.columns > 0 ? this.#stream.columns : 80) - 1;
    const finished = total.done + total.skipped + total.failed;
    // "+": files not started yet have sizes not known yet.
    const more = finished + total.active < total.files ? '+' : '';
    const lines = [
      `total: ${finished}/${total.files} files${total.failed > 0 ? ` (${total.failed} failed)` : ''} | ${formatBytes(total.doneBytes)} / ${formatBytes(total.knownBytes)}${more} | ${formatRate(this.#speed)} | ${total.connections} conn`,
    ];
    let shown = 0;
    for (const [file, state] of this.#running) {
      if (shown === MAX_FILE_LINES) {
        lines.push(`  … and ${this.#running.size - shown} more`);
        break;
      }
      shown++;
      const s = state.last;
      const pct = s === undefined ? '  0.0' : (s.totalBytes === 0 ? 100 : (s.bytesDone * 100) / s.totalBytes).toFixed(1).padStart(5);
      const eta = s === undefined || s.bytesPerSecond <= 0 ? '?' : formatEta(((s.totalBytes - s.bytesDone) * 1000) / s.bytesPerSecond);
      const stats = `${pct}% ${formatBytes(s?.bytesDone ?? 0)} / ${formatBytes(state.size)} | ${formatRate(s?.bytesPerSecond ?? 0)} | ETA ${eta}`;
      const room = Math.max(8, columns - stats.length - 4);
      lines.push(`  ${ellipsize(file, room).padEnd(Math.min(room, 30))}  ${stats}`);
    }
    const text = lines.map((l) => (l.length > columns ? l.slice(0, columns) : l));
    this.#erase();
    this.#stream.write(text.join('\n'));
    this.#drawnLines = text.length;
  }
}

function ellipsize(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}

/** In a log: a line per file that starts resumed, ends or fails, and the total every `intervalMs`. */
class LineSetView implements SetView {
  readonly #stream: NodeJS.WritableStream;
  readonly #intervalMs: number;
  readonly #meter = new SpeedMeter();
  readonly #started = performance.now();
  #lastLineAt = 0;

  constructor(stream: NodeJS.WritableStream, intervalMs = 5000) {
    this.#stream = stream;
    this.#intervalMs = intervalMs;
  }

  fileEvent(file: string, event: DownloadFileEvent): void {
    const note = noteFor(event);
    if (note !== undefined) this.note(note, file);
  }

  skipped(file: string): void {
    this.#stream.write(`skipped: ${file} (already complete)\n`);
  }

  done(file: string, result: DownloadFileResult): void {
    this.#stream.write(`done: ${file} (${formatBytes(result.size)}; fetched ${formatBytes(result.stats.downloadedBytes)} in ${formatDuration(result.durationMs)})\n`);
  }

  failed(file: string, report: FailureReport): void {
    this.#stream.write(`failed: ${file}: ${report.message}\n`);
  }

  total(progress: DownloadFilesProgress): void {
    const now = performance.now() - this.#started;
    const speed = this.#meter.sample(now, progress.bytesThisRun);
    if (now - this.#lastLineAt < this.#intervalMs) return;
    this.#lastLineAt = now;
    const finished = progress.done + progress.skipped + progress.failed;
    this.#stream.write(`total: ${finished}/${progress.files} files, ${formatBytes(progress.doneBytes)} of ${formatBytes(progress.knownBytes)} known, ${formatRate(speed)}, ${progress.active} running\n`);
  }

  note(message: string, file?: string): void {
    this.#stream.write(`${file === undefined ? '' : `${file}: `}${message}\n`);
  }

  finish(summary: SetSummary): void {
    this.#stream.write(summaryText(summary));
  }
}

/** `--quiet`: nothing but the failures, at the end. */
class QuietSetView implements SetView {
  readonly #stream: NodeJS.WritableStream;
  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }
  fileEvent(): void {}
  skipped(): void {}
  done(): void {}
  failed(): void {}
  total(): void {}
  note(): void {}
  finish(summary: SetSummary): void {
    this.#stream.write(summaryText(summary, true));
  }
}

/**
 * `--json`: each file's lines as for one file (`start`, `progress`, `retry`,
 * `note`, `done`, `error`), each with a `file` field; `skipped` for a file
 * already complete; `set-progress` totals at most every second; and a last
 * `summary` line with every file's outcome and the exit status.
 */
class JsonSetView implements SetView {
  readonly #stream: NodeJS.WritableStream;
  readonly #files = new Map<string, { view: JsonView; snapshots: SnapshotMaker; url: string }>();
  readonly #urls = new Map<string, string>();
  #lastTotalAt = -Infinity;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  /** The URL (redacted) a file's `start` line shows. */
  setUrl(file: string, url: string): void {
    this.#urls.set(file, url);
  }

  fileEvent(file: string, event: DownloadFileEvent, concurrency: number): void {
    let state = this.#files.get(file);
    if (state === undefined) {
      state = { view: new JsonView(this.#stream, 1000, { file }), snapshots: new SnapshotMaker(), url: this.#urls.get(file) ?? '' };
      this.#files.set(file, state);
    }
    const note = noteFor(event);
    if (note !== undefined) state.view.note(note);
    switch (event.type) {
      case 'open':
        state.snapshots = new SnapshotMaker();
        state.view.start({ url: state.url, target: event.paths.target, totalBytes: event.size, blockSize: event.blockSize, concurrency, resumedBytes: event.resumedBytes });
        break;
      case 'start':
      case 'progress':
        state.view.update(state.snapshots.make(event.stats));
        break;
      case 'retry': {
        const snapshot = state.snapshots.make(event.stats);
        state.view.retry({ from: event.range.from, to: event.range.to, attempt: event.attempt, delayMs: event.delayMs, reason: event.error.message, code: event.error.code }, snapshot);
        break;
      }
      default:
        break;
    }
  }

  skipped(file: string): void {
    this.#stream.write(jsonLine({ type: 'skipped', file, outcome: 'already-complete' }));
  }

  done(file: string, result: DownloadFileResult): void {
    const view = this.#files.get(file)?.view ?? new JsonView(this.#stream, 1000, { file });
    view.done(doneNoticeOf(result));
  }

  failed(file: string, report: FailureReport): void {
    this.#stream.write(
      jsonLine({ type: 'error', file, outcome: 'failed', code: report.code ?? null, message: report.message, hint: report.hint ?? null, exitCode: report.exitCode }),
    );
  }

  total(progress: DownloadFilesProgress): void {
    const now = performance.now();
    const finished = progress.done + progress.skipped + progress.failed === progress.files;
    if (!finished && now - this.#lastTotalAt < 1000) return;
    this.#lastTotalAt = now;
    const { files, done, skipped, failed, active, doneBytes, knownBytes, bytesThisRun, connections } = progress;
    this.#stream.write(jsonLine({ type: 'set-progress', files, done, skipped, failed, active, doneBytes, knownBytes, bytesThisRun, connections }));
  }

  note(message: string, file?: string): void {
    this.#stream.write(jsonLine({ type: 'note', ...(file === undefined ? {} : { file }), message }));
  }

  finish(summary: SetSummary): void {
    const outcome = summary.interruptedBy !== undefined ? 'interrupted' : summary.exitCode === ExitCode.SUCCESS ? 'complete' : 'failed';
    this.#stream.write(
      jsonLine({
        type: 'summary',
        outcome,
        exitCode: summary.exitCode,
        elapsedMs: summary.elapsedMs,
        files: summary.files.map((f) =>
          f.outcome === 'failed' ? { file: f.file, outcome: f.outcome, code: f.report.code ?? null, exitCode: f.report.exitCode } : { file: f.file, outcome: f.outcome },
        ),
        ...(summary.exitCode === ExitCode.SUCCESS ? {} : { resume: summary.resume }),
      }),
    );
  }
}

export { JsonSetView };
