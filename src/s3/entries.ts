/**
 * From an `s3://` URL to the files to download: one entry for
 * `s3://BUCKET/KEY`, one per object for `s3://BUCKET/PREFIX/` (listed with
 * ListObjectsV2), each with its target path and a `createReader` that reads
 * it with an {@link S3Reader}. The entries are `downloadFiles`' own; nothing
 * here downloads or writes.
 *
 * Paths under a prefix are the keys relative to it, kept under the target
 * directory, and never allowed out of it: a key whose relative path has an
 * empty, `.` or `..` segment (so also a leading `/` or a `//`), a NUL, or a
 * name that would collide with blockfetch's own files beside a target
 * (`NAME.blockfetch`, `NAME.blockfetch.json`, ...) is left out, with the
 * reason, rather than rewritten into a name nobody asked for.
 */
import { basename, join, resolve, sep } from 'node:path';

import type { Dispatcher } from 'undici';

import type { DownloadEntry } from '../download-files.js';
import { InvalidArgumentError } from '../errors.js';
import type { S3Config } from './config.js';
import { listS3Objects, type S3ListedObject } from './list.js';
import { S3Reader, type S3ReaderOptions } from './s3-reader.js';
import { parseS3Url, s3UrlOf } from './url.js';

/** A key under the prefix that is not downloaded, and why. */
export interface SkippedKey {
  readonly key: string;
  readonly reason: string;
  /** True for a folder marker (`dir/`, empty): nothing is missing, it is only not a file. */
  readonly folderMarker: boolean;
}

/** What {@link s3DownloadEntries} found. */
export interface S3DownloadPlan {
  /** The files to download, in key order. */
  readonly entries: readonly DownloadEntry[];
  /** Keys under the prefix left out, with the reason. */
  readonly skipped: readonly SkippedKey[];
  /** What the listing said of each entry's object, by entry `key` (a prefix only). */
  readonly listed: ReadonlyMap<string, S3ListedObject>;
  /** The directory a prefix is saved under (undefined for one object). */
  readonly directory: string | undefined;
}

/** Options of {@link s3DownloadEntries}. `config` and `dispatcher` are required. */
export interface S3DownloadEntriesOptions {
  /** Region, endpoint, credentials (`resolveS3Config`). */
  readonly config: S3Config;
  /** The dispatcher every reader and the listing share; the caller closes it. */
  readonly dispatcher: Dispatcher;
  /**
   * One object: the file to save it as (`-o`); ending in `/`, the
   * directory to save it in. Not allowed with a prefix.
   * @default the key's last segment, in `directory` or the current directory
   */
  readonly output?: string;
  /**
   * Where to save: one object goes in it, a prefix's keys go under it (`-d`).
   * @default for a prefix, `./NAME` where NAME is the prefix's last segment (or the bucket's name)
   */
  readonly directory?: string;
  /** Keys per ListObjectsV2 page. @default 1000 */
  readonly pageSize?: number;
  /** How each object is read. @default {} (the S3Reader defaults) */
  readonly reader?: Pick<S3ReaderOptions, 'blockSize' | 'requestTimeoutMs' | 'idleTimeoutMs' | 'maxRetryAfterMs' | 'userAgent'>;
  /** Stops the listing. */
  readonly signal?: AbortSignal;
}

/**
 * Names that blockfetch writes beside a target (`.blockfetch` data,
 * `.blockfetch.json` index, its `.live` copy, temp files, the lock): a key
 * ending like one could overwrite another key's download state.
 */
const OWN_FILE = /\.blockfetch(?:\.[A-Za-z0-9.]+)?$/;

/**
 * Why `relative` (a key less its prefix) cannot be a path under the target
 * directory, or undefined when it can.
 *
 * @example
 * ```ts
 * unsafeRelativePath('a/b.bin')   // undefined
 * unsafeRelativePath('../etc/x')  // 'it has a ".." segment, which would leave the target directory'
 * ```
 */
export function unsafeRelativePath(relative: string): string | undefined {
  if (relative.includes('\0')) return 'it contains a NUL byte';
  if (relative.startsWith('/')) return 'it starts with "/", which would make it an absolute path';
  for (const segment of relative.split('/')) {
    if (segment === '..') return 'it has a ".." segment, which would leave the target directory';
    if (segment === '.') return 'it has a "." segment';
    if (segment === '') return 'it has an empty segment ("//")';
    if (OWN_FILE.test(segment)) return `its name ${JSON.stringify(segment)} could be taken for blockfetch's own files beside another download`;
  }
  return undefined;
}

/**
 * The entries for an `s3://` URL: one object, or every object under a
 * prefix (listed now). Throws for a bad URL, `output` with a prefix, or a
 * listing that fails (NoSuchBucket, wrong credentials: clear errors).
 *
 * @example
 * ```ts
 * const config = await resolveS3Config();
 * const dispatcher = new Agent();
 * const plan = await s3DownloadEntries('s3://my-bucket/models/', { config, dispatcher, directory: 'models' });
 * await downloadFiles(plan.entries, { concurrency: 8 }); // after creating each target's folder
 * ```
 */
export async function s3DownloadEntries(url: string, options: S3DownloadEntriesOptions): Promise<S3DownloadPlan> {
  const location = parseS3Url(url);
  const { config, dispatcher } = options;
  const readerFor = (key: string) => (): S3Reader => new S3Reader({ bucket: location.bucket, key, config, dispatcher, ...options.reader });
  if (!location.isPrefix) {
    const name = basename(location.key);
    const output = options.output;
    const target =
      output === undefined ? join(options.directory ?? '.', name) : output.endsWith('/') ? join(output, name) : options.directory === undefined ? output : join(options.directory, output);
    const entry: DownloadEntry = { source: s3UrlOf(location.bucket, location.key), target, key: s3UrlOf(location.bucket, location.key), options: { createReader: readerFor(location.key) } };
    return { entries: [entry], skipped: [], listed: new Map(), directory: undefined };
  }
  if (options.output !== undefined && !options.output.endsWith('/')) {
    throw new InvalidArgumentError(`${url} names every key under a prefix, so it cannot be saved as one file (${JSON.stringify(options.output)})`, {
      hint: 'give a directory instead: -d DIR (the keys keep their paths under it)',
    });
  }
  // The default folder is the prefix's last segment, when that is a safe
  // name here (`s3://bucket/../` must not save into `..`); else the bucket's.
  const lastSegment = location.key.split('/').filter((s) => s !== '').at(-1);
  const defaultDirectory = lastSegment !== undefined && unsafeRelativePath(lastSegment) === undefined ? lastSegment : location.bucket;
  const directory = options.directory ?? options.output ?? defaultDirectory;
  const root = resolve(directory);
  const objects = await listS3Objects(config, location.bucket, location.key, {
    dispatcher,
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const entries: DownloadEntry[] = [];
  const skipped: SkippedKey[] = [];
  const listed = new Map<string, S3ListedObject>();
  for (const object of objects) {
    const relative = object.key.slice(location.key.length);
    if (relative === '' || (relative.endsWith('/') && object.size === 0)) {
      skipped.push({ key: object.key, reason: 'a folder marker (an empty object whose key ends in "/")', folderMarker: true });
      continue;
    }
    const unsafe = unsafeRelativePath(relative);
    const target = unsafe === undefined ? join(directory, ...relative.split('/')) : undefined;
    // Belt and braces: the checks above already keep every path inside the directory.
    if (target === undefined || !resolve(target).startsWith(root + sep)) {
      skipped.push({ key: object.key, reason: `not downloaded: ${unsafe ?? 'its path would leave the target directory'}`, folderMarker: false });
      continue;
    }
    const key = s3UrlOf(location.bucket, object.key);
    listed.set(key, object);
    entries.push({ source: key, target, key, options: { createReader: readerFor(object.key) } });
  }
  return { entries, skipped, listed, directory };
}
