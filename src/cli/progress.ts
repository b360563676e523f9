/**
 * Showing a download's progress: a bar on a terminal, a line every few
 * seconds in a log, JSON lines for a program, or nothing.
 *
 * The command turns the downloader's events into {@link ProgressSnapshot}s
 * and calls one {@link ProgressView}; the views know nothing of downloading.
 * Everything goes to the stream given (stderr for people, so that stdout can
 * carry the file itself with `--stdout`).
 */
import cliProgress from 'cli-progress';

import type { DownloadStats } from '../download/stats.js';

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

/**
 * A progress bar redrawn in place on a terminal: bytes, percent, speed,
 * ETA and connections in flight. Retries and notes are printed above it.
 */
export class TerminalView implements ProgressView {
  readonly #stream: NodeJS.WriteStream;
  #bar: cliProgress.SingleBar | undefined;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  start(notice: StartNotice): void {
    // A restart (--restart after a change of the remote) starts again: one bar at a time.
    this.#bar?.stop();
    this.#stream.write(
      `${notice.url} -> ${notice.target}: ${formatBytes(notice.totalBytes)} in ${formatBytes(notice.blockSize)} blocks, ${notice.concurrency} connections\n`,
    );
    this.#bar = new cliProgress.SingleBar(
      {
        stream: this.#stream,
        format: ' {bar} {pct}% | {done} / {size} | {speed} | ETA {eta_text} | {conns} conn',
        barsize: 30,
        hideCursor: true,
        fps: 5,
        // The bar is drawn only to a terminal; other outputs get LineView.
        noTTYOutput: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(Math.max(notice.totalBytes, 1), notice.resumedBytes, this.#payload(undefined, notice.totalBytes, notice.resumedBytes));
  }

  update(snapshot: ProgressSnapshot): void {
    this.#bar?.update(snapshot.bytesDone, this.#payload(snapshot, snapshot.totalBytes, snapshot.bytesDone));
  }

  retry(notice: RetryNotice): void {
    this.note(retryLine(notice));
  }

  note(message: string): void {
    if (this.#bar === undefined) {
      this.#stream.write(`${message}\n`);
      return;
    }
    // Clear the bar's line, print the note, and let the bar redraw below it.
    this.#stream.write(`\r\u001b[2K${message}\n`);
    this.#bar.render();
  }

  done(notice: DoneNotice): void {
    this.#bar?.update(notice.totalBytes);
    this.#bar?.stop();
    this.#bar = undefined;
    this.#stream.write(`${doneLine(notice)}\n`);
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }

  #payload(snapshot: ProgressSnapshot | undefined, total: number, done: number): Record<string, string | number> {
    return {
      pct: percent(done, total).padStart(5),
      done: formatBytes(done),
      size: formatBytes(total),
      speed: snapshot ? formatRate(snapshot.bytesPerSecond).padStart(12) : '           -',
      eta_text: snapshot ? formatDuration(etaMs(snapshot)).padStart(6) : '     ?',
      conns: snapshot ? snapshot.activeConnections : 0,
    };
  }
}

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
    this.#stream.write(
      `${notice.url} -> ${notice.target}: ${formatBytes(notice.totalBytes)} in ${formatBytes(notice.blockSize)} blocks, ${notice.concurrency} connections\n`,
    );
  }

  update(snapshot: ProgressSnapshot): void {
    if (snapshot.elapsedMs - this.#lastLineAt < this.#intervalMs) return;
    this.#lastLineAt = snapshot.elapsedMs;
    this.#stream.write(
      `${percent(snapshot.bytesDone, snapshot.totalBytes)}% ${formatBytes(snapshot.bytesDone)} of ${formatBytes(snapshot.totalBytes)}, ` +
        `${formatRate(snapshot.bytesPerSecond)}, ETA ${formatDuration(etaMs(snapshot))}, ${snapshot.activeConnections} connections\n`,
    );
  }

  retry(notice: RetryNotice): void {
    this.#stream.write(`${retryLine(notice)}\n`);
  }

  note(message: string): void {
    this.#stream.write(`${message}\n`);
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
 * a final `done` (the command prints `error` itself when the run fails).
 * Field names are stable; see `docs/cli.md`.
 */
export class JsonView implements ProgressView {
  readonly #stream: NodeJS.WritableStream;
  readonly #intervalMs: number;
  #lastLineAt = -Infinity;

  /** @param intervalMs the least time between two progress lines. @default 1000 */
  constructor(stream: NodeJS.WritableStream, intervalMs = 1000) {
    this.#stream = stream;
    this.#intervalMs = intervalMs;
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
    this.#write({ type: 'note', message });
  }

  done(notice: DoneNotice): void {
    this.#write({ type: 'done', ...notice, digest: notice.digest ?? null });
  }

  stop(): void {}

  #write(object: Record<string, unknown>): void {
    this.#stream.write(`${JSON.stringify(object)}\n`);
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
