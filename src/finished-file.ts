/**
 * Is this file already the finished download? The rules every "already
 * complete" check shares (the download command's, a set's, the Hub's and
 * S3's), each written once here:
 *
 * - a finished file is a regular file (never a link: {@link regularFileStat})
 *   with no partial download beside it ({@link finishedFileStat});
 * - its mtime is the remote's Last-Modified to the second, since
 *   blockfetch sets it from that header when it finishes a file and HTTP
 *   dates have whole seconds ({@link mtimeMatches});
 * - or it has the digests known for it, hashed in one read
 *   ({@link checkDigests}, {@link digestsMatch}).
 *
 * What a caller does with the answer (skip, refuse, its messages) stays
 * the caller's.
 */
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';

import type { DigestAlgorithm, ExpectedDigest } from './cache/types.js';
import { hashFile } from './download/digest.js';
import { downloadPaths } from './download-file.js';

/**
 * The lstat of `path` when it is a regular file; `undefined` when it is
 * missing, cannot be looked at, or is anything else (a link, a directory).
 *
 * @example
 * ```ts
 * const found = await regularFileStat('model/blob');
 * if (found?.size === expectedSize) { … }
 * ```
 */
export async function regularFileStat(path: string): Promise<Stats | undefined> {
  const found = await lstat(path).catch(() => undefined);
  return found?.isFile() === true ? found : undefined;
}

/**
 * The lstat of `target` when it may be a finished download: a regular file
 * with no partial download (`<target>.blockfetch`, see `downloadPaths`)
 * beside it. An index alone beside it is what a run killed right after its
 * final rename leaves; it does not count (`tidyFinishedDownload` removes it).
 * Whether it is the remote's file is for {@link mtimeMatches} or
 * {@link digestsMatch} to tell.
 *
 * @example
 * ```ts
 * const local = await finishedFileStat('big.iso');
 * if (local !== undefined && local.size === remote.size && mtimeMatches(local, remote.lastModified)) console.log('nothing to do');
 * ```
 */
export async function finishedFileStat(target: string): Promise<Stats | undefined> {
  const paths = downloadPaths(target);
  const found = await regularFileStat(paths.target);
  if (found === undefined) return undefined;
  return (await lstat(paths.partial).catch(() => undefined)) === undefined ? found : undefined;
}

/**
 * Whether a file's mtime is the HTTP date `lastModified`, to the second:
 * HTTP dates have whole seconds, filesystems keep what utimes set (and
 * blockfetch sets a finished file's mtime from Last-Modified). `false` when
 * there is no date or it cannot be parsed.
 *
 * @example
 * ```ts
 * mtimeMatches({ mtimeMs: Date.UTC(2024, 0, 2, 3, 4, 5, 678) }, 'Tue, 02 Jan 2024 03:04:05 GMT') // true
 * mtimeMatches(await lstat('big.iso'), undefined) // false
 * ```
 */
export function mtimeMatches(stat: Pick<Stats, 'mtimeMs'>, lastModified: string | undefined): boolean {
  const modified = lastModified === undefined ? NaN : Date.parse(lastModified);
  return Number.isFinite(modified) && Math.floor(stat.mtimeMs / 1000) === Math.floor(modified / 1000);
}

/** One expected digest of a file, and the file's own. */
export interface DigestCheck {
  /** The algorithm. */
  readonly algorithm: DigestAlgorithm;
  /** The file's digest, lower-case hex. */
  readonly hex: string;
  /** The digest that was expected. */
  readonly expected: string;
  /** Whether they are the same. */
  readonly ok: boolean;
}

/**
 * Hashes the file at `path` once for every algorithm in `expected` and
 * compares, in the order given. Rejects as reading the file does
 * (`ENOENT`, an abort of `signal`, …): what that means is the caller's.
 *
 * @example
 * ```ts
 * const bad = (await checkDigests('big.iso', [{ algorithm: 'sha256', hex }])).find((c) => !c.ok);
 * if (bad !== undefined) throw new DigestMismatchError(bad.algorithm, bad.expected, bad.hex);
 * ```
 */
export async function checkDigests(path: string, expected: readonly ExpectedDigest[], signal?: AbortSignal): Promise<DigestCheck[]> {
  const hexes = await hashFile(
    path,
    expected.map((d) => d.algorithm),
    signal,
  );
  return expected.map((d, i): DigestCheck => {
    const hex = hexes[i] as string;
    return { algorithm: d.algorithm, hex, expected: d.hex, ok: hex === d.hex };
  });
}

/**
 * Whether the file at `path` has every digest in `expected` (one read for
 * all of them). Rejects as {@link checkDigests} does.
 *
 * @example
 * ```ts
 * if (await digestsMatch('big.iso', [{ algorithm: 'sha256', hex }], signal)) console.log('already complete');
 * ```
 */
export async function digestsMatch(path: string, expected: readonly ExpectedDigest[], signal?: AbortSignal): Promise<boolean> {
  return (await checkDigests(path, expected, signal)).every((c) => c.ok);
}
