/**
 * NodeCacheFile writes through the raw fd (for speed on the hot path), so it
 * must do what FileHandle would: close() waits for writes still running, and
 * nothing is written after close.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeCacheFile } from '../src/cache/file.js';
import { payload } from './helpers/payload.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-cache-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('NodeCacheFile', () => {
  // Note: this checks the contract, not the race the guard exists for (a
  // reused fd number): libuv's FIFO thread pool finishes these writes before
  // the close anyway, so it also passes without the guard.
  it('writes issued before close() all land, and close() resolves after them', async () => {
    const path = join(dir, 'a.bin');
    const file = await NodeCacheFile.open(path, { create: true });
    const size = 32 * 2 ** 20;
    const writes: Promise<void>[] = [];
    for (let at = 0; at < size; at += 2 ** 20) writes.push(file.write(payload(at, at + 2 ** 20 - 1), at));
    await file.close(); // not awaiting the writes first
    await Promise.all(writes);
    expect((await readFile(path)).equals(payload(0, size - 1))).toBe(true);
  });

  it('a write after close is refused with a typed error', async () => {
    const file = await NodeCacheFile.open(join(dir, 'b.bin'), { create: true });
    await file.close();
    await expect(file.write(new Uint8Array(4), 0)).rejects.toMatchObject({ code: 'BLOCKFETCH_CACHE_CLOSED' });
  });
});
