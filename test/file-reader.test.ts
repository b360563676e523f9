import { mkdtemp, rm, utimes, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { DEFAULT_BLOCK_SIZE } from '../src/defaults.js';
import { FileReader } from '../src/download/file-reader.js';
import { InvalidArgumentError, RemoteChangedError } from '../src/errors.js';
import { rangeForIndex } from '../src/ranges/byte-range.js';
import { MemoryCache } from './helpers/memory-cache.js';
import { firstMisplaced, payload } from './helpers/payload.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-file-reader-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('FileReader', () => {
  it('reads every block at its own offset (chunks smaller, equal and larger than blocks)', async () => {
    const size = 10_000 + 3; // a short last block
    const path = join(dir, 'blocks.bin');
    await writeFile(path, payload(0, size - 1));
    for (const [blockSize, chunkSize] of [
      [1000, 256],
      [1024, 1024],
      [777, 4096],
      [4, 3],
    ] as const) {
      const reader = new FileReader(path, { blockSize, chunkSize });
      const info = await reader.contentLengthAndBlockSize();
      expect(info).toMatchObject({ contentLength: size, blockSize, rangesSupported: true, pinned: true });
      const blocks = Math.ceil(size / blockSize);
      for (let i = 0; i < blocks; i++) {
        const r = rangeForIndex(i, size, blockSize);
        const got = await collect(await reader.getReader(r.from, r.to, new AbortController().signal));
        expect(got.length).toBe(r.to - r.from + 1);
        // The payload names its own offsets: any misplaced word shows where it came from.
        expect(got.equals(payload(r.from, r.to))).toBe(true);
        if (r.from % 4 === 0) expect(firstMisplaced(got, r.from)).toBe(-1);
      }
    }
  });

  it('reads unaligned ranges and single bytes', async () => {
    const path = join(dir, 'odd.bin');
    await writeFile(path, payload(0, 999));
    const reader = new FileReader(path, { chunkSize: 7 });
    for (const [from, to] of [
      [0, 0],
      [999, 999],
      [3, 17],
      [5, 998],
    ] as const) {
      expect((await collect(await reader.getReader(from, to, new AbortController().signal))).equals(payload(from, to))).toBe(true);
    }
    await expect(reader.getReader(10, 1000, new AbortController().signal)).rejects.toThrow(InvalidArgumentError);
    // The Reader contract: 10..9 is the empty range (no bytes); 10..8 is outside the file.
    expect((await collect(await reader.getReader(10, 9, new AbortController().signal))).length).toBe(0);
    await expect(reader.getReader(10, 8, new AbortController().signal)).rejects.toThrow(/range 10-8 is not inside/);
  });

  it('has the identity path + size + mtime, and refuses a file that changed', async () => {
    const path = join(dir, 'changing.bin');
    await writeFile(path, payload(0, 4095));
    await utimes(path, new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
    const reader = new FileReader(path);
    const info = await reader.contentLengthAndBlockSize();
    expect(info.identity).toEqual({ url: path, size: 4096, lastModified: '2026-01-02T03:04:05.000000000Z' });

    // Same size, new mtime: refused at open.
    await utimes(path, new Date('2026-01-02T03:04:06Z'), new Date('2026-01-02T03:04:06Z'));
    const err = await reader.getReader(0, 99, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes).toEqual([
      { field: 'lastModified', before: '2026-01-02T03:04:05.000000000Z', after: '2026-01-02T03:04:06.000000000Z' },
    ]);
    expect((err as RemoteChangedError).isRetryable()).toBe(false);
  });

  it('fails a body whose file changed while it was read', async () => {
    const path = join(dir, 'growing.bin');
    await writeFile(path, payload(0, 8191));
    const reader = new FileReader(path, { chunkSize: 1024 });
    await reader.contentLengthAndBlockSize();
    const body = await reader.getReader(0, 8191, new AbortController().signal);
    const read = (async () => {
      let n = 0;
      for await (const chunk of body) {
        n += chunk.length;
        if (n === 1024) await appendFile(path, Buffer.from('more'));
      }
    })();
    await expect(read).rejects.toBeInstanceOf(RemoteChangedError);
  });

  it('stops at once when aborted, and names a missing file', async () => {
    const path = join(dir, 'abort.bin');
    await writeFile(path, payload(0, 65_535));
    const reader = new FileReader(path, { chunkSize: 1024 });
    const ac = new AbortController();
    const body = await reader.getReader(0, 65_535, ac.signal);
    let n = 0;
    const reading = (async () => {
      for await (const chunk of body) {
        n += chunk.length;
        if (n >= 2048) ac.abort(new Error('enough'));
      }
    })();
    await expect(reading).rejects.toThrow('enough');
    expect(n).toBe(2048);
    await expect(new FileReader(join(dir, 'nope')).contentLengthAndBlockSize()).rejects.toThrow(/does not exist/);
    expect(() => new FileReader(path, { chunkSize: 0 })).toThrow(/chunkSize must be a whole number >= 1, got 0 \(number\)/);
  });
});

describe('FileReader defaults and a vanished file', () => {
  it('suggests the shared default block size, and names an option it refuses', async () => {
    const path = join(dir, 'defaults.bin');
    await writeFile(path, payload(0, 99));
    expect((await new FileReader(path).contentLengthAndBlockSize()).blockSize).toBe(DEFAULT_BLOCK_SIZE);
    expect(() => new FileReader(path, { blockSize: 1.5 })).toThrow('FileReader option blockSize must be a whole number >= 1, got 1.5 (number)');
  });

  it('revalidate reports a file removed since the first look as changed, not as a raw system error', async () => {
    const path = join(dir, 'vanishing.bin');
    await writeFile(path, payload(0, 99));
    const reader = new FileReader(path);
    await reader.contentLengthAndBlockSize();
    await rm(path);
    const err = await reader.revalidate(new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes).toEqual([{ field: 'size', before: '100', after: '(missing)' }]);
  });
});

describe('FileReader with the CachingDownloader', () => {
  it('copies a file, and a later run refuses the file once its mtime changed', async () => {
    const path = join(dir, 'copy-src.bin');
    const size = 300_001;
    await writeFile(path, payload(0, size - 1));
    const cache = MemoryCache.create(size, 16_384);
    const first = await new CachingDownloader(new FileReader(path, { chunkSize: 4096 }), cache, { concurrency: 4 }).run();
    expect(first.complete).toBe(true);
    expect(Buffer.from(cache.store.data).equals(payload(0, size - 1))).toBe(true);
    expect(cache.store.identity).toMatchObject({ url: path, size });

    await utimes(path, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    const second = await new CachingDownloader(new FileReader(path), MemoryCache.reopen(cache.store)).run();
    expect(second).toMatchObject({ complete: false, resumable: false });
    expect(second.error).toBeInstanceOf(RemoteChangedError);
    expect(second.error).toMatchObject({ bytesAtRisk: size, changes: [{ field: 'lastModified' }] });
  });
});
