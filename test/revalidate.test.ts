/**
 * Revalidation once every byte is in: pinning refuses any request that starts
 * after the remote changed, but a file rewritten IN PLACE (same inode) can
 * mix new bytes into a response already under way, whose headers still
 * carried the old ETag. These tests make exactly that happen, against the
 * scripted server and against nginx, and check that the result is a
 * `REMOTE_CHANGED` failure, never a "complete" file of two revisions.
 */
import { mkdtemp, open, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import type { RemoteIdentity } from '../src/cache/types.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import { RemoteChangedError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import { FakeReader } from './helpers/fake-reader.js';
import { startFaultServer } from './helpers/fault-server.js';
import { startNginx } from './helpers/nginx.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-revalidate-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('HttpReader.revalidate', () => {
  it('resolves while the remote is unchanged, with a pinned request for one byte', async () => {
    const server = await startFaultServer({ content: payload(0, MiB - 1) });
    cleanups.push(() => server.close());
    const reader = new HttpReader({ url: server.url, blockSize: 64 * 1024 });
    cleanups.push(() => reader.close());
    const info = await reader.contentLengthAndBlockSize();
    await reader.revalidate(AbortSignal.timeout(5000));
    const last = server.requests.at(-1);
    expect(last?.headers.range).toBe('bytes=0-0');
    expect(last?.headers['if-match']).toBe(info.identity.etag);
  });

  it('throws RemoteChangedError once the remote changed', async () => {
    const server = await startFaultServer({ content: payload(0, MiB - 1) });
    cleanups.push(() => server.close());
    const reader = new HttpReader({ url: server.url, blockSize: 64 * 1024 });
    cleanups.push(() => reader.close());
    await reader.contentLengthAndBlockSize();
    server.setContent(payload(7, MiB + 6));
    await expect(reader.revalidate(AbortSignal.timeout(5000))).rejects.toBeInstanceOf(RemoteChangedError);
  });
});

describe('the downloaders revalidate before reporting success', () => {
  it('CachingDownloader: a change reported at the end makes the run not complete', async () => {
    const size = 256 * 1024;
    const cache = await cacheIn(await tempDir(), size, 64 * 1024);
    const reader = Object.assign(new FakeReader({ size }), {
      revalidate: async (): Promise<void> => {
        throw new RemoteChangedError('fake://file', [{ field: 'etag', before: '"a"', after: '"b"' }], 0);
      },
    });
    const status = await new CachingDownloader(reader, cache).run();
    expect(status.complete).toBe(false);
    expect(status.resumable).toBe(false);
    expect(status.error?.code).toBe('BLOCKFETCH_REMOTE_CHANGED');
  });

  it('StreamingDownloader: the stream errors instead of ending cleanly', async () => {
    const size = 256 * 1024;
    const reader = Object.assign(new FakeReader({ size, blockSize: 64 * 1024 }), {
      revalidate: async (): Promise<void> => {
        throw new RemoteChangedError('fake://file', [{ field: 'etag', before: '"a"', after: '"b"' }], 0);
      },
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4 });
    const consume = async (): Promise<void> => {
      for await (const chunk of dl) void chunk;
    };
    await expect(consume()).rejects.toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
  });
});

describe('a file rewritten in place under a response already under way (nginx)', () => {
  it('ends in REMOTE_CHANGED, never in a complete file of two revisions', async () => {
    const size = 32 * MiB;
    const nginx = await startNginx({ files: { 'f.bin': payload(0, size - 1) } });
    cleanups.push(() => nginx.stop());
    const dir = await tempDir();
    // One request for the whole file, read slowly: nginx sends it from the
    // file as the socket drains, so bytes past the rewrite are the new ones.
    const reader = new HttpReader({ url: nginx.url('f.bin'), blockSize: MiB });
    cleanups.push(() => reader.close());
    const info = await reader.contentLengthAndBlockSize();
    const cache = await cacheIn(dir, info.contentLength, MiB, info.identity);
    const downloader = new CachingDownloader(reader, cache, {
      concurrency: 1,
      maxRequestBytes: size,
      bytesPerSecond: 32 * MiB,
      retry: { baseDelayMs: 10, jitter: 0 },
    });
    const running = downloader.run(AbortSignal.timeout(30_000));
    // Rewritten once the first blocks are in, not after a fixed time: under
    // load a timer came late enough that nginx had already sent the file's
    // end (its send buffer and our receive window hold several MiB), and the
    // end was the old revision. 2 MiB in, 30 MiB are still to be sent.
    while (cache.cachedBytesAndBlocks().blocks < 2) await new Promise((r) => setTimeout(r, 5));
    await rewriteInPlace(join(nginx.root, 'f.bin'), payload(1000, 1000 + size - 1));
    const status = await running;

    expect(status.error?.code).toBe('BLOCKFETCH_REMOTE_CHANGED');
    expect(status.complete).toBe(false);
    expect(status.resumable).toBe(false);
    // Every byte landed, and the data file really holds two revisions: its
    // head is the old file, its end the new one. No pinned request could
    // have caught this (none started after the change); revalidation did.
    expect(cache.complete()).toBe(true);
    const head = Buffer.alloc(MiB);
    await cache.readAt(head, 0);
    expect(firstMisplaced(head, 0)).toBe(-1);
    const end = Buffer.alloc(MiB);
    await cache.readAt(end, size - MiB);
    expect(end.equals(payload(1000 + size - MiB, 1000 + size - 1))).toBe(true);
  });
});

async function cacheIn(dir: string, size: number, blockSize: number, identity?: RemoteIdentity): Promise<LocalDownloadCache> {
  const data = join(dir, 'data');
  const index = join(dir, 'data.json');
  await createNewFilesForCache(data, index, size, blockSize, identity === undefined ? {} : { identity });
  const cache = await LocalDownloadCache.open(data, index);
  cleanups.push(() => cache.close());
  return cache;
}

/** Overwrites the file's bytes in place (same inode, same size) and moves its mtime, as an in-place deploy would. */
async function rewriteInPlace(path: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, 0);
  } finally {
    await fh.close();
  }
  const later = new Date(Date.now() + 120_000);
  await utimes(path, later, later);
}

