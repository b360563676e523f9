/**
 * `blockfetch verify <FILE> --sha256 HEX`: checks a file's digest(s) in one
 * sequential read.
 */
import type { ExpectedDigest } from '../cache/types.js';
import { BlockfetchError, DigestMismatchError } from '../errors.js';
import { checkDigests, type DigestCheck } from '../finished-file.js';

/** The digest of one algorithm, as computed from the file. */
export type VerifiedDigest = DigestCheck;

/**
 * Hashes `path` with every algorithm in `expected` (one read of the file)
 * and compares. Resolves to the results when all match.
 *
 * @throws {DigestMismatchError} for the first digest that does not match.
 * @throws {BlockfetchError} `BLOCKFETCH_CACHE_MISSING` when the file does not exist.
 */
export async function verifyFile(path: string, expected: readonly ExpectedDigest[], signal?: AbortSignal): Promise<VerifiedDigest[]> {
  let results: VerifiedDigest[];
  try {
    results = await checkDigests(path, expected, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `${path} does not exist`, {
        hint: 'check the path; a download still in progress is verified automatically when it finishes (--sha256)',
        cause: err,
      });
    }
    throw err;
  }
  const bad = results.find((r) => !r.ok);
  if (bad !== undefined) {
    throw new DigestMismatchError(bad.algorithm, bad.expected, bad.hex, {
      hint: `${path} is not the file that digest describes: download it again (with --force), or check the digest`,
    });
  }
  return results;
}
