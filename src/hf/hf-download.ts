/**
 * A Hugging Face repository (or a folder or file of it) as a set of
 * downloads: resolve the revision to ONE commit, list that commit's files,
 * filter them (`include`/`exclude`), and return one entry per file, each
 * read by a {@link HubFileReader} pinned to that commit and verified
 * against the file's sha256 (LFS) or git blob id before its final rename.
 *
 * The entries have the shape of `downloadFiles`' `DownloadEntry`
 * (`src/download-files.ts`), which runs them as one set.
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';

import picomatch from 'picomatch';
import type { Dispatcher } from 'undici';

import type { ExpectedDigest } from '../cache/types.js';
import type { RetryOptions } from '../download/backoff.js';
import type { DownloadEntryOptions } from '../download-files.js';
import { BlockfetchError } from '../errors.js';
import { digestsMatch, regularFileStat } from '../finished-file.js';
import { blobName, hfCachePaths, linkSnapshot, writeRef, type HfCachePaths } from './hf-cache.js';
import { parseHfUrl, quoteLikePython, type HfLocation } from './hf-url.js';
import { HubApi, type HubTreeEntry } from './hub-api.js';
import { HubError } from './hub-errors.js';
import { HubFileReader, hubFileDigest } from './hub-file-reader.js';
import { hubSettingsFromEnvironment, type HubSettings } from './hub-settings.js';

/**
 * Per-file options of a set entry: `downloadFiles`' `DownloadEntryOptions`.
 */
export type HfEntryOptions = DownloadEntryOptions;

/**
 * One file of the set, in the shape of the set downloader's `DownloadEntry`
 * (`src/download-files.ts`), plus the tree
 * entry it came from.
 */
export interface HfDownloadEntry {
  /** The resolve URL at the commit; read by `options.createReader` (a {@link HubFileReader}). */
  readonly source: string;
  /** Where the file goes: under the folder, or the blob in the cache. */
  readonly target: string;
  /** The path in the repository: what events and the summary call it. */
  readonly key: string;
  readonly options: HfEntryOptions;
  /** The file as the commit's tree lists it. */
  readonly file: HubTreeEntry;
}

/** Options of {@link planHfDownload}. */
export interface HfPlanOptions {
  /** Endpoint, token and cache. @default read from the environment (`hubSettingsFromEnvironment`: HF_ENDPOINT, HF_TOKEN, HF_HOME…) */
  readonly settings?: HubSettings;
  /** The undici dispatcher every request uses; the caller owns it. */
  readonly dispatcher: Dispatcher;
  /** The folder files go under (folder layout). @default `./NAME` */
  readonly dir?: string;
  /**
   * Write into the standard cache (`settings.hubCache`) instead of a folder.
   * The entries then download the blobs only: the snapshot links and
   * `refs/` that make the cache usable offline are written by the
   * `blockfetch hf://… --hf-cache` command after the downloads, not by
   * `downloadFiles`, so from the library use the folder layout.
   * @default false
   */
  readonly hfCache?: boolean;
  /** Keep only paths matching one of these globs (fnmatch, as huggingface_hub's allow_patterns). @default [] (all) */
  readonly include?: readonly string[];
  /** Drop paths matching one of these globs (as ignore_patterns). @default [] */
  readonly exclude?: readonly string[];
  /** The first request's size and preferred block size of each file. @default the HttpReader's */
  readonly blockSize?: number;
  /** Headers and idle timeout per request, in ms. @default 30000 */
  readonly timeoutMs?: number;
  /** Retries of the API calls (rate limits, server errors). @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /** Replace files that exist and differ. @default false */
  readonly overwrite?: boolean;
  /** Discard a partial download that cannot be continued. @default false */
  readonly restart?: boolean;
  readonly signal?: AbortSignal;
  /** Told of each retried API call. @default undefined */
  readonly onRetry?: (retry: { readonly attempt: number; readonly delayMs: number; readonly error: BlockfetchError }) => void;
}

/**
 * The defaults of {@link HfPlanOptions}.
 *
 * @example
 * ```ts
 * defaultHfPlanOptions.hfCache // false
 * ```
 */
export const defaultHfPlanOptions = Object.freeze({
  hfCache: false,
  include: Object.freeze([]) as readonly string[],
  exclude: Object.freeze([]) as readonly string[],
  overwrite: false,
  restart: false,
});

/** What {@link planHfDownload} decided. */
export interface HfPlan {
  readonly location: HfLocation;
  /** The revision asked for (`main` when none). */
  readonly revision: string;
  /** The one commit every file is fetched by. */
  readonly commit: string;
  /** `folder`: files under `root`; `hf-cache`: blobs and snapshots under `root` (the repository's cache folder). */
  readonly layout: 'folder' | 'hf-cache';
  readonly root: string;
  /** One entry per file to fetch (in the cache, one per distinct blob). */
  readonly entries: readonly HfDownloadEntry[];
  /** Every file of the selection (several may share one blob in the cache). */
  readonly files: readonly HubTreeEntry[];
  /** The cache paths, for the `hf-cache` layout. */
  readonly cache: HfCachePaths | undefined;
}

/**
 * Resolves `url` (`hf://…`) to one commit, lists and filters its files and
 * returns the entries to download. Nothing is written.
 *
 * @example
 * ```ts
 * const plan = await planHfDownload('hf://openai/whisper-tiny', { dispatcher: new Agent(), include: ['*.json'] });
 * // downloadFiles writes into existing folders only: a repository's subfolders are the caller's to make.
 * for (const entry of plan.entries) await mkdir(dirname(entry.target), { recursive: true });
 * const result = await downloadFiles(plan.entries, { concurrency: 8, maxConcurrentFiles: 3 });
 * ```
 */
export async function planHfDownload(url: string, options: HfPlanOptions): Promise<HfPlan> {
  const location = parseHfUrl(url);
  const o = { ...defaultHfPlanOptions, ...options, settings: options.settings ?? (await hubSettingsFromEnvironment()) };
  const api = new HubApi({
    endpoint: o.settings.endpoint,
    ...(o.settings.token === undefined ? {} : { token: o.settings.token, tokenSource: o.settings.tokenSource }),
    dispatcher: o.dispatcher,
    ...(o.retry === undefined ? {} : { retry: o.retry }),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.onRetry === undefined ? {} : { onRetry: o.onRetry }),
  });
  const revision = location.revision ?? 'main';
  const commit = await api.resolveRevision(location, o.signal);
  const what = `${HubApi.describe(location)}@${revision}`;
  let listed: HubTreeEntry[];
  if (location.path === '') {
    listed = await api.listFiles(location, commit, '', o.signal);
  } else {
    const info = await api.pathInfo(location, commit, location.path, o.signal);
    if (info === undefined) {
      throw new HubError('BLOCKFETCH_HUB_NOT_FOUND', `${what} has no file or folder ${JSON.stringify(location.path)} (at commit ${commit})`, {
        hint: 'check the path after the repository (it is case-sensitive)',
      });
    }
    listed = info.type === 'file' ? [info] : await api.listFiles(location, commit, location.path, o.signal);
  }
  for (const file of listed) checkRepoPath(file.path);
  const matches = globFilter(o.include, o.exclude);
  const files = listed.filter((file) => matches(file.path));
  if (files.length === 0) {
    throw new HubError('BLOCKFETCH_HUB_NOT_FOUND', `no file of ${what}${location.path === '' ? '' : ` under ${JSON.stringify(location.path)}`} matches${o.include.length + o.exclude.length === 0 ? '' : ' --include/--exclude'} (${listed.length} listed at commit ${commit})`, {
      hint: 'check the path and the include/exclude globs (they match the whole path in the repository: *.json, onnx/*)',
    });
  }

  const layout = o.hfCache ? 'hf-cache' : 'folder';
  const cache = o.hfCache ? hfCachePaths(o.settings.hubCache, location) : undefined;
  const root = resolve(cache?.repo ?? o.dir ?? location.name);
  const repoUrl = `${o.settings.endpoint}/${location.repoType === 'model' ? '' : `${location.repoType}s/`}${location.repoId}`;
  const seenBlobs = new Set<string>();
  const entries: HfDownloadEntry[] = [];
  for (const file of files) {
    if (cache !== undefined) {
      // Files with the same bytes share one blob: fetch it once.
      if (seenBlobs.has(blobName(file))) continue;
      seenBlobs.add(blobName(file));
    }
    const source = `${repoUrl}/resolve/${commit}/${quoteLikePython(file.path)}`;
    const target = cache?.blob(file) ?? join(root, ...file.path.split('/'));
    const expectedDigest: ExpectedDigest = hubFileDigest(file);
    entries.push({
      source,
      target,
      key: file.path,
      file,
      options: {
        expectedDigest,
        overwrite: o.overwrite,
        restart: o.restart,
        ...(o.blockSize === undefined ? {} : { blockSize: o.blockSize }),
        createReader: (resolveUrl: string) =>
          new HubFileReader({
            resolveUrl,
            commit,
            file,
            what,
            dispatcher: o.dispatcher,
            ...(o.settings.token === undefined ? {} : { token: o.settings.token, tokenSource: o.settings.tokenSource }),
            ...(o.blockSize === undefined ? {} : { blockSize: o.blockSize }),
            ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
          }),
      },
    });
  }
  return { location, revision, commit, layout, root, entries, files, cache };
}

/**
 * Refuses a path from the tree that could leave the download folder: an
 * absolute path, an empty, `.` or `..` segment, a backslash (a separator
 * elsewhere) or a NUL. The Hub never lists one; a stand-in or a proxy might.
 */
function checkRepoPath(path: string): void {
  const segments = path.split('/');
  if (isAbsolute(path) || path.includes('\\') || path.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new BlockfetchError('BLOCKFETCH_UNSAFE_PATH', `the Hub listed the path ${JSON.stringify(path)}, which would leave the download folder; nothing was written`, {
      hint: 'check HF_ENDPOINT: the Hub never lists such a path',
    });
  }
}

/**
 * huggingface_hub's `filter_repo_objects`: a path is kept when it matches one
 * of `include` (or there is none) and none of `exclude`, each matched
 * against the whole path with fnmatch's rules (case-sensitive; `*` crosses
 * `/`; `[!…]` negates a class; a pattern ending in `/` means everything under
 * that folder). picomatch does the matching, with `bash` (a single `*`
 * crosses `/`), `dot`, and braces, extglobs and leading-`!` negation off,
 * since fnmatch has none of them. Known difference: picomatch's `?` does not
 * match `/`, fnmatch's does.
 */
function globFilter(include: readonly string[], exclude: readonly string[]): (path: string) => boolean {
  const compile = (pattern: string): ((path: string) => boolean) => {
    const fnmatch = (pattern.endsWith('/') ? `${pattern}*` : pattern).replace(/\[!/g, '[^');
    return picomatch(fnmatch, { bash: true, dot: true, nobrace: true, noextglob: true, nonegate: true });
  };
  const allow = include.map(compile);
  const deny = exclude.map(compile);
  return (path) => (allow.length === 0 || allow.some((m) => m(path))) && !deny.some((m) => m(path));
}

/** What {@link prepareHfTargets} found on disk. */
export interface HfPrepared {
  /** Entries still to fetch. */
  readonly pending: readonly HfDownloadEntry[];
  /** Entries whose target is already there and verified (or, in the cache, a blob already there). */
  readonly complete: readonly HfDownloadEntry[];
}

/**
 * Gets the disk ready: creates every target's folder (inside the root,
 * never through a link out of it) and sets aside the files already
 * complete. In a folder, a file that exists counts as complete when its
 * size and digest are the tree's (it is hashed); one that differs is left
 * to `downloadFile`, which refuses it without `overwrite`. In the cache a
 * blob is named by its digest and only ever renamed into place verified,
 * so one that exists with the right size is complete (as huggingface_hub
 * trusts it).
 *
 * @example
 * ```ts
 * const { pending, complete } = await prepareHfTargets(plan);
 * ```
 */
export async function prepareHfTargets(plan: HfPlan, signal?: AbortSignal): Promise<HfPrepared> {
  await mkdir(plan.root, { recursive: true });
  const realRoot = await realpath(plan.root);
  const pending: HfDownloadEntry[] = [];
  const complete: HfDownloadEntry[] = [];
  for (const entry of plan.entries) {
    const directory = dirname(entry.target);
    await mkdir(directory, { recursive: true });
    const real = await realpath(directory);
    if (real !== realRoot && !real.startsWith(realRoot + sep)) {
      throw new BlockfetchError('BLOCKFETCH_UNSAFE_PATH', `${directory} leads outside ${plan.root} (through a symbolic link); not writing there`, {
        hint: 'remove the link, or download into another folder',
      });
    }
    if (entry.options.overwrite !== true && (await isComplete(entry, plan.layout, signal))) complete.push(entry);
    else pending.push(entry);
  }
  return { pending, complete };
}

/**
 * A regular file of the tree's size and (in a folder) digest. Unlike
 * `finishedFileStat`, it does not look for a partial download beside the
 * target: a file that already has the tree's size and digest counts as
 * complete even with a stale partial next to it.
 */
async function isComplete(entry: HfDownloadEntry, layout: HfPlan['layout'], signal: AbortSignal | undefined): Promise<boolean> {
  const found = await regularFileStat(entry.target);
  if (found?.size !== entry.file.size) return false;
  return layout === 'hf-cache' || digestsMatch(entry.target, [hubFileDigest(entry.file)], signal);
}

/**
 * Makes the cache complete for the files whose blobs are in place: each
 * one's relative symlink in `snapshots/<commit>/`, then `refs/<revision>`
 * (last, so a ref never names a snapshot that has nothing yet). Nothing for
 * the folder layout. Returns the snapshot folder.
 *
 * @example
 * ```ts
 * const snapshot = await finishHfCache(plan); // …/models--org--name/snapshots/<commit>
 * ```
 */
export async function finishHfCache(plan: HfPlan): Promise<string | undefined> {
  const cache = plan.cache;
  if (cache === undefined) return undefined;
  let linked = 0;
  for (const file of plan.files) {
    const blob = await lstat(cache.blob(file)).catch(() => undefined);
    if (blob?.isFile() !== true) continue;
    await linkSnapshot(cache, plan.commit, file);
    linked++;
  }
  if (linked > 0) await writeRef(cache, plan.revision, plan.commit);
  return join(cache.repo, 'snapshots', plan.commit);
}
