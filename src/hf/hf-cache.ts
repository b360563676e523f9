/**
 * The standard Hugging Face cache layout (huggingface_hub's
 * `file_download.py`), so that transformers and huggingface_hub find what
 * blockfetch downloaded, offline:
 *
 * ```
 * <hub cache>/models--OWNER--NAME/
 *   blobs/<etag>                       the bytes, named by sha256 (LFS) or git blob id
 *   snapshots/<commit>/<path>          relative symlinks to ../../blobs/<etag>
 *   refs/<revision>                    the commit a branch or tag named
 * ```
 *
 * A blob appears under its final name only once complete and verified
 * (downloadFile's rename); until then it is `<etag>.blockfetch` with its
 * index beside it, never a name huggingface_hub reads as a blob.
 */
import { lstat, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

import { BlockfetchError } from '../errors.js';
import type { HfLocation } from './hf-url.js';
import type { HubTreeEntry } from './hub-api.js';

/**
 * `repo_folder_name`: `models--OWNER--NAME`, `datasets--…`, `spaces--…`.
 *
 * @example
 * ```ts
 * repoFolderName({ repoType: 'model', repoId: 'julien-c/EsperBERTo-small' }) // 'models--julien-c--EsperBERTo-small'
 * ```
 */
export function repoFolderName(location: Pick<HfLocation, 'repoType' | 'repoId'>): string {
  return [`${location.repoType}s`, ...location.repoId.split('/')].join('--');
}

/**
 * The blob name huggingface_hub gives a file: the normalized ETag the Hub
 * sends, which is the sha256 for an LFS file (`X-Linked-Etag`) and the git
 * blob id for a small one (`ETag`): the tree's `lfs.oid`, else its `oid`.
 *
 * @example
 * ```ts
 * blobName({ type: 'file', path: 'config.json', oid: 'd7ed…', size: 52 }) // 'd7ed…'
 * ```
 */
export function blobName(file: HubTreeEntry): string {
  return file.lfs?.oid ?? file.oid;
}

/** The paths of one repository in the cache. */
export interface HfCachePaths {
  /** `<hub cache>/models--OWNER--NAME`. */
  readonly repo: string;
  /** Where `file`'s bytes go. */
  blob(file: HubTreeEntry): string;
  /** Where `file` appears in the snapshot of `commit`. */
  pointer(commit: string, file: HubTreeEntry): string;
  /** The file naming the commit of `revision`. */
  ref(revision: string): string;
}

/**
 * The cache paths of `location`'s repository under `hubCache`.
 *
 * @example
 * ```ts
 * hfCachePaths('/home/me/.cache/huggingface/hub', location).blob(file) // '…/models--org--name/blobs/<sha256>'
 * ```
 */
export function hfCachePaths(hubCache: string, location: Pick<HfLocation, 'repoType' | 'repoId'>): HfCachePaths {
  const repo = join(hubCache, repoFolderName(location));
  return {
    repo,
    blob: (file) => join(repo, 'blobs', blobName(file)),
    pointer: (commit, file) => join(repo, 'snapshots', commit, ...file.path.split('/')),
    ref: (revision) => join(repo, 'refs', ...revision.split('/')),
  };
}

/**
 * Points `snapshots/<commit>/<path>` at the blob with a RELATIVE symlink
 * (as `_create_symlink` does: the cache survives being moved), replacing
 * whatever link was there.
 *
 * @example
 * ```ts
 * await linkSnapshot(paths, commit, file); // snapshots/<commit>/config.json -> ../../blobs/<oid>
 * ```
 */
export async function linkSnapshot(paths: HfCachePaths, commit: string, file: HubTreeEntry): Promise<void> {
  const pointer = paths.pointer(commit, file);
  const target = relative(dirname(pointer), paths.blob(file));
  await mkdir(dirname(pointer), { recursive: true });
  const existing = await lstat(pointer).catch(() => undefined);
  if (existing?.isSymbolicLink() === true && (await readlink(pointer)) === target) return;
  if (existing !== undefined && !existing.isSymbolicLink()) {
    throw new BlockfetchError('BLOCKFETCH_UNSAFE_PATH', `${pointer} exists and is not a symbolic link; not replacing it`, {
      hint: 'remove it if it is not yours to keep; the cache keeps files as links to blobs/',
    });
  }
  // A new link under a temporary name, renamed over the old one: a reader never sees no file.
  const temporary = `${pointer}.${process.pid}.blockfetch-link`;
  await rm(temporary, { force: true });
  await symlink(target, temporary);
  await rename(temporary, pointer);
}

/**
 * Records that `revision` named `commit` (`refs/<revision>`), as
 * `_cache_commit_hash_for_specific_revision` does; nothing for a revision
 * that is the commit itself. Written to a temporary file and renamed.
 *
 * @example
 * ```ts
 * await writeRef(paths, 'main', commit); // refs/main holds the 40-hex commit
 * ```
 */
export async function writeRef(paths: HfCachePaths, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  if (revision.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new BlockfetchError('BLOCKFETCH_UNSAFE_PATH', `the revision ${JSON.stringify(revision)} cannot name a file under refs/`, {
      hint: 'give the revision as the Hub spells it (a branch, a tag, refs/pr/N)',
    });
  }
  const ref = paths.ref(revision);
  await mkdir(dirname(ref), { recursive: true });
  const temporary = `${ref}.${process.pid}.tmp`;
  await writeFile(temporary, commit);
  await rename(temporary, ref);
}
