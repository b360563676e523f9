/**
 * `downloadFile(url, target, options)`: the library entry that downloads one
 * URL to one file, resumably, exactly as the `blockfetch` command does (the
 * command is a thin layer over it).
 *
 * While a download is in progress its data and index sit NEXT TO the target,
 * in the same directory (never in /tmp): the final rename is then atomic
 * (same filesystem), the space check is made on the filesystem that will hold
 * the file, and a reboot that clears /tmp does not lose the download.
 */
import { dirname, resolve } from 'node:path';

/** The suffix of the partial data file: `big.iso` downloads into `big.iso.blockfetch`. */
export const PARTIAL_SUFFIX = '.blockfetch';

/** The suffix of the index file: `big.iso.blockfetch.json`. */
export const INDEX_SUFFIX = `${PARTIAL_SUFFIX}.json`;

/** The three paths of one download. */
export interface DownloadPaths {
  /** The finished file (absolute). */
  readonly target: string;
  /** The partial data file, renamed to `target` when complete and verified. */
  readonly partial: string;
  /** The index of `partial`: which blocks are done, and of which remote revision. */
  readonly index: string;
  /** The directory all three live in (fsynced after the final rename). */
  readonly directory: string;
}

/**
 * The paths for downloading to `target`.
 *
 * @example
 * ```ts
 * downloadPaths('out/big.iso')
 * // { target: '/cwd/out/big.iso', partial: '/cwd/out/big.iso.blockfetch',
 * //   index: '/cwd/out/big.iso.blockfetch.json', directory: '/cwd/out' }
 * ```
 */
export function downloadPaths(target: string): DownloadPaths {
  const absolute = resolve(target);
  return {
    target: absolute,
    partial: `${absolute}${PARTIAL_SUFFIX}`,
    index: `${absolute}${INDEX_SUFFIX}`,
    directory: dirname(absolute),
  };
}

/**
 * The download paths a user means by `path`, which may name the target
 * (`big.iso`), the partial file (`big.iso.blockfetch`) or the index
 * (`big.iso.blockfetch.json`): what `blockfetch inspect` accepts.
 */
export function pathsFromAnyName(path: string): DownloadPaths {
  if (path.endsWith(INDEX_SUFFIX)) return downloadPaths(path.slice(0, -INDEX_SUFFIX.length));
  if (path.endsWith(PARTIAL_SUFFIX)) return downloadPaths(path.slice(0, -PARTIAL_SUFFIX.length));
  return downloadPaths(path);
}
