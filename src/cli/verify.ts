/**
 * `blockfetch verify <FILE> --sha256 HEX`: checks a file's digest(s) in one
 * sequential read.
 */
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

import type { ExpectedDigest } from '../cache/types.js';
import { createDigestHash } from '../download/digest.js';
import { BlockfetchError, DigestMismatchError } from '../errors.js';

/** The digest of one algorithm, as computed from the file. */
export interface VerifiedDigest {
  readonly algorithm: ExpectedDigest['algorithm'];
  readonly hex: string;
  readonly expected: string;
  readonly ok: boolean;
}

/**
 * Hashes `path` with every algorithm in `expected` (one read of the file)
 * and compares. Resolves to the results when all match.
 *
 * @throws {DigestMismatchError} for the first digest that does not match.
 * @throws {BlockfetchError} `BLOCKFETCH_CACHE_MISSING` when the file does not exist.
 */
export async function verifyFile(path: string, expected: readonly ExpectedDigest[], signal?: AbortSignal): Promise<VerifiedDigest[]> {
  let hashes: Hash[] = [];
  try {
    // git-sha1 hashes the size before the bytes; the others ignore it.
    const size = expected.some((d) => d.algorithm === 'git-sha1') ? (await stat(path)).size : undefined;
    hashes = expected.map((d) => createDigestHash(d.algorithm, size));
    // 1 MiB reads: large enough that the per-read overhead is negligible next to hashing.
    const stream = createReadStream(path, { highWaterMark: 2 ** 20, ...(signal === undefined ? {} : { signal }) });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (const hash of hashes) hash.update(chunk);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BlockfetchError('BLOCKFETCH_CACHE_MISSING', `${path} does not exist`, {
        hint: 'check the path; a download still in progress is verified automatically when it finishes (--sha256)',
        cause: err,
      });
    }
    throw err;
  }
  const results = expected.map((d, i): VerifiedDigest => {
    const hex = (hashes[i] as Hash).digest('hex');
    return { algorithm: d.algorithm, hex, expected: d.hex, ok: hex === d.hex };
  });
  const bad = results.find((r) => !r.ok);
  if (bad !== undefined) {
    throw new DigestMismatchError(bad.algorithm, bad.expected, bad.hex, {
      hint: `${path} is not the file that digest describes: download it again (with --force), or check the digest`,
    });
  }
  return results;
}
