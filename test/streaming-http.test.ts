/**
 * StreamingDownloader through the real HttpReader, against the scripted
 * loopback fault server (test/helpers/fault-server.ts): faults mid-stream,
 * a remote that changes, a server that ignores Range, abort; and against a
 * real nginx (test/helpers/nginx.ts): exact bytes, and a file replaced
 * mid-stream answered with 412 to the pinned If-Match.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import { AbortedError, RemoteChangedError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import { startFaultServer, type FaultServer, type RecordedRequest } from './helpers/fault-server.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const BS = 64 * 1024;
const SIZE = 40 * BS + 777;
const content = payload(0, SIZE - 1);
const sha256 = createHash('sha256').update(content).digest('hex');
const fastRetry = { baseDelayMs: 5, maxDelayMs: 50, jitter: 0 } as const;

const servers: FaultServer[] = [];
const readers: HttpReader[] = [];

async function serve(): Promise<FaultServer> {
  const server = await startFaultServer({ content });
  servers.push(server);
  return server;
}

function open(url: string, idleTimeoutMs = 5_000): HttpReader {
  const reader = new HttpReader({ url, blockSize: BS, idleTimeoutMs, requestTimeoutMs: 5_000 });
  readers.push(reader);
  return reader;
}

async function collect(dl: StreamingDownloader): Promise<{ bytes: Buffer; error: unknown }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of dl) parts.push(chunk);
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
  return { bytes: Buffer.concat(parts), error: undefined };
}

afterEach(async () => {
  await Promise.all(readers.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('StreamingDownloader over HttpReader (fault server)', () => {
  it('cuts, resets, 503s and a stall mid-stream: exact bytes, pinned requests, verified digest', async () => {
    const server = await serve();
    server.script((req) => {
      if (req.index === 0) return undefined; // discovery (also block 0's body)
      if (req.index === 2) return { kind: 'stall', after: 5000 }; // ends by the idle timeout
      if (req.index % 7 === 3) return { kind: 'cut', after: 10_000 };
      if (req.index % 11 === 5) return { kind: 'reset' };
      if (req.index === 9) return { kind: 'status', status: 503, headers: { 'retry-after': '0' } };
      return undefined;
    });
    const dl = new StreamingDownloader(open(server.url, 300), {
      concurrency: 8,
      retry: fastRetry,
      expectedDigest: { algorithm: 'sha256', hex: sha256 },
    });
    const { bytes, error } = await collect(dl);
    expect(error).toBeUndefined();
    expect(bytes.length).toBe(SIZE);
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    const status = await dl.run();
    expect(status.digest).toMatchObject({ verified: true, hex: sha256 });
    expect(status.retries).toBeGreaterThanOrEqual(5);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(status.memoryBound);
    // Every request after discovery is pinned to the revision discovery saw.
    for (const req of server.requests.slice(1)) expect(req.headers['if-match']).toBe(server.etag);
    // A cut block is resumed after the bytes it got, not re-fetched from its start.
    const rangeOf = (r: RecordedRequest): [number, number] =>
      (/bytes=(\d+)-(\d+)/.exec(String(r.headers.range))?.slice(1).map(Number) as [number, number]) ?? [-1, -1];
    const cut = server.requests.filter((r) => r.index > 2 && r.index % 7 === 3 && rangeOf(r)[1] - rangeOf(r)[0] + 1 > 10_000);
    expect(cut.length).toBeGreaterThan(2);
    for (const req of cut) {
      const [from, to] = rangeOf(req);
      const later = server.requests.filter((r) => r.index > req.index && rangeOf(r)[1] === to);
      expect(later.length).toBeGreaterThan(0);
      expect(later.every((r) => rangeOf(r)[0] > from)).toBe(true);
    }
  });

  it('a remote that changes mid-stream errors it with RemoteChangedError; only old bytes were emitted', async () => {
    const server = await serve();
    server.script((req) => {
      if (req.index === 6) server.setContent(Buffer.alloc(SIZE, 0x5a), { etag: '"v2"' });
    });
    const dl = new StreamingDownloader(open(server.url), { concurrency: 4, retry: fastRetry });
    const { bytes, error } = await collect(dl);
    expect(error).toBeInstanceOf(RemoteChangedError);
    expect(bytes.length).toBeLessThan(SIZE);
    expect(firstMisplaced(bytes, 0)).toBe(-1); // a prefix of the first revision, nothing of the second
    await expect(dl.run()).rejects.toBe(error);
  });

  it('a server that ignores Range is streamed as one response', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'ignore-range' }));
    const dl = new StreamingDownloader(open(server.url), { concurrency: 8, retry: fastRetry });
    const { bytes, error } = await collect(dl);
    expect(error).toBeUndefined();
    expect(bytes.length).toBe(SIZE);
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    expect(dl.status().mode).toBe('single');
    expect(server.requests.every((r) => r.headers.range === undefined || r.index === 0)).toBe(true);
  });

  it('abort while a request hangs ends it at once', async () => {
    const server = await serve();
    server.script((req) => (req.index === 3 ? { kind: 'hang' } : undefined));
    const controller = new AbortController();
    const dl = new StreamingDownloader(open(server.url, 60_000), { concurrency: 4, signal: controller.signal });
    const run = dl.run();
    // Wait until the hanging request was sent, then abort.
    while (server.requests.length < 4) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const { error } = await collect(dl);
    expect(error).toBeInstanceOf(AbortedError);
    // Settles without waiting for the 60 s timeouts: the hanging request was aborted.
    await expect(run).rejects.toBeInstanceOf(AbortedError);
    expect(dl.status().inFlight).toBe(0);
    expect(dl.status().bufferedBytes).toBe(0);
  });
});

describe('StreamingDownloader over HttpReader (nginx)', () => {
  const NBS = 256 * 1024;
  const NSIZE = 12 * NBS + 4321;
  const file = payload(0, NSIZE - 1);
  let nginx: NginxServer;

  beforeAll(async () => {
    nginx = await startNginx({ files: { 'a.bin': file, 'b.bin': file } });
  });

  afterAll(async () => {
    await nginx?.stop();
  });

  it('streams a file exactly, in order, with a verified digest', async () => {
    const reader = new HttpReader({ url: nginx.url('a.bin'), blockSize: NBS });
    readers.push(reader);
    const dl = new StreamingDownloader(reader, {
      concurrency: 4,
      expectedDigest: { algorithm: 'sha256', hex: createHash('sha256').update(file).digest('hex') },
    });
    const { bytes, error } = await collect(dl);
    expect(error).toBeUndefined();
    expect(bytes.length).toBe(NSIZE);
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    const status = await dl.run();
    expect(status).toMatchObject({ complete: true, mode: 'windowed', blocks: 13, downloadedBlocks: 13, requests: 13 });
    expect(status.digest?.verified).toBe(true);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(8 * NBS);
  });

  it('a file replaced mid-stream: nginx answers 412 to If-Match, the stream errors, no new byte is emitted', async () => {
    const reader = new HttpReader({ url: nginx.url('b.bin'), blockSize: NBS });
    readers.push(reader);
    const dl = new StreamingDownloader(reader, { concurrency: 4 }); // window 8 of 13 blocks
    const parts: Uint8Array[] = [];
    let error: unknown;
    try {
      for await (const chunk of dl) {
        if (parts.length === 0) {
          // Let the first window arrive whole (so no response is being read
          // while the file is rewritten), then replace the file.
          while (dl.status().inFlight > 0 || dl.status().bufferedBytes + chunk.byteLength < 8 * NBS) {
            await new Promise((r) => setTimeout(r, 5));
          }
          await nginx.writeFile('b.bin', Buffer.alloc(NSIZE, 0x5a));
        }
        parts.push(chunk);
      }
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RemoteChangedError);
    const bytes = Buffer.concat(parts);
    expect(bytes.length).toBeLessThan(NSIZE);
    expect(firstMisplaced(bytes, 0)).toBe(-1); // only the first revision's bytes
  });
});
