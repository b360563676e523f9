/**
 * End to end over real HTTP: HttpReader → CachingDownloader → the real
 * LocalDownloadCache on disk, against the loopback fault server.
 *
 * 1. 256 MiB at concurrency 8 with a fault on every tenth request (cut
 *    bodies, resets, 503/429 with Retry-After, stalls, wrong ranges, extra
 *    bytes, ignored ranges) ends byte-identical, and the sha256 the
 *    downloader computed while it ran is the file's.
 * 2. A file replaced mid-download ends in BLOCKFETCH_REMOTE_CHANGED, and the
 *    data file holds no byte of the second revision; a resume refuses too,
 *    before fetching anything.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open as openFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { RemoteChangedError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import { startFaultServer, type Content, type Fault, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 1024 * 1024;
const fastRetry = { baseDelayMs: 10, maxDelayMs: 200, jitter: 0 } as const;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-e2e-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(content: Content): Promise<FaultServer> {
  const server = await startFaultServer({ content });
  cleanups.push(() => server.close());
  return server;
}

function reader(url: string, blockSize: number, extra: Partial<ConstructorParameters<typeof HttpReader>[0]> = {}): HttpReader {
  const r = new HttpReader({ url, blockSize, idleTimeoutMs: 1_000, requestTimeoutMs: 5_000, ...extra });
  cleanups.push(() => r.close());
  return r;
}

/** A generated file of `size` bytes: the self-describing payload, optionally with every byte inverted. */
function generated(size: number, invert = false): Content {
  return {
    size,
    bytes: (from, to) => {
      const bytes = payload(from, to);
      if (invert) for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0xff;
      return bytes;
    },
  };
}

/** Calls `check(chunk, offset)` over the whole data file, 16 MiB at a time. */
async function scanFile(path: string, size: number, check: (chunk: Buffer, offset: number) => void): Promise<void> {
  const file = await openFile(path, 'r');
  try {
    const buf = Buffer.alloc(16 * MiB);
    for (let offset = 0; offset < size; offset += buf.length) {
      const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, size - offset), offset);
      check(buf.subarray(0, bytesRead), offset);
    }
  } finally {
    await file.close();
  }
}

describe('HttpReader + CachingDownloader + LocalDownloadCache', () => {
  it('downloads 256 MiB at concurrency 8 through a fault on every tenth request, byte-identical', async () => {
    const SIZE = 256 * MiB;
    const BS = MiB;
    const server = await serve(generated(SIZE));
    const faults: Fault[] = [
      { kind: 'cut', after: 100_000 },
      { kind: 'reset' },
      { kind: 'status', status: 503, headers: { 'retry-after': '0' } },
      { kind: 'wrong-range', shift: 4096 },
      { kind: 'extra', bytes: 100 },
      { kind: 'status', status: 429, headers: { 'retry-after': new Date(Date.now() - 1000).toUTCString() } },
      { kind: 'ignore-range' },
      { kind: 'stall', after: 50_000 },
      { kind: 'status', status: 502 },
    ];
    let injected = 0;
    server.script((req) => {
      if (req.index % 10 !== 9) return undefined;
      return faults[injected++ % faults.length];
    });

    const dir = await tempDir();
    const dataPath = join(dir, 'big.bin');
    const indexPath = join(dir, 'big.bin.bfindex');
    const r = reader(server.url, BS);
    const info = await r.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: SIZE, pinned: true, rangesSupported: true });
    await createNewFilesForCache(dataPath, indexPath, info.contentLength, info.blockSize, { identity: info.identity });
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    cleanups.push(() => cache.close());
    const downloader = new CachingDownloader(r, cache, {
      concurrency: 8,
      maxRequestBytes: BS, // one block per request, so "every tenth request" hits many blocks
      retry: fastRetry,
      computeDigest: true, // no digest to verify against: ask for the in-order sha256 anyway, to compare below
    });
    const status = await downloader.run(AbortSignal.timeout(120_000));
    expect(status.error).toBeUndefined();
    expect(status.complete).toBe(true);
    expect(cache.complete()).toBe(true);
    await cache.close();

    // Every fault kind was injected, and each cost a retry, not a wrong byte.
    expect(injected).toBeGreaterThanOrEqual(faults.length * 2);
    // Byte-identical: every word holds its own offset; and the sha256 the
    // downloader computed in order while it ran is the file's.
    const hash = createHash('sha256');
    await scanFile(dataPath, SIZE, (chunk, offset) => {
      expect(firstMisplaced(chunk, offset)).toBe(-1);
      hash.update(chunk);
    });
    expect(status.digest).toMatchObject({ algorithm: 'sha256', hex: hash.digest('hex') });
    // Every request after the first was pinned to the one revision.
    expect(server.requests.slice(1).every((q) => q.headers['if-match'] === server.etag)).toBe(true);
  });

  it('a file replaced mid-download ends in RemoteChanged, never a mixed file; resume refuses before fetching', async () => {
    const SIZE = 32 * MiB;
    const BS = MiB;
    const server = await serve(generated(SIZE));
    const firstEtag = server.etag;
    server.script((req) => {
      // Same size, every byte different: only the ETag tells the revisions apart.
      if (req.index === 12) server.setContent(generated(SIZE, true));
    });
    const dir = await tempDir();
    const dataPath = join(dir, 'f.bin');
    const indexPath = join(dir, 'f.bin.bfindex');
    const r = reader(server.url, BS);
    const info = await r.contentLengthAndBlockSize();
    await createNewFilesForCache(dataPath, indexPath, info.contentLength, info.blockSize, { identity: info.identity });
    let cache = await LocalDownloadCache.open(dataPath, indexPath);
    cleanups.push(() => cache.close());
    const status = await new CachingDownloader(r, cache, { concurrency: 8, maxRequestBytes: BS, retry: fastRetry }).run();
    expect(status.complete).toBe(false);
    expect(status.resumable).toBe(false);
    expect(status.error).toBeInstanceOf(RemoteChangedError);
    expect(status.error?.code).toBe('BLOCKFETCH_REMOTE_CHANGED');
    expect(server.requests.some((q) => q.index > 12 && q.headers['if-match'] === firstEtag)).toBe(true);

    // Every cached block is revision 1, and no byte anywhere is revision 2:
    // each byte is revision 1's or still 0 (a cut body can stop mid-word).
    const cached = cache.cachedBytesAndBlocks();
    expect(cached.blocks).toBeGreaterThan(0);
    expect(cached.blocks).toBeLessThan(SIZE / BS);
    const range = { from: -1, to: -1 };
    for (let i = cache.nextCached(0, range); i !== -1; i = cache.nextCached(i, range)) {
      const block = Buffer.alloc(range.to - range.from + 1);
      await cache.readAt(block, range.from);
      expect(firstMisplaced(block, range.from)).toBe(-1);
    }
    await cache.close();
    await scanFile(dataPath, SIZE, (chunk, offset) => {
      const rev1 = payload(offset, offset + chunk.length - 1);
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== 0 && chunk[i] !== rev1[i]) throw new Error(`byte ${offset + i} is ${chunk[i]}: not revision 1`);
      }
    });

    // Resume: the stored identity no longer matches, found on the first request.
    cache = await LocalDownloadCache.open(dataPath, indexPath);
    const stored = cache.remoteIdentity();
    expect(stored?.etag).toBe(firstEtag);
    const before = server.requests.length;
    // The reader knows no cache figure: the downloader fills bytesAtRisk in.
    const again = reader(server.url, BS, stored ? { expected: stored } : {});
    const resumed = await new CachingDownloader(again, cache, { concurrency: 8, retry: fastRetry }).run();
    expect(resumed.error).toBeInstanceOf(RemoteChangedError);
    expect((resumed.error as RemoteChangedError).bytesAtRisk).toBe(cached.bytes);
    expect(server.requests.slice(before).map((q) => q.headers.range)).toEqual([`bytes=0-${BS - 1}`]);
  });
});
