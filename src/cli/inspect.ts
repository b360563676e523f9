/**
 * `blockfetch inspect <FILE|INDEX>`: what a download's index says, for a
 * person or (with `--json`) for a program.
 *
 * Read-only and lock-free, so it works while another process is
 * downloading: the index is only ever replaced whole by a rename, so a read
 * sees either the previous complete index or the next one, never a torn
 * file.
 */
import { currentBootId } from '../cache/boot-id.js';
import { nodeFileSystem, statOrUndefined } from '../cache/file.js';
import { IndexFile } from '../cache/index-file.js';
import { decodeIndex, MAX_INDEX_BYTES } from '../cache/index-format.js';
import { rangesOnResume } from '../cache/local-download-cache.js';
import type { RemoteIdentity } from '../cache/types.js';
import { pathsFromAnyName } from '../download-file.js';
import { BlockfetchError, redactUrl } from '../errors.js';
import { formatBytes, formatDuration } from './units.js';

/** What `inspect` found. Field names are stable (`--json` prints this object). */
export interface InspectReport {
  /** `partial`: a download in progress (or interrupted); `complete`: only the finished target exists. */
  readonly state: 'partial' | 'complete';
  readonly target: string;
  readonly partialFile: string;
  readonly indexFile: string;
  /** The file's size in bytes. */
  readonly size: number;
  /** Block size in bytes (0 when `complete`). */
  readonly blockSize: number;
  readonly blocks: number;
  readonly doneBlocks: number;
  readonly doneBytes: number;
  /** 0 to 100, one decimal. */
  readonly percentDone: number;
  /** What is still missing, as maximal runs of adjacent blocks: inclusive byte ranges. */
  readonly outstanding: readonly { readonly from: number; readonly to: number }[];
  /** The remote revision the bytes belong to, if recorded. */
  readonly remote: RemoteIdentity | null;
  /** When the index was last written (ISO 8601), or the target's mtime when `complete`. */
  readonly updatedAt: string;
  /** Whether the partial data file exists and its size. */
  readonly partialFileSize: number | null;
}

/**
 * Reads the download state of `path` (the target, its `.blockfetch` partial
 * file or its `.blockfetch.json` index).
 *
 * @throws {BlockfetchError} `BLOCKFETCH_CACHE_MISSING` when there is neither
 *   an index nor a finished file; an `IndexError` when the index cannot be
 *   trusted.
 */
export async function inspectDownload(path: string): Promise<InspectReport> {
  const paths = pathsFromAnyName(path);
  let bytes: Uint8Array;
  try {
    // O_NOFOLLOW, O_NONBLOCK, regular files only, size-capped: a link or a
    // FIFO planted at the index path is refused (BLOCKFETCH_UNSAFE_PATH).
    bytes = await nodeFileSystem.readFile(paths.index, MAX_INDEX_BYTES);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const target = await statOrUndefined(paths.target);
    if (target?.isFile()) {
      return {
        state: 'complete',
        target: paths.target,
        partialFile: paths.partial,
        indexFile: paths.index,
        size: target.size,
        blockSize: 0,
        blocks: 0,
        doneBlocks: 0,
        doneBytes: target.size,
        percentDone: 100,
        outstanding: [],
        remote: null,
        updatedAt: target.mtime.toISOString(),
        partialFileSize: null,
      };
    }
    if ((await statOrUndefined(paths.partial)) !== undefined) {
      throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `${paths.partial} exists but its index ${paths.index} does not`, {
        hint: 'without its index nothing in it is known to be complete: the next download of it starts over',
        cause: err,
      });
    }
    throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `no download found at ${paths.target}: ${paths.index} does not exist`, {
      hint: 'give the target file, its .blockfetch partial file or its .blockfetch.json index',
      cause: err,
    });
  }
  const contents = decodeIndex(bytes, paths.index);
  // What a resume on this machine keeps: the fsynced blocks, and on this
  // boot those written since (the index's `written`, the live index).
  const ranges = await rangesOnResume(new IndexFile(paths.index), contents, currentBootId());
  const partial = await statOrUndefined(paths.partial);
  return {
    state: 'partial',
    target: paths.target,
    partialFile: paths.partial,
    indexFile: paths.index,
    size: contents.contentLength,
    blockSize: contents.blockSize,
    blocks: contents.numBlocks,
    doneBlocks: ranges.setCount,
    doneBytes: ranges.setBytes,
    percentDone: contents.contentLength === 0 ? 100 : Math.floor((ranges.setBytes * 1000) / contents.contentLength) / 10,
    outstanding: [...ranges.clearRuns()].map(({ from, to }) => ({ from, to })),
    // Redacted again: an index written by an older blockfetch, or planted,
    // may hold a URL with its secrets.
    remote: contents.remote === undefined ? null : redactedRemote(contents.remote),
    updatedAt: contents.updatedAt,
    partialFileSize: partial?.isFile() ? partial.size : null,
  };
}

/** How many outstanding runs the human format lists before "... and N more". */
export const MAX_RUNS_SHOWN = 8;

/** The report for a person: one `label: value` per line. */
export function formatInspectReport(report: InspectReport, now: Date = new Date()): string {
  const lines: string[] = [];
  const row = (label: string, value: string): void => {
    lines.push(`${`${label}:`.padEnd(13)} ${value}`);
  };
  if (report.state === 'complete') {
    row('target', report.target);
    row('state', 'complete (no download in progress)');
    row('size', `${formatBytes(report.size)} (${report.size} bytes)`);
    row('modified', `${report.updatedAt}${ago(report.updatedAt, now)}`);
    return `${lines.join('\n')}\n`;
  }
  row('target', report.target);
  row('partial', report.partialFileSize === null ? `${report.partialFile} (missing!)` : report.partialFile);
  row('index', report.indexFile);
  row('size', `${formatBytes(report.size)} (${report.size} bytes)`);
  row('block size', `${formatBytes(report.blockSize)} (${report.blocks} blocks)`);
  row('done', `${report.percentDone.toFixed(1)}% (${report.doneBlocks} of ${report.blocks} blocks, ${formatBytes(report.doneBytes)})`);
  if (report.outstanding.length === 0) {
    row('outstanding', 'none: every block is on disk');
  } else {
    const missing = report.size - report.doneBytes;
    row('outstanding', `${formatBytes(missing)} in ${report.outstanding.length} run${report.outstanding.length === 1 ? '' : 's'}`);
    for (const run of report.outstanding.slice(0, MAX_RUNS_SHOWN)) {
      lines.push(`${' '.repeat(14)}bytes ${run.from}-${run.to} (${formatBytes(run.to - run.from + 1)})`);
    }
    if (report.outstanding.length > MAX_RUNS_SHOWN) {
      lines.push(`${' '.repeat(14)}... and ${report.outstanding.length - MAX_RUNS_SHOWN} more (--json lists all)`);
    }
  }
  if (report.remote === null) {
    row('remote', '(not recorded yet)');
  } else {
    row('remote', report.remote.url);
    if (report.remote.etag !== undefined) row('etag', report.remote.etag);
    if (report.remote.lastModified !== undefined) row('last-modified', report.remote.lastModified);
    if (report.remote.digest !== undefined) row('digest', `${report.remote.digest.algorithm}:${report.remote.digest.hex}`);
    // Every stored digest is checked at the end of the next run: show them all, not just the first.
    for (const extra of report.remote.extraDigests ?? []) row('digest', `${extra.algorithm}:${extra.hex}`);
    for (const mirror of report.remote.mirrors ?? []) {
      row('mirror', [mirror.url, mirror.etag, mirror.lastModified].filter((v) => v !== undefined).join('  '));
    }
  }
  row('updated', `${report.updatedAt}${ago(report.updatedAt, now)}`);
  return `${lines.join('\n')}\n`;
}

function ago(iso: string, now: Date): string {
  const ms = now.getTime() - Date.parse(iso);
  return Number.isFinite(ms) && ms >= 0 ? ` (${formatDuration(ms)} ago)` : '';
}

/** The recorded identity with every URL redacted, the mirrors' too (a signed mirror URL must not be shown). */
function redactedRemote(remote: RemoteIdentity): RemoteIdentity {
  const { mirrors, ...rest } = remote;
  return {
    ...rest,
    url: redactUrl(remote.url),
    ...(mirrors === undefined ? {} : { mirrors: mirrors.map((m) => ({ ...m, url: redactUrl(m.url) })) }),
  };
}
