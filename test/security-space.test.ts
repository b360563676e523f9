/**
 * The free-space check counts everything a download writes next to its
 * target (issue 11, "the free-space check ignores the index and temp
 * files"): the data, the index at its largest, the index's temp file and
 * the lock file. Run on a private 8 MiB tmpfs (root only, since mounting
 * needs it), so other processes writing to the shared disk cannot change
 * the numbers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createNewFilesForCache, indexSizeBound } from '../src/cache/cache-files.js';
import { encodeIndex, indexFromRanges } from '../src/cache/index-format.js';
import { NotEnoughSpaceError } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

const maybeRoot = process.platform === 'linux' && process.getuid?.() === 0;

describe('indexSizeBound', () => {
  it('is never below the real index, whichever blocks are done (worst cases: every other block, all, none, runs)', () => {
    for (const numBlocks of [1, 7, 4096, 4097, 65536, 65537, 200_000]) {
      const empty = new ByteRanges(numBlocks * 4096, 4096);
      const remote = { url: 'http://127.0.0.1/f', size: numBlocks * 4096, etag: '"e"' };
      const emptyBytes = encodeIndex(indexFromRanges(empty, remote)).length;
      const bound = indexSizeBound(emptyBytes, numBlocks);
      const patterns: ((i: number) => boolean)[] = [(i) => i % 2 === 0, () => true, () => false, (i) => i % 7 < 3, (i) => i % 4096 === 0];
      for (const pattern of patterns) {
        const ranges = new ByteRanges(numBlocks * 4096, 4096);
        for (let i = 0; i < numBlocks; i++) if (pattern(i)) ranges.setBlock(i);
        const real = encodeIndex(indexFromRanges(ranges, remote)).length;
        expect(real, `${numBlocks} blocks`).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe.skipIf(!maybeRoot)('on a full filesystem', () => {
  let mount: string;
  /** False where root still may not mount (a container without CAP_SYS_ADMIN): the tests are skipped. */
  let mounted = false;
  beforeAll(async () => {
    mount = await mkdtemp(join(tmpdir(), 'blockfetch-space-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mount], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mount]);
    await rm(mount, { recursive: true, force: true });
  });

  it('refuses, before anything is written, a file whose data fits but whose index and temp file do not', async (ctx) => {
    if (!mounted) ctx.skip();
    const fs = await statfs(mount);
    const available = fs.bavail * fs.bsize;
    // The data leaves two blocks free: enough for the data file alone and
    // an empty index, not for the index at its largest plus its temp file.
    const size = available - 2 * fs.bsize;
    const data = join(mount, 'f.blockfetch');
    let err: unknown;
    try {
      await createNewFilesForCache(data, `${data}.json`, size, 4096, { method: 'zero-fill', lock: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NotEnoughSpaceError);
    const e = err as NotEnoughSpaceError;
    expect(e.needed).toBeGreaterThan(size);
    expect(e.needed - size).toBeGreaterThanOrEqual(3 * fs.bsize); // index, temp, lock: a block each at least
    expect(await readdir(mount)).toEqual([]);
  });

  it('still creates one that fits with all its files', async (ctx) => {
    if (!mounted) ctx.skip();
    const fs = await statfs(mount);
    const size = fs.bavail * fs.bsize - 16 * fs.bsize;
    const data = join(mount, 'g.blockfetch');
    await createNewFilesForCache(data, `${data}.json`, size, 4096, { method: 'zero-fill', lock: false });
    expect((await readdir(mount)).sort()).toEqual(['g.blockfetch', 'g.blockfetch.json']);
    await rm(data);
    await rm(`${data}.json`);
  });
});
