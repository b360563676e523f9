/**
 * Showing a download's progress: a bar on a terminal, a line every few
 * seconds in a log, JSON lines for a program, or nothing.
 *
 * The command turns the downloader's events into {@link ProgressSnapshot}s
 * and calls one {@link ProgressView}; the views know nothing of downloading.
 * Everything goes to the stream given (stderr for people, so that stdout can
 * carry the file itself with `--stdout`).
 */
import type { DownloadFileResult } from '../download-file.js';
import type { DownloadStats } from '../download/stats.js';

import { jsonLine, type JsonOutcome } from './json-lines.js';
import { formatBytes, formatDuration, formatRate } from './units.js';

/** Where a download stands, at one moment. Immutable. */
export interface ProgressSnapshot {
  /** Bytes of the file on disk and verified so far, including earlier runs. */
  readonly bytesDone: number;
  /** The file's size. */
  readonly totalBytes: number;
  /** Bytes fetched by this run (not counting what an earlier run left on disk). */
  readonly bytesThisRun: number;
  /** Milliseconds since this run started. */
  readonly elapsedMs: number;
  /** Recent speed, bytes per second (over the last few seconds). */
  readonly bytesPerSecond: number;
  /** Requests in flight now. */
  readonly activeConnections: number;
  /** Retries so far in this run. */
  readonly retries: number;
}

/** One retry, as the downloader reported it. */
export interface RetryNotice {
  /** The first byte of the range that failed; -1 for the first request (the look at the remote). */
  readonly from: number;
  /** The last byte of that range (inclusive). */
  readonly to: number;
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  /** How long before the next attempt, in ms. */
  readonly delayMs: number;
  /** Why, in one line (the error's message). */
  readonly reason: string;
  /** The error's code, if it had one. */
  readonly code: string | undefined;
}

/** What the view is told when the download starts. */
export interface StartNotice {
  /** The URL, credentials removed. */
  readonly url: string;
  /** Where the file goes, or `-` for stdout. */
  readonly target: string;
  /** The file's size. */
  readonly totalBytes: number;
  /** The block size in bytes. */
  readonly blockSize: number;
  /** Requests at once, as asked. */
  readonly concurrency: number;
  /** Bytes already on disk from an earlier run. */
  readonly resumedBytes: number;
}

/** The final status of a successful run. */
export interface DoneNotice {
  /** The finished file, or `-` for stdout. */
  readonly target: string;
  /** The file's size. */
  readonly totalBytes: number;
  /** Bytes this run fetched. */
  readonly bytesThisRun: number;
  /** How long this run took, in ms. */
  readonly elapsedMs: number;
  /** The digest that was verified, if any. */
  readonly digest: { readonly algorithm: string; readonly hex: string } | undefined;
}

/** The {@link DoneNotice} of a finished {@link downloadFile}: one place for every view that shows a finished file. */
export function doneNoticeOf(result: DownloadFileResult): DoneNotice {
  return {
    target: result.target,
    totalBytes: result.size,
    bytesThisRun: result.stats.downloadedBytes,
    elapsedMs: result.durationMs,
    digest: result.digest?.verified === true ? { algorithm: result.digest.algorithm, hex: result.digest.hex } : undefined,
  };
}

/** Receives a download's progress and shows it somehow. */
export interface ProgressView {
  /** The download is set up (called again after a restart). */
  start(notice: StartNotice): void;
  /** Progress; called often (every 250 ms), so a view throttles itself. */
  update(snapshot: ProgressSnapshot): void;
  /** A request failed and will be retried. */
  retry(notice: RetryNotice, snapshot: ProgressSnapshot): void;
  /** A line for the person (e.g. "resuming: 40% already on disk"). Views for programs ignore it. */
  note(message: string): void;
  /** The run succeeded. */
  done(notice: DoneNotice): void;
  /** The run ended without success; the view stops drawing (the error is printed by the caller). */
  stop(snapshot: ProgressSnapshot | undefined): void;
}

/**
 * Measures speed over a sliding window of recent samples, so that the rate
 * shown follows the link now rather than the average since the start (which
 * lags after a stall or a burst from a resumed run).
 */
export class SpeedMeter {
  readonly #windowMs: number;
  readonly #samples: { at: number; bytes: number }[] = [];

  /** @param windowMs how far back to look. @default 5000 */
  constructor(windowMs = 5000) {
    this.#windowMs = windowMs;
  }

  /** Records that `bytes` (a running total) were reached at time `at` (ms) and returns the rate in bytes/s. */
  sample(at: number, bytes: number): number {
    this.#samples.push({ at, bytes });
    while (this.#samples.length > 2 && (this.#samples[1]?.at ?? at) <= at - this.#windowMs) this.#samples.shift();
    const first = this.#samples[0];
    if (first === undefined || at <= first.at) return 0;
    return ((bytes - first.bytes) * 1000) / (at - first.at);
  }
}

/** Turns the downloaders' statistics into what the views show, with a windowed speed. */
export class SnapshotMaker {
  readonly #meter = new SpeedMeter();
  /** The view's snapshot of `stats`, sampling the speed meter. */
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

/** Milliseconds until done at the given speed, or Infinity. */
export function etaMs(snapshot: ProgressSnapshot): number {
  const remaining = snapshot.totalBytes - snapshot.bytesDone;
  if (remaining <= 0) return 0;
  return snapshot.bytesPerSecond > 0 ? (remaining * 1000) / snapshot.bytesPerSecond : Infinity;
}

function percent(done: number, total: number): string {
  return total === 0 ? '100.0' : ((done * 100) / total).toFixed(1);
}

/** A view that shows nothing (`--quiet`). */
export class QuietView implements ProgressView {
  start(): void {}
  update(): void {}
  retry(): void {}
  note(): void {}
  done(): void {}
  stop(): void {}
}

/** Hides the terminal's cursor. */
const HIDE_CURSOR = '\u001b[?25l';
/** Shows the terminal's cursor again. */
const SHOW_CURSOR = '\u001b[?25h';
/** Back to the start of the line and erase it. */
export const CLEAR_LINE = '\r\u001b[2K';
/** The least time between two redraws of a terminal view (the bar, the set's block). */
export const REDRAW_MS = 200;

/**
 * A terminal's cursor while a view draws on it: hidden with
 * {@link TerminalCursor.hide}, shown again with {@link TerminalCursor.show},
 * and, should the process end without that (an uncaught exception,
 * `process.exit` after a second Ctrl-C), from `uncaughtExceptionMonitor`
 * and `exit` listeners held only while it is hidden. The one terminal
 * view and the set's view both draw through one.
 *
 * @example
 * ```ts
 * const cursor = new TerminalCursor(process.stderr);
 * cursor.hide(); // ... draw ...
 * cursor.show();
 * ```
 */
export class TerminalCursor {
  readonly #stream: NodeJS.WritableStream;
  #hidden = false;
  readonly #restoreOnExit = (): void => {
    // On the way out the line holds a half-drawn view: end it, give the cursor back.
    if (this.#hidden) this.#stream.write(`\n${SHOW_CURSOR}`);
    this.#hidden = false;
  };

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  hide(): void {
    if (this.#hidden) return;
    this.#hidden = true;
    this.#stream.write(HIDE_CURSOR);
    process.on('exit', this.#restoreOnExit);
    process.on('uncaughtExceptionMonitor', this.#restoreOnExit);
  }

  show(): void {
    process.off('exit', this.#restoreOnExit);
    process.off('uncaughtExceptionMonitor', this.#restoreOnExit);
    if (!this.#hidden) return;
    this.#hidden = false;
    this.#stream.write(SHOW_CURSOR);
  }
}
/** The bar's width bounds, in columns (it takes what the fields leave). */
const BAR_MIN = 10;
const BAR_MAX = 30;

/**
 * A progress bar redrawn in place on a terminal: bar, percent, bytes,
 * speed, ETA and connections in flight, laid out by priority for the
 * terminal's width (percent and ETA first, the bar last), so that nothing
 * important falls off a narrow window. Retries and notes are printed above
 * it; the final line replaces it whole.
 *
 * The cursor is hidden while the bar is drawn and shown again on every way
 * out: `done`, `stop`, and, should the process end without either (an
 * uncaught exception, `process.exit` after a second Ctrl-C), from
 * `uncaughtExceptionMonitor` and `exit` listeners held only while the bar
 * is up.
 */
export class TerminalView implements ProgressView {
  readonly #stream: NodeJS.WriteStream;
  #notice: StartNotice | undefined;
  #last: ProgressSnapshot | undefined;
  #drawnAt = -Infinity;
  readonly #cursor: TerminalCursor;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
    this.#cursor = new TerminalCursor(stream);
  }

  start(notice: StartNotice): void {
    // A restart (--restart after a change of the remote) starts again: one bar at a time.
    if (this.#notice !== undefined) this.#stream.write(CLEAR_LINE);
    this.#stream.write(`${fitToWidth(headerLine(notice, this.#columns()), this.#columns())}\n`);
    this.#notice = notice;
    this.#last = undefined;
    this.#cursor.hide();
    this.#draw(true);
  }

  update(snapshot: ProgressSnapshot): void {
    this.#last = snapshot;
    this.#draw(false);
  }

  retry(notice: RetryNotice): void {
    this.#above(retryLine(notice));
  }

  note(message: string): void {
    this.#above(noteLine(message));
  }

  /** Prints `line` above the bar: erase the bar's line, print, redraw the bar below it. */
  #above(line: string): void {
    if (this.#notice === undefined) {
      this.#stream.write(`${line}\n`);
      return;
    }
    this.#stream.write(`${CLEAR_LINE}${line}\n`);
    this.#draw(true);
  }

  done(notice: DoneNotice): void {
    // The final line replaces the bar whole: nothing of it is left at the end of the line.
    this.#stream.write(`${CLEAR_LINE}${doneLine(notice)}\n`);
    this.#notice = undefined;
    this.#cursor.show();
  }

  stop(): void {
    // The bar stays as it last was (what was reached); the error goes below it.
    if (this.#notice !== undefined) this.#stream.write('\n');
    this.#notice = undefined;
    this.#cursor.show();
  }

  #columns(): number {
    const columns = this.#stream.columns;
    // Writing into the last column makes some terminals wrap: keep it free.
    return (typeof columns === 'number' && columns > 0 ? columns : 80) - 1;
  }

  #draw(force: boolean): void {
    const notice = this.#notice;
    if (notice === undefined) return;
    const now = performance.now();
    if (!force && now - this.#drawnAt < REDRAW_MS) return;
    this.#drawnAt = now;
    this.#stream.write(`\r${barLine(notice, this.#last, this.#columns())}\u001b[K`);
  }
}

/**
 * The bar's line for `columns` columns: the fields that fit, in order of
 * priority (percent, ETA, speed, connections, bytes), shown in their usual
 * order, and the bar itself only when at least {@link BAR_MIN} columns are
 * left for it.
 *
 * @example
 * ```ts
 * barLine(notice, snapshot, 79); // ' [██████░░░░…]  40.0% | 40.0 MiB / 100 MiB | 10.0 MiB/s | ETA 6s | 8 conn'
 * barLine(notice, snapshot, 30); // ' 40.0% | 10.0 MiB/s | ETA 6s'
 * ```
 */
export function barLine(notice: StartNotice, snapshot: ProgressSnapshot | undefined, columns: number): string {
  const total = snapshot?.totalBytes ?? notice.totalBytes;
  const done = snapshot?.bytesDone ?? notice.resumedBytes;
  const fields = [
    { order: 0, priority: 0, text: `${percent(done, total).padStart(5)}%` },
    { order: 1, priority: 4, text: `${formatBytes(done)} / ${formatBytes(total)}` },
    { order: 2, priority: 2, text: snapshot ? formatRate(snapshot.bytesPerSecond).padStart(12) : '           -' },
    { order: 3, priority: 1, text: `ETA ${(snapshot ? formatEta(etaMs(snapshot)) : '?').padStart(6)}` },
    { order: 4, priority: 3, text: `${snapshot ? snapshot.activeConnections : 0} conn` },
  ];
  const SEPARATOR = ' | ';
  const kept: typeof fields = [];
  let width = 1; // the leading space
  for (const field of [...fields].sort((a, b) => a.priority - b.priority)) {
    const more = field.text.length + (kept.length === 0 ? 0 : SEPARATOR.length);
    if (width + more > columns) break;
    kept.push(field);
    width += more;
  }
  const text = kept
    .sort((a, b) => a.order - b.order)
    .map((f) => f.text)
    .join(SEPARATOR);
  const room = columns - width - 1;
  if (room < BAR_MIN) return ` ${text}`.slice(0, Math.max(columns, 0));
  const size = Math.min(room, BAR_MAX);
  const filled = total === 0 ? size : Math.min(size, Math.floor((done * size) / total));
  return ` ${'\u2588'.repeat(filled)}${'\u2591'.repeat(size - filled)} ${text}`;
}

/**
 * An ETA in one stable format: whole seconds up to a minute, then minutes
 * and seconds, then hours and minutes (`7s`, `4m05s`, `2h03m`), rounded up
 * so that it reaches `0s` only when done; `?` when unknown.
 *
 * @example
 * ```ts
 * formatEta(985); // '1s'
 * formatEta(4700); // '5s'
 * formatEta(245_000); // '4m05s'
 * formatEta(Infinity); // '?'
 * ```
 */
export function formatEta(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const whole = Math.ceil(ms / 1000);
  if (whole < 60) return `${whole}s`;
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/**
 * A URL for a person's eye: host and the tail of the path, the query (a
 * presigned URL's hundreds of characters of signature) and the fragment
 * dropped, and the path shortened from the left with `…` to fit `max`
 * characters. The target's name usually says which file it is; the URL
 * line says where from.
 *
 * @example
 * ```ts
 * displayUrl('https://bucket.s3.amazonaws.com/a/b/big.iso?X-Amz-Signature=REDACTED&X-Amz-Credential=...', 60);
 * // 'https://bucket.s3.amazonaws.com/a/b/big.iso'
 * displayUrl('https://h.example/very/long/path/to/the/file.iso', 30); // 'https://h.example/…/file.iso'
 * ```
 */
export function displayUrl(url: string, max: number): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return ellipsize(url, max);
  }
  const origin = `${parsed.protocol}//${parsed.host}`;
  const path = parsed.pathname === '/' ? '' : parsed.pathname;
  if (origin.length + path.length <= max) return origin + path;
  // Keep the last segments that fit after `origin/…`.
  const segments = path.split('/').filter((s) => s !== '');
  let tail = '';
  for (let i = segments.length - 1; i >= 0; i--) {
    const next = `/${segments[i] ?? ''}${tail}`;
    if (origin.length + 2 + next.length > max) break;
    tail = next;
  }
  if (tail === '') return ellipsize(`${origin}/${segments.at(-1) ?? ''}`, max);
  return `${origin}/…${tail}`;
}

/** `text` cut to `max` characters, the cut marked with `…` in the middle. */
function ellipsize(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 1) return text.slice(0, Math.max(max, 0));
  const head = Math.ceil((max - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (max - 1 - head))}`;
}

/** A line no longer than `columns` (cut in the middle). */
function fitToWidth(line: string, columns: number): string {
  return ellipsize(line, columns);
}

/** `1 connection`, `8 connections`. */
function connections(n: number): string {
  return `${n} ${n === 1 ? 'connection' : 'connections'}`;
}

/** The first line: where from, where to, how big, how. The URL takes what the rest leaves of `columns`. */
function headerLine(notice: StartNotice, columns: number): string {
  const rest = ` -> ${notice.target}: ${formatBytes(notice.totalBytes)} in ${formatBytes(notice.blockSize)} blocks, ${connections(notice.concurrency)}`;
  return `${displayUrl(notice.url, Math.max(columns - rest.length, 40))}${rest}`;
}

/** A note for a person: one `note: ` prefix, whatever the message. */
function noteLine(message: string): string {
  return `note: ${withoutNotePrefix(message)}`;
}

/** `message` without a `note: ` of its own (the view adds the one prefix, or the JSON type says it). */
function withoutNotePrefix(message: string): string {
  return message.replace(/^(?:note:\s*)+/i, '');
}

/** The longest URL a {@link LineView}'s first line shows. */
const LOG_URL_MAX = 200;

/**
 * One line of progress every `intervalMs`, for logs and pipes where a bar
 * that redraws itself would fill the file with carriage returns.
 */
export class LineView implements ProgressView {
  readonly #stream: NodeJS.WritableStream;
  readonly #intervalMs: number;
  // The first line comes one interval in: a line of zeros at the start says nothing.
  #lastLineAt = 0;

  /** @param intervalMs the least time between two progress lines. @default 5000 */
  constructor(stream: NodeJS.WritableStream, intervalMs = 5000) {
    this.#stream = stream;
    this.#intervalMs = intervalMs;
  }

  start(notice: StartNotice): void {
    // A log is not a terminal: no width to fit, but no query string of a presigned URL either.
    this.#stream.write(`${headerLine(notice, LOG_URL_MAX)}\n`);
  }

  update(snapshot: ProgressSnapshot): void {
    if (snapshot.elapsedMs - this.#lastLineAt < this.#intervalMs) return;
    this.#lastLineAt = snapshot.elapsedMs;
    this.#stream.write(
      `${percent(snapshot.bytesDone, snapshot.totalBytes)}% ${formatBytes(snapshot.bytesDone)} of ${formatBytes(snapshot.totalBytes)}, ` +
        `${formatRate(snapshot.bytesPerSecond)}, ETA ${formatEta(etaMs(snapshot))}, ${connections(snapshot.activeConnections)}\n`,
    );
  }

  retry(notice: RetryNotice): void {
    this.#stream.write(`${retryLine(notice)}\n`);
  }

  note(message: string): void {
    this.#stream.write(`${noteLine(message)}\n`);
  }

  done(notice: DoneNotice): void {
    this.#stream.write(`${doneLine(notice)}\n`);
  }

  stop(): void {}
}

/**
 * One JSON object per line (`--json`): `{"type":"start",...}`, then
 * `progress` at most every `intervalMs`, `retry` for each retry, `note` for
 * what a person would be told (resuming, waiting for a lock, a restart), and
 * a final `done` with `"outcome": "complete"` (the command prints the
 * `error` or `interrupted` line itself when the run does not finish). Every
 * line starts with `schemaVersion` and `time` ({@link jsonLine}); the
 * fields are in `docs/cli-json.schema.json` and `docs/cli.md`.
 */
export class JsonView implements ProgressView {
  readonly #stream: NodeJS.WritableStream;
  readonly #intervalMs: number;
  readonly #extra: Readonly<Record<string, unknown>>;
  #lastLineAt = -Infinity;

  /**
   * @param intervalMs the least time between two progress lines. @default 1000
   * @param extra fields every line carries after `type` (a set's `file`). @default {}
   */
  constructor(stream: NodeJS.WritableStream, intervalMs = 1000, extra: Readonly<Record<string, unknown>> = {}) {
    this.#stream = stream;
    this.#intervalMs = intervalMs;
    this.#extra = extra;
  }

  start(notice: StartNotice): void {
    this.#write({ type: 'start', ...notice });
  }

  update(snapshot: ProgressSnapshot): void {
    if (snapshot.elapsedMs - this.#lastLineAt < this.#intervalMs) return;
    this.#lastLineAt = snapshot.elapsedMs;
    this.#write({ type: 'progress', ...snapshot, bytesPerSecond: Math.round(snapshot.bytesPerSecond), etaMs: finiteOrNull(etaMs(snapshot)) });
  }

  retry(notice: RetryNotice, snapshot: ProgressSnapshot): void {
    this.#write({ type: 'retry', ...notice, retries: snapshot.retries });
  }

  note(message: string): void {
    // Resuming, waiting for a lock, a discarded partial download: a program may log them.
    this.#write({ type: 'note', message: withoutNotePrefix(message) });
  }

  done(notice: DoneNotice): void {
    this.#write({ type: 'done', outcome: 'complete' satisfies JsonOutcome, ...notice, digest: notice.digest ?? null });
  }

  stop(): void {}

  #write(object: Record<string, unknown>): void {
    this.#stream.write(jsonLine({ type: object['type'], ...this.#extra, ...object }));
  }
}

function finiteOrNull(n: number): number | null {
  return Number.isFinite(n) ? Math.round(n) : null;
}

function retryLine(notice: RetryNotice): string {
  const what = notice.from < 0 ? 'the first request' : `bytes ${notice.from}-${notice.to}`;
  return `retrying ${what} in ${formatDuration(notice.delayMs)} (attempt ${notice.attempt} failed: ${notice.reason})`;
}

function doneLine(notice: DoneNotice): string {
  const seconds = Math.max(notice.elapsedMs, 1) / 1000;
  const digest = notice.digest ? `, ${notice.digest.algorithm} verified` : '';
  return `done: ${notice.target} (${formatBytes(notice.totalBytes)}; fetched ${formatBytes(notice.bytesThisRun)} in ${formatDuration(
    notice.elapsedMs,
  )}, ${formatRate(notice.bytesThisRun / seconds)}${digest})`;
}

/**
 * The view for an output mode and a stream: a bar on a terminal, lines
 * otherwise; JSON or nothing when asked.
 */
export function createProgressView(mode: 'auto' | 'quiet' | 'json', stream: NodeJS.WriteStream): ProgressView {
  if (mode === 'quiet') return new QuietView();
  if (mode === 'json') return new JsonView(stream);
  return stream.isTTY ? new TerminalView(stream) : new LineView(stream);
}
