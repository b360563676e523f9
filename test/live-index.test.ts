import { spawn } from 'node:child_process';
import { mkdtemp, open as openFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeIndex, type IndexContents } from '../src/cache/index-format.js';
import { LiveIndexWriter, readLiveIndex } from '../src/cache/live-index.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

let dir: string;
let path: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-live-'));
  path = join(dir, 'a.blockfetch.live');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An index of `numBlocks` blocks of 4 bytes whose `written` names the blocks `marked` picks. */
function contents(numBlocks: number, marked: (block: number) => boolean): IndexContents {
  const ranges = new ByteRanges(numBlocks * 4, 4);
  for (let b = 0; b < numBlocks; b++) if (marked(b)) ranges.setBlock(b);
  const none = new ByteRanges(numBlocks * 4, 4);
  return {
    contentLength: numBlocks * 4,
    blockSize: 4,
    numBlocks,
    cachedBlocks: 0,
    cachedBytes: 0,
    remote: undefined,
    bitmap: none.serialize(),
    updatedAt: new Date(0).toISOString(),
    written: { bootId: 'boot-1', cachedBlocks: ranges.setCount, cachedBytes: ranges.setBytes, bitmap: ranges.serialize() },
  };
}

const writtenCounts = (saves: readonly IndexContents[]): number[] => saves.map((c) => c.written?.cachedBlocks ?? -1).sort((a, b) => a - b);

describe('LiveIndexWriter and readLiveIndex', () => {
  it('saves alternate between two slots: the file holds the last two saves, each whole', async () => {
    const live = await LiveIndexWriter.create(path, encodeIndex(contents(100, (b) => b < 1)));
    expect(writtenCounts(await readLiveIndex(path))).toEqual([1, 1]);
    for (let n = 2; n <= 5; n++) live.save(encodeIndex(contents(100, (b) => b < n)));
    // The write is made before save() returns: nothing to wait for.
    expect(writtenCounts(await readLiveIndex(path))).toEqual([4, 5]);
    await live.close();
    expect((await stat(path)).size).toBe(2 * 4096);
  });

  it('a torn slot is skipped and the other one still read; a file with nothing valid reads as none', async () => {
    // Slots of several pages, so that a save can be torn between pages.
    const big = (n: number): Uint8Array => encodeIndex(contents(60_000, (b) => b % 3 === 0 && b < n));
    const live = await LiveIndexWriter.create(path, big(60_000));
    live.save(big(30_000));
    await live.close();
    const size = (await stat(path)).size;
    expect(size).toBeGreaterThan(2 * 4096);
    // Tear the second slot as a kill between pages would: its second page from another save.
    const file = await openFile(path, 'r+');
    await file.write(Buffer.alloc(4096, 0x41), 0, 4096, size / 2 + 4096);
    await file.close();
    expect(writtenCounts(await readLiveIndex(path))).toEqual([10_000]); // slot 0: the save after create()
    await writeFile(path, Buffer.alloc(8192, 0x20));
    expect(await readLiveIndex(path)).toEqual([]);
    await rm(path);
    expect(await readLiveIndex(path)).toEqual([]);
  });

  it('a save larger than a slot moves to a larger layout, atomically, and saving goes on', async () => {
    const live = await LiveIndexWriter.create(path, encodeIndex(contents(10, () => true)));
    expect((await stat(path)).size).toBe(2 * 4096);
    // Every other block of 100,000: a bitmap far larger than a page.
    live.save(encodeIndex(contents(100_000, (b) => b % 2 === 0)));
    live.save(encodeIndex(contents(100_000, (b) => b % 2 === 0 || b < 10)));
    await live.close();
    expect((await stat(path)).size).toBeGreaterThan(2 * 4096);
    expect(live.failure).toBeUndefined();
    // The first large save filled both slots of the new layout; the second, made while it grew, followed it.
    expect(writtenCounts(await readLiveIndex(path))).toEqual([50_000, 50_005]);
  });

  it('reads a live file written whole, as blockfetch 0.1 wrote it', async () => {
    await writeFile(path, encodeIndex(contents(100, (b) => b < 7)));
    expect(writtenCounts(await readLiveIndex(path))).toEqual([7]);
  });

  it('a kill -9 in the middle of saves never leaves the file without a valid save', async () => {
    // A child saves multi-page indexes in a tight loop; it is killed at once
    // after it says it started, many times over.
    const child = join(dir, 'saver.mjs');
    const liveModule = new URL('../src/cache/live-index.ts', import.meta.url).href;
    const formatModule = new URL('../src/cache/index-format.ts', import.meta.url).href;
    const rangesModule = new URL('../src/ranges/byte-ranges.ts', import.meta.url).href;
    await writeFile(
      child,
      `const { LiveIndexWriter } = await import(${JSON.stringify(liveModule)});
const { encodeIndex } = await import(${JSON.stringify(formatModule)});
const { ByteRanges } = await import(${JSON.stringify(rangesModule)});
const saves = [0, 1].map((k) => {
  const r = new ByteRanges(240000, 4);
  for (let b = k; b < 60000; b += 3) r.setBlock(b);
  return encodeIndex({ contentLength: 240000, blockSize: 4, numBlocks: 60000, cachedBlocks: 0, cachedBytes: 0, remote: undefined,
    bitmap: new ByteRanges(240000, 4).serialize(), updatedAt: new Date(0).toISOString(),
    written: { bootId: 'boot-1', cachedBlocks: r.setCount, cachedBytes: r.setBytes, bitmap: r.serialize() } });
});
const live = await LiveIndexWriter.create(process.argv[2], saves[0]);
console.log('saving');
for (let i = 0; ; i++) live.save(saves[i % 2]);
`,
    );
    let pagesSeen = 0;
    for (let round = 0; round < 8; round++) {
      await rm(path, { force: true });
      const proc = spawn(process.execPath, ['--import', 'tsx', child, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = createInterface({ input: proc.stdout });
      await new Promise<void>((resolve, reject) => {
        lines.once('line', () => resolve());
        proc.once('exit', (code) => reject(new Error(`the saver exited with ${code} before saving`)));
      });
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
      const saves = await readLiveIndex(path);
      expect(saves.length, `round ${round}`).toBeGreaterThanOrEqual(1);
      pagesSeen = Math.max(pagesSeen, (await readFile(path)).length / 2 / 4096);
    }
    // The saves spanned several pages, so a kill could have torn one.
    expect(pagesSeen).toBeGreaterThan(1);
  }, 60_000);
});
