import { mkdtemp, readFile, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { reserveSpace } from '../src/cache/reserve-space.js';
import { BlockfetchError, NotEnoughSpaceError } from '../src/errors.js';
import { firstMisplaced, payload } from './helpers/payload.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-reserve-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function freeBytes(): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Runs `fn` with PATH pointing at an empty directory, so `fallocate` cannot be found. */
async function withoutFallocate<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env['PATH'];
  process.env['PATH'] = dir;
  try {
    return await fn();
  } finally {
    process.env['PATH'] = saved;
  }
}

describe('reserveSpace', () => {
  it('creates a file of exactly the size, with real blocks allocated (fallocate on Linux)', async () => {
    const path = join(dir, 'f');
    const size = 10 * 1024 * 1024 + 123;
    const result = await reserveSpace(path, size);
    if (process.platform === 'linux') expect(result.method).toBe('fallocate');
    const s = await stat(path);
    expect(s.size).toBe(size);
    expect(s.blocks * 512).toBeGreaterThanOrEqual(size);
    expect(result.allocatedBytes).toBe(s.blocks * 512);
  });

  it('size 0 creates an empty file and allocates nothing', async () => {
    const path = join(dir, 'empty');
    const result = await reserveSpace(path, 0);
    expect(result.method).toBeUndefined();
    expect((await stat(path)).size).toBe(0);
  });

  it("method 'sparse' only sets the length: a file larger than the free space, no blocks, a cache over it", async () => {
    const path = join(dir, 'sparse');
    const size = (await freeBytes()) + 2 ** 40; // more than the disk has: only a sparse file can be this long
    const result = await reserveSpace(path, size, { method: 'sparse' });
    expect(result.method).toBe('sparse');
    const s = await stat(path);
    expect(s.size).toBe(size);
    expect(s.blocks * 512).toBeLessThan(1024 * 1024);
    expect(result.allocatedBytes).toBe(s.blocks * 512);
    // The same option through cache creation: no free-space refusal for the data.
    const data = join(dir, 'cache.bin');
    await createNewFilesForCache(data, `${data}.json`, size, 2 ** 20, { method: 'sparse' });
    expect((await stat(data)).size).toBe(size);
    await expect(createNewFilesForCache(join(dir, 'full.bin'), join(dir, 'full.json'), size, 2 ** 20)).rejects.toBeInstanceOf(NotEnoughSpaceError);
  });

  it('size 1 works', async () => {
    const path = join(dir, 'one');
    await reserveSpace(path, 1);
    const s = await stat(path);
    expect(s.size).toBe(1);
    expect(s.blocks * 512).toBeGreaterThanOrEqual(1);
  });

  it('zero-fill allocates, reports increasing progress up to the total, and writes zeros', async () => {
    const path = join(dir, 'z');
    const size = 3 * 65536 + 17;
    const seen: number[] = [];
    const result = await reserveSpace(path, size, {
      method: 'zero-fill',
      chunkSize: 65536,
      concurrency: 3,
      onProgress: (n, total) => {
        expect(total).toBe(size);
        seen.push(n);
      },
    });
    expect(result.method).toBe('zero-fill');
    expect(seen).toHaveLength(4);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe(size);
    const s = await stat(path);
    expect(s.size).toBe(size);
    expect(s.blocks * 512).toBeGreaterThanOrEqual(size);
    expect((await readFile(path)).every((b) => b === 0)).toBe(true);
  });

  it('falls back to zero-fill when fallocate cannot run, and fails with method fallocate', async () => {
    const path = join(dir, 'fallback');
    const result = await withoutFallocate(() => reserveSpace(path, 200_000));
    expect(result.method).toBe('zero-fill');
    expect((await stat(path)).size).toBe(200_000);
    if (process.platform === 'linux') {
      const err = await withoutFallocate(() => reserveSpace(join(dir, 'strict'), 1000, { method: 'fallocate' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlockfetchError);
      expect((err as BlockfetchError).code).toBe('BLOCKFETCH_ALLOCATION_FAILED');
      expect((err as BlockfetchError).message).toContain('fallocate failed');
    }
  });

  it('keeps the bytes of an existing file and extends it (both methods)', async () => {
    for (const method of ['auto', 'zero-fill'] as const) {
      const path = join(dir, `existing-${method}`);
      await writeFile(path, payload(0, 9999));
      await reserveSpace(path, 300_000, { method });
      const bytes = await readFile(path);
      expect(bytes.length).toBe(300_000);
      expect(firstMisplaced(bytes.subarray(0, 10_000), 0)).toBe(-1);
      expect(bytes.subarray(10_000).every((b) => b === 0)).toBe(true);
    }
  });

  it('cuts a longer existing file to exactly the size', async () => {
    const path = join(dir, 'long');
    await writeFile(path, payload(0, 99_999));
    await reserveSpace(path, 4096);
    expect((await stat(path)).size).toBe(4096);
    expect(firstMisplaced(await readFile(path), 0)).toBe(-1);
  });

  it('verifies the allocation: a sparse file that zero-fill cannot fill is BLOCKFETCH_ALLOCATION_FAILED', async () => {
    const path = join(dir, 'sparse');
    await writeFile(path, '');
    await truncate(path, 1024 * 1024); // a 1 MiB hole: length right, no blocks
    const err = await reserveSpace(path, 1024 * 1024, { method: 'zero-fill' }).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_ALLOCATION_FAILED');
    expect((err as BlockfetchError).message).toMatch(/asked the filesystem for 1048576 bytes but only \d+ are allocated \(st_blocks \* 512\)/);
    // fallocate fills the hole.
    if (process.platform === 'linux') {
      expect((await reserveSpace(path, 1024 * 1024)).allocatedBytes).toBeGreaterThanOrEqual(1024 * 1024);
    }
  });

  it('throws NotEnoughSpaceError before creating anything when statfs says there is not enough', async () => {
    const path = join(dir, 'huge');
    const free = await freeBytes();
    const size = free + 1024 ** 4; // a TiB more than there is
    const err = await reserveSpace(path, size).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotEnoughSpaceError);
    const e = err as NotEnoughSpaceError;
    expect(e.code).toBe('BLOCKFETCH_NOT_ENOUGH_SPACE');
    expect(e.needed).toBe(size);
    expect(e.available).toBeLessThan(size);
    expect(e.hint).toBeTruthy();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('counts the blocks an existing file already has when checking free space', async () => {
    const path = join(dir, 'half');
    await reserveSpace(path, 1024 * 1024);
    const before = await stat(path);
    // Needs only the part not yet allocated; an existing file is not changed by a refusal.
    const size = (await freeBytes()) + 2 * 1024 ** 4;
    const err = await reserveSpace(path, size).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotEnoughSpaceError);
    expect((err as NotEnoughSpaceError).needed).toBe(size - before.blocks * 512);
    expect((await stat(path)).size).toBe(before.size);
  });

  it('an aborted signal stops it: before anything is created, and between zero-fill chunks', async () => {
    const ac = new AbortController();
    ac.abort();
    const path = join(dir, 'aborted');
    await expect(reserveSpace(path, 1000, { signal: ac.signal })).rejects.toMatchObject({ code: 'BLOCKFETCH_ABORTED' });
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });

    const midway = new AbortController();
    let calls = 0;
    const err = await reserveSpace(join(dir, 'midway'), 10 * 65536, {
      method: 'zero-fill',
      chunkSize: 65536,
      concurrency: 1,
      signal: midway.signal,
      onProgress: () => {
        calls++;
        midway.abort();
      },
    }).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_ABORTED');
    expect(calls).toBe(1);
  });

  it('rejects bad arguments with messages naming the option and value', async () => {
    const path = join(dir, 'bad');
    await expect(reserveSpace(path, -1)).rejects.toThrow(/size must be .* got -1 \(number\)/);
    await expect(reserveSpace(path, 1.5)).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
    await expect(reserveSpace(path, 10, { concurrency: 0 })).rejects.toThrow(/concurrency .* got 0 \(number\)/);
    await expect(reserveSpace(path, 10, { chunkSize: Number.NaN })).rejects.toThrow(/chunkSize/);
    // @ts-expect-error a method that does not exist
    await expect(reserveSpace(path, 10, { method: 'magic' })).rejects.toThrow(/method .* got "magic" \(string\)/);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
