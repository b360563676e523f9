/**
 * A stand-in for `downloadFiles` (src/download-files.ts, built on another
 * branch; see SETS-API.md): the S3 entries downloaded one after another
 * with {@link downloadFile}. At merge the lead replaces the call of
 * {@link downloadS3EntriesSequentially} with `downloadFiles(entries, options)`,
 * which runs several at once under one connection budget.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import { downloadFile, type DownloadFileEvent, type DownloadFileOptions, type DownloadFileResult } from '../download-file.js';
import { BlockfetchError } from '../errors.js';
import type { DownloadEntry } from './entries.js';

/** How one entry ended. */
export type EntryOutcome =
  | { readonly kind: 'done'; readonly entry: DownloadEntry; readonly result: DownloadFileResult }
  | { readonly kind: 'skipped'; readonly entry: DownloadEntry }
  | { readonly kind: 'failed'; readonly entry: DownloadEntry; readonly error: unknown };

/** Options of {@link downloadS3EntriesSequentially}: the set-wide {@link DownloadFileOptions}, plus per-entry hooks. */
export interface SequentialDownloadOptions extends Omit<DownloadFileOptions, 'onEvent' | 'createReader' | 'headers' | 'timeoutMs' | 'dispatcher'> {
  /** Every event of every file, with the entry's key. */
  readonly onEvent?: (key: string, event: DownloadFileEvent) => void;
  /** Called before each file: true skips it as already complete. @default never skips */
  readonly isComplete?: (entry: DownloadEntry) => Promise<boolean>;
  /** Called as each file ends, before the next starts. */
  readonly onOutcome?: (outcome: EntryOutcome) => void;
}

/**
 * Downloads `entries` one after another; one file's failure does not stop
 * the others (an abort does: the files not begun are left). Creates each
 * target's directory first (the entries of a prefix keep the keys' folders).
 * Resolves with every outcome; never rejects for one file.
 *
 * @example
 * ```ts
 * const plan = await s3DownloadEntries('s3://my-bucket/models/', { config, dispatcher });
 * const outcomes = await downloadS3EntriesSequentially(plan.entries, { concurrency: 8 });
 * const failed = outcomes.filter((o) => o.kind === 'failed');
 * ```
 */
export async function downloadS3EntriesSequentially(entries: readonly DownloadEntry[], options: SequentialDownloadOptions = {}): Promise<EntryOutcome[]> {
  const { onEvent, isComplete, onOutcome, ...shared } = options;
  const outcomes: EntryOutcome[] = [];
  // A function, not a narrowed property: the signal aborts while files download.
  const aborted = (): boolean => options.signal?.aborted === true;
  for (const entry of entries) {
    if (aborted()) break;
    const key = entry.key ?? entry.target;
    let outcome: EntryOutcome;
    try {
      await mkdir(dirname(entry.target), { recursive: true });
      if (isComplete !== undefined && (await isComplete(entry))) {
        outcome = { kind: 'skipped', entry };
      } else {
        const result = await downloadFile(entry.source, entry.target, {
          ...shared,
          ...entry.options,
          ...(onEvent === undefined ? {} : { onEvent: (event: DownloadFileEvent) => onEvent(key, event) }),
        });
        outcome = { kind: 'done', entry, result };
      }
    } catch (error) {
      outcome = { kind: 'failed', entry, error };
    }
    outcomes.push(outcome);
    onOutcome?.(outcome);
    if (outcome.kind === 'failed' && aborted()) break;
    if (outcome.kind === 'failed' && outcome.error instanceof BlockfetchError && outcome.error.code === 'BLOCKFETCH_ABORTED') break;
  }
  return outcomes;
}
