/**
 * HttpReader against the scripted fault server (test/helpers/fault-server.ts):
 * discovery, the kept first body, pinning, response checks, body length,
 * retry classification, redirects, signed URLs, digests, cancellation.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { BlockfetchError, RemoteChangedError, HttpStatusError, InvalidArgumentError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import type { HttpReaderOptions } from '../src/http/options.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const BS = 64 * 1024;
const SIZE = 5 * BS + 1234; // a short last block
const content = payload(0, SIZE - 1);

const readers: HttpReader[] = [];
const servers: FaultServer[] = [];

function open(url: string, options: Partial<HttpReaderOptions> = {}): HttpReader {
  const reader = new HttpReader({ url, blockSize: BS, idleTimeoutMs: 2_000, requestTimeoutMs: 2_000, ...options });
  readers.push(reader);
  return reader;
}

async function serve(options: Partial<Parameters<typeof startFaultServer>[0]> = {}): Promise<FaultServer> {
  const server = await startFaultServer({ content, ...options });
  servers.push(server);
  return server;
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Reads a range, returning the error it failed with (or failing the test if it did not). */
async function failure(promise: Promise<unknown>): Promise<BlockfetchError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return err as BlockfetchError;
  }
  throw new Error('expected a failure, got success');
}

async function readRange(reader: HttpReader, from: number, to: number, signal = new AbortController().signal): Promise<Buffer> {
  return collect(await reader.getReader(from, to, signal));
}

/** Reads a range and returns the bytes that were yielded before it failed, and the error. */
async function partialRead(reader: HttpReader, from: number, to: number): Promise<{ got: Buffer; err: BlockfetchError }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of await reader.getReader(from, to, new AbortController().signal)) parts.push(chunk);
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return { got: Buffer.concat(parts), err: err as BlockfetchError };
  }
  throw new Error('expected the body to fail');
}

afterEach(async () => {
  await Promise.all(readers.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('discovery: the first request is block 0', () => {
  it('learns size and identity from one ranged GET and reuses its body for block 0', async () => {
    const server = await serve();
    const reader = open(server.url);
    const info = await reader.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: SIZE, blockSize: BS, rangesSupported: true, pinned: true });
    expect(info.identity).toEqual({ url: server.url, size: SIZE, etag: server.etag, lastModified: server.lastModified });
    expect(server.requests).toHaveLength(1);
    const first = server.requests[0]!;
    expect(first.method).toBe('GET');
    expect(first.headers.range).toBe(`bytes=0-${BS - 1}`);
    expect(first.headers['accept-encoding']).toBe('identity');
    expect(first.headers['user-agent']).toMatch(/^blockfetch\/\d+\.\d+\.\d+/);
    expect(first.headers['if-match']).toBeUndefined();

    const block0 = await readRange(reader, 0, BS - 1);
    expect(block0.equals(content.subarray(0, BS))).toBe(true);
    expect(server.requests).toHaveLength(1); // no second request for block 0
    // A second call shares the first answer.
    expect(await reader.contentLengthAndBlockSize()).toBe(info);
  });

  it('tells how long the process idled while the first look waited for its answer', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'normal', delayMs: 60 }));
    const info = await open(server.url).contentLengthAndBlockSize();
    // The 60 ms before the head were idle here (the in-process server only
    // waits on a timer); the bound leaves room for a loaded machine.
    expect(info.firstAnswerIdleMs).toBeGreaterThanOrEqual(40);
  });

  it('serves any range inside the first response from it', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const part = await readRange(reader, 1000, 4999);
    expect(firstMisplaced(part, 1000)).toBe(-1);
    expect(part.length).toBe(4000);
    expect(server.requests).toHaveLength(1);
    // Only once: the next read of block 0 is a new, pinned request.
    expect((await readRange(reader, 0, BS - 1)).equals(content.subarray(0, BS))).toBe(true);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]!.headers['if-match']).toBe(server.etag);
  });

  it('serves a range that starts inside the first response from it, then asks once for the rest', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const part = await readRange(reader, 1000, 3 * BS - 1);
    expect(part.length).toBe(3 * BS - 1000);
    expect(firstMisplaced(part, 1000)).toBe(-1);
    // Block 0 is not fetched twice: the second request starts where the first response ends, pinned.
    expect(server.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${BS - 1}`, `bytes=${BS}-${3 * BS - 1}`]);
    expect(server.requests[1]!.headers['if-match']).toBe(server.etag);
  });

  it('a refused request for the rest is thrown by getReader itself, and the kept body is closed', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script((req) => (req.index === 1 ? { kind: 'status', status: 403 } : undefined));
    const err = await reader.getReader(0, 3 * BS - 1, new AbortController().signal).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HttpStatusError);
    expect((err as HttpStatusError).status).toBe(403);
    // The kept body went with it: the next read of block 0 is a new request.
    expect((await readRange(reader, 0, BS - 1)).equals(content.subarray(0, BS))).toBe(true);
    expect(server.requests).toHaveLength(3);
  });

  it('a joined body ended early, while still in the first response, leaves the reader usable', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const body = (await reader.getReader(0, 3 * BS - 1, new AbortController().signal))[Symbol.asyncIterator]();
    const first = await body.next();
    expect(first.done).toBe(false);
    await body.return?.();
    // A later read still works (the connections were given back or closed, not left hanging).
    expect((await readRange(reader, BS, 2 * BS - 1)).equals(content.subarray(BS, 2 * BS))).toBe(true);
  });

  it('drops the kept body when another range is asked for first', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const block2 = await readRange(reader, 2 * BS, 3 * BS - 1);
    expect(firstMisplaced(block2, 2 * BS)).toBe(-1);
    expect((await readRange(reader, 0, BS - 1)).equals(content.subarray(0, BS))).toBe(true);
    expect(server.requests.map((r) => r.headers.range)).toEqual([`bytes=0-${BS - 1}`, `bytes=${2 * BS}-${3 * BS - 1}`, `bytes=0-${BS - 1}`]);
  });

  it('drops the kept body when nobody asks for it in time', async () => {
    const server = await serve();
    const reader = open(server.url, { firstBodyHoldMs: 30 });
    await reader.contentLengthAndBlockSize();
    await new Promise((r) => setTimeout(r, 150));
    expect((await readRange(reader, 0, BS - 1)).equals(content.subarray(0, BS))).toBe(true);
    expect(server.requests).toHaveLength(2);
  });

  it('a kept body waiting longer than idleTimeoutMs is not mistaken for a stall', async () => {
    const big = payload(0, 4 * 1024 * 1024 - 1);
    const server = await serve({ content: big });
    const reader = open(server.url, { blockSize: 2 * 1024 * 1024, idleTimeoutMs: 200 });
    await reader.contentLengthAndBlockSize();
    // Paused (undici's buffer is full): the body timer does not run while nobody reads.
    await new Promise((r) => setTimeout(r, 1_200));
    const block0 = await readRange(reader, 0, 2 * 1024 * 1024 - 1);
    expect(block0.equals(big.subarray(0, 2 * 1024 * 1024))).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('handles a file smaller than one block', async () => {
    const small = payload(0, 999);
    const server = await serve({ content: small });
    const reader = open(server.url);
    const info = await reader.contentLengthAndBlockSize();
    expect(info.contentLength).toBe(1000);
    expect((await readRange(reader, 0, 999)).equals(small)).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('reads an empty file as contentLength 0 (416 with bytes */0)', async () => {
    const server = await serve({ content: Buffer.alloc(0) });
    const info = await open(server.url).contentLengthAndBlockSize();
    expect(info.contentLength).toBe(0);
    expect(info.identity.size).toBe(0);
  });

  it('reads an empty file as contentLength 0 (416 with no Content-Range at all)', async () => {
    const server = await serve({ content: Buffer.alloc(0) });
    // A bare 416 says nothing of the size: the GET without Range that follows does.
    server.script((req) => (req.headers.range === undefined ? undefined : { kind: 'status', status: 416 }));
    const info = await open(server.url).contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: 0, rangesSupported: true });
    expect(server.requests.map((r) => r.headers.range)).toEqual(['bytes=0-65535', undefined]);
  });

  it('reads an empty file as contentLength 0 (200 with Content-Length 0)', async () => {
    const server = await serve({ content: Buffer.alloc(0) });
    server.script(() => ({ kind: 'ignore-range' }));
    const info = await open(server.url).contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: 0, rangesSupported: false });
  });

  it('reads an empty file as contentLength 0 (206 with bytes */0)', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'status', status: 206, headers: { 'content-range': 'bytes */0' } }));
    const info = await open(server.url).contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: 0, rangesSupported: true });
  });

  it('refuses ranges outside the file', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    for (const [from, to] of [[-1, 5], [10, 5], [0, SIZE], [0.5, 3]] as const) {
      const err = await failure(reader.getReader(from, to, new AbortController().signal));
      expect(err).toBeInstanceOf(InvalidArgumentError);
    }
  });

  it('answers an empty range (to = from - 1) with no bytes and no request', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    expect((await readRange(reader, BS, BS - 1)).length).toBe(0);
    expect((await readRange(reader, SIZE, SIZE - 1)).length).toBe(0);
    expect(server.requests).toHaveLength(1);
  });

  it('calls discovery itself when getReader comes first, and retries a failed discovery', async () => {
    const server = await serve();
    server.script((req) => (req.index === 0 ? { kind: 'status', status: 503 } : undefined));
    const reader = open(server.url);
    const err = await failure(reader.contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_HTTP_TRANSIENT', retryable: true });
    const part = await readRange(reader, 10, 20);
    expect(part.equals(content.subarray(10, 21))).toBe(true);
  });
});

describe('pinning: every later request names the revision', () => {
  it('sends If-Match with a strong ETag and the exact Range', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const last = await readRange(reader, 5 * BS, SIZE - 1);
    expect(firstMisplaced(last, 5 * BS)).toBe(-1);
    const req = server.requests[1]!;
    expect(req.headers.range).toBe(`bytes=${5 * BS}-${SIZE - 1}`);
    expect(req.headers['if-match']).toBe(server.etag);
    expect(req.headers['if-unmodified-since']).toBeUndefined();
    expect(req.headers['accept-encoding']).toBe('identity');
  });

  it('falls back to If-Unmodified-Since for a weak ETag', async () => {
    const server = await serve({ etag: 'W/"weak-1"' });
    const reader = open(server.url);
    const info = await reader.contentLengthAndBlockSize();
    expect(info.pinned).toBe(true);
    await readRange(reader, BS, 2 * BS - 1);
    expect(server.requests[1]!.headers['if-match']).toBeUndefined();
    expect(server.requests[1]!.headers['if-unmodified-since']).toBe(server.lastModified);
  });

  it('falls back to If-Unmodified-Since without an ETag', async () => {
    const server = await serve({ etag: null });
    const reader = open(server.url);
    expect((await reader.contentLengthAndBlockSize()).pinned).toBe(true);
    await readRange(reader, BS, 2 * BS - 1);
    expect(server.requests[1]!.headers['if-unmodified-since']).toBe(server.lastModified);
  });

  it('is unpinned without ETag and Last-Modified, and still catches a size change', async () => {
    const server = await serve({ etag: null, lastModified: null });
    const reader = open(server.url);
    const info = await reader.contentLengthAndBlockSize();
    expect(info.pinned).toBe(false);
    expect(info.identity).toEqual({ url: server.url, size: SIZE });
    await readRange(reader, BS, 2 * BS - 1);
    expect(server.requests[1]!.headers['if-match']).toBeUndefined();
    expect(server.requests[1]!.headers['if-unmodified-since']).toBeUndefined();
    server.setContent(payload(0, SIZE + 99), { etag: null, lastModified: null });
    const err = await failure(readRange(reader, 2 * BS, 3 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes).toEqual([{ field: 'size', before: String(SIZE), after: String(SIZE + 100) }]);
    expect(err.retryable).toBe(false);
  });

  it('a file that shrank (416 with another size) is a change, not a retry', async () => {
    const server = await serve({ etag: null, lastModified: null });
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.setContent(payload(0, BS - 1), { etag: null, lastModified: null });
    const err = await failure(readRange(reader, 3 * BS, 4 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes).toEqual([{ field: 'size', before: String(SIZE), after: String(BS) }]);
  });

  it('fails closed with RemoteChangedError on 412 after the file changed (strong ETag)', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const before = server.etag;
    server.setContent(Buffer.alloc(SIZE, 7));
    const err = await failure(readRange(reader, BS, 2 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect(err).toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED', retryable: false });
    expect((err as RemoteChangedError).changes[0]).toMatchObject({ field: 'etag', before });
    expect(server.requests[1]!.headers['if-match']).toBe(before);
  });

  it('fails closed on 412 from If-Unmodified-Since (weak ETag)', async () => {
    const server = await serve({ etag: 'W/"a"' });
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.setContent(Buffer.alloc(SIZE, 7), { etag: 'W/"b"' });
    const err = await failure(readRange(reader, BS, 2 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes[0]?.field).toBe('lastModified');
  });

  it('treats a 206 carrying another ETag as a change (a server that ignores If-Match)', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'normal', headers: { etag: '"something-else"' } }));
    const err = await failure(readRange(reader, BS, 2 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes).toEqual([{ field: 'etag', before: server.etag, after: '"something-else"' }]);
  });

  it('never hands on bytes of a second revision: change after N requests', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script((req) => {
      if (req.index === 3) server.setContent(Buffer.alloc(SIZE, 0xab));
    });
    const got: Buffer[] = [];
    let changed: unknown;
    for (let from = BS; from < SIZE; from += BS) {
      try {
        got.push(await readRange(reader, from, Math.min(from + BS, SIZE) - 1));
      } catch (err) {
        changed = err;
        break;
      }
    }
    expect(changed).toBeInstanceOf(RemoteChangedError);
    expect(got).toHaveLength(2);
    got.forEach((block, i) => expect(firstMisplaced(block, (i + 1) * BS)).toBe(-1));
  });
});

describe('resume: the expected identity', () => {
  it('accepts the same revision', async () => {
    const server = await serve();
    const expected = { url: server.url, size: SIZE, etag: server.etag!, lastModified: server.lastModified! };
    const info = await open(server.url, { expected }).contentLengthAndBlockSize();
    expect(info.identity.etag).toBe(server.etag);
  });

  it('throws RemoteChangedError listing old and new values; the bytes at risk are the cache owner\'s to fill in', async () => {
    const server = await serve();
    const expected = { url: server.url, size: SIZE - 1, etag: '"old"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' };
    const err = await failure(open(server.url, { expected }).contentLengthAndBlockSize());
    expect(err).toBeInstanceOf(RemoteChangedError);
    const changed = err as RemoteChangedError;
    expect(changed.changes).toEqual([
      { field: 'size', before: String(SIZE - 1), after: String(SIZE) },
      { field: 'etag', before: '"old"', after: server.etag },
      { field: 'lastModified', before: 'Mon, 01 Jan 2024 00:00:00 GMT', after: server.lastModified },
    ]);
    expect(changed.bytesAtRisk).toBe(0);
    expect(changed.hint).not.toContain('bytes already downloaded');
    expect(changed.retryable).toBe(false);
  });
});

describe('every response is checked before its bytes are used', () => {
  it('rejects a 206 for another range (retryable, never data)', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'wrong-range', shift: 4 }));
    const err = await failure(reader.getReader(BS, 2 * BS - 1, new AbortController().signal));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BAD_RESPONSE', retryable: true });
  });

  it('rejects a wrong first response too', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'wrong-range', shift: 8 }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BAD_RESPONSE', retryable: true });
  });

  it('rejects a Content-Length that does not match the range', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'normal', headers: { 'content-length': String(BS + 1), connection: 'close' } }));
    const err = await failure(reader.getReader(BS, 2 * BS - 1, new AbortController().signal));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BAD_RESPONSE', retryable: true });
  });

  it('rejects a 206 without Content-Range', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'normal', headers: { 'content-range': null } }));
    const err = await failure(reader.getReader(BS, 2 * BS - 1, new AbortController().signal));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BAD_RESPONSE', retryable: true });
  });

  it('rejects a compressed body', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'normal', headers: { 'content-encoding': 'gzip' } }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_UNUSABLE_RESPONSE', retryable: false });
  });

  it('a body cut short throws a retryable BLOCKFETCH_BODY_LENGTH after the good bytes', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'cut', after: 10_000 }));
    const { got, err } = await partialRead(reader, BS, 2 * BS - 1);
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH', retryable: true });
    expect(got.length).toBeLessThanOrEqual(10_000);
    expect(err.message).toMatch(new RegExp(`(broke off|ended) after ${got.length} of ${BS} bytes`));
    expect(firstMisplaced(got, BS)).toBe(-1);
  });

  it('a body longer than asked throws before yielding the extra bytes', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'extra', bytes: 10 }));
    const { got, err } = await partialRead(reader, BS, 2 * BS - 1);
    expect(err).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH', retryable: true });
    expect(got.length).toBeLessThanOrEqual(BS);
    expect(firstMisplaced(got, BS)).toBe(-1);
  });

  it('a body that stalls times out (retryable BLOCKFETCH_TIMEOUT)', async () => {
    const server = await serve();
    const reader = open(server.url, { idleTimeoutMs: 300 });
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'stall', after: 1000 }));
    const { got, err } = await partialRead(reader, BS, 2 * BS - 1);
    expect(err).toMatchObject({ code: 'BLOCKFETCH_TIMEOUT', retryable: true });
    expect(firstMisplaced(got, BS)).toBe(-1);
  });

  it('a slow consumer is not a stall: the idle timer only runs while waiting for bytes', async () => {
    const big = payload(0, 4 * 1024 * 1024 - 1);
    const server = await serve({ content: big });
    const reader = open(server.url, { blockSize: 1024 * 1024, idleTimeoutMs: 200 });
    await reader.contentLengthAndBlockSize();
    const parts: Uint8Array[] = [];
    let paused = false;
    for await (const chunk of await reader.getReader(2 * 1024 * 1024, 4 * 1024 * 1024 - 1, new AbortController().signal)) {
      parts.push(chunk);
      if (!paused) {
        paused = true;
        await new Promise((r) => setTimeout(r, 1_200)); // a very slow disk
      }
    }
    expect(Buffer.concat(parts).equals(big.subarray(2 * 1024 * 1024))).toBe(true);
  });

  it('headers that never come time out (requestTimeoutMs)', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'hang' }));
    const err = await failure(open(server.url, { requestTimeoutMs: 300 }).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_TIMEOUT', retryable: true });
  });
});

describe('retry classification', () => {
  it('a reset connection is a retryable network error', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'reset' }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true });
  });

  it('a refused connection is a retryable network error', async () => {
    const server = await serve();
    const url = server.url;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    const err = await failure(open(url).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true });
    expect(err.message).toContain('ECONNREFUSED');
  });

  it.each([408, 429, 500, 502, 503, 504])('HTTP %i is retryable', async (status) => {
    const server = await serve();
    server.script(() => ({ kind: 'status', status }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(err).toMatchObject({ status, retryable: true, retryAfterMs: undefined });
  });

  it('honours Retry-After in seconds', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'status', status: 503, headers: { 'retry-after': '7' } }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err.isRetryable()).toBe(true);
    expect(err.backoffDuration()).toBe(7000);
  });

  it('honours Retry-After as an HTTP date', async () => {
    const server = await serve();
    const at = new Date(Date.now() + 20_000).toUTCString();
    server.script(() => ({ kind: 'status', status: 429, headers: { 'retry-after': at } }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBeGreaterThan(15_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(20_000);
  });

  it('a Retry-After beyond maxRetryAfterMs is honoured up to the cap, and still retried', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'status', status: 503, headers: { 'retry-after': '3600' } }));
    const err = await failure(open(server.url, { maxRetryAfterMs: 60_000 }).contentLengthAndBlockSize());
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBe(60_000);
    expect(err.message).toContain('3600000 ms');
  });

  it.each([400, 401, 403, 404, 410, 501])('HTTP %i is fatal and named with a credential-free URL', async (status) => {
    const server = await serve();
    server.script(() => ({ kind: 'status', status }));
    const url = server.url.replace('http://', 'http://user:secret@') + '?token=hunter2&x=1';
    const err = await failure(open(url).contentLengthAndBlockSize());
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(err).toMatchObject({ status, retryable: false });
    expect(err.message).toContain(`HTTP ${status}`);
    expect(err.message).toContain('127.0.0.1');
    expect(err.message).not.toMatch(/secret|hunter2|user/);
    // The credentials went as Basic auth, never in the URL.
    expect(server.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('user:secret').toString('base64')}`);
  });
});

describe('servers without range support', () => {
  it('serves the whole file as one stream from the first response', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'ignore-range' }));
    const reader = open(server.url);
    const info = await reader.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: SIZE, rangesSupported: false, pinned: true });
    const err = await failure(reader.getReader(0, BS - 1, new AbortController().signal));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_RANGE_NOT_SUPPORTED', retryable: false });
    expect((await readRange(reader, 0, SIZE - 1)).equals(content)).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('asks again without Range, pinned, once the first body is gone', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'ignore-range' }));
    const reader = open(server.url, { firstBodyHoldMs: 0 });
    await reader.contentLengthAndBlockSize();
    await new Promise((r) => setTimeout(r, 20));
    expect((await readRange(reader, 0, SIZE - 1)).equals(content)).toBe(true);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]!.headers.range).toBeUndefined();
    expect(server.requests[1]!.headers['if-match']).toBe(server.etag);
  });

  it('refuses a 200 without Content-Length: the size is unknown', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'normal', ignoreRange: true, headers: { 'content-length': null } }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_RANGE_NOT_SUPPORTED', retryable: false });
  });
});

describe('redirects', () => {
  it('follows a same-origin redirect, keeps credentials, and sends ranges to the final URL', async () => {
    const server = await serve();
    server.script((req) => (req.url === '/start' ? { kind: 'redirect', location: '/file', status: 301 } : undefined));
    const reader = open(`${server.origin}/start`, { headers: { authorization: 'Bearer t0ken' } });
    await reader.contentLengthAndBlockSize();
    await readRange(reader, BS, 2 * BS - 1);
    expect(server.requests.map((r) => r.url)).toEqual(['/start', '/file', '/file']);
    expect(server.requests.every((r) => r.headers.authorization === 'Bearer t0ken')).toBe(true);
    expect(server.requests[2]!.headers['if-match']).toBe(server.etag);
  });

  it('drops Authorization, Cookie, named sensitive headers and every other added header when leaving the origin', async () => {
    const target = await serve();
    const front = await serve();
    front.script(() => ({ kind: 'redirect', location: target.url, status: 307 }));
    const reader = open(front.url, {
      headers: { authorization: 'Bearer t0ken', cookie: 'session=1', 'x-api-key': 'k', 'x-trace': 'keep-me' },
      sensitiveHeaders: ['X-Api-Key'],
    });
    await reader.contentLengthAndBlockSize();
    await readRange(reader, BS, 2 * BS - 1);
    expect(front.requests).toHaveLength(1);
    expect(front.requests[0]!.headers.authorization).toBe('Bearer t0ken');
    expect(target.requests).toHaveLength(2);
    for (const req of target.requests) {
      expect(req.headers.authorization).toBeUndefined();
      expect(req.headers.cookie).toBeUndefined();
      expect(req.headers['x-api-key']).toBeUndefined();
      // Issue 11 item 7: every header the caller added stays with its origin.
      expect(req.headers['x-trace']).toBeUndefined();
    }
  });

  it('stops after maxRedirects', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'redirect', location: '/again' }));
    const err = await failure(open(server.url, { maxRedirects: 3 }).contentLengthAndBlockSize());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_REDIRECT', retryable: false });
    expect(server.requests).toHaveLength(4);
  });

  it('refuses a redirect to another scheme', async () => {
    const server = await serve();
    server.script(() => ({ kind: 'redirect', location: 'ftp://127.0.0.1/file' }));
    const err = await failure(open(server.url).contentLengthAndBlockSize());
    expect(err.code).toBe('BLOCKFETCH_REDIRECT');
  });

  it('resolves an expired signed URL again and continues', async () => {
    const server = await serve({ signedUrlUses: 2 });
    const reader = open(server.url, { headers: { authorization: 'Bearer t0ken' } });
    await reader.contentLengthAndBlockSize();
    for (let from = BS; from < SIZE; from += BS) {
      const to = Math.min(from + BS, SIZE) - 1;
      expect(firstMisplaced(await readRange(reader, from, to), from)).toBe(-1);
    }
    const paths = server.requests.map((r) => r.url.replace(/\?.*/, ''));
    // token 1 serves 2 requests, then 403 → /file again → token 2, and so on.
    expect(paths).toEqual([
      '/file', '/signed/1', '/signed/1',
      '/signed/1', '/file', '/signed/2', '/signed/2',
      '/signed/2', '/file', '/signed/3', '/signed/3',
    ]);
    expect(server.requests.slice(2).every((r) => r.headers['if-match'] === server.etag)).toBe(true);
  });

  it('fails closed when the file changed behind an expired signed URL', async () => {
    const server = await serve({ signedUrlUses: 1 });
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    server.setContent(Buffer.alloc(SIZE, 1));
    const err = await failure(readRange(reader, BS, 2 * BS - 1));
    expect(err).toBeInstanceOf(RemoteChangedError);
  });
});

describe('server-provided digests', () => {
  const sha256 = createHash('sha256').update(content).digest();
  const sha512 = createHash('sha512').update(content).digest();
  const md5 = createHash('md5').update(content).digest();

  it('reads Repr-Digest (the whole file) and ignores Content-Digest (the part)', async () => {
    const partDigest = createHash('sha256').update(content.subarray(0, BS)).digest('base64');
    const server = await serve({
      headers: {
        'repr-digest': `sha-256=:${sha256.toString('base64')}:, sha-512=:${sha512.toString('base64')}:`,
        'content-digest': `sha-256=:${partDigest}:`,
      },
    });
    const reader = open(server.url);
    expect(reader.digest()).toBeUndefined();
    const info = await reader.contentLengthAndBlockSize();
    expect(reader.digest()).toEqual({ algorithm: 'sha512', hex: sha512.toString('hex') });
    expect(info.identity.digest).toEqual(reader.digest());
  });

  it('reads only Content-Digest as no digest at all', async () => {
    const server = await serve({ headers: { 'content-digest': `sha-256=:${sha256.toString('base64')}:` } });
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    expect(reader.digest()).toBeUndefined();
  });

  it('reads x-amz-checksum-sha256 and x-goog-hash', async () => {
    const amz = await serve({ headers: { 'x-amz-checksum-sha256': sha256.toString('base64') } });
    const r1 = open(amz.url);
    await r1.contentLengthAndBlockSize();
    expect(r1.digest()).toEqual({ algorithm: 'sha256', hex: sha256.toString('hex') });
    const goog = await serve({ headers: { 'x-goog-hash': `crc32c=AAAAAA==,md5=${md5.toString('base64')}` } });
    const r2 = open(goog.url);
    await r2.contentLengthAndBlockSize();
    expect(r2.digest()).toEqual({ algorithm: 'md5', hex: md5.toString('hex') });
  });
});

describe('cancellation', () => {
  it('aborting ends a stalled body at once with the signal reason', async () => {
    const server = await serve();
    const reader = open(server.url, { idleTimeoutMs: 30_000 });
    await reader.contentLengthAndBlockSize();
    server.script(() => ({ kind: 'stall', after: 100 }));
    const controller = new AbortController();
    const body = await reader.getReader(BS, 2 * BS - 1, controller.signal);
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('stop now')), 50);
    await expect(collect(body)).rejects.toThrow('stop now');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('aborting ends a request still waiting for headers', async () => {
    const server = await serve();
    const reader = open(server.url, { requestTimeoutMs: 30_000 });
    await reader.contentLengthAndBlockSize();
    const controller = new AbortController();
    // Abort once the server holds the request (not after a fixed 50 ms, which
    // under load may fire before the request is even sent).
    server.script(() => {
      setImmediate(() => controller.abort(new Error('stop now')));
      return { kind: 'hang' };
    });
    await expect(reader.getReader(BS, 2 * BS - 1, controller.signal)).rejects.toThrow('stop now');
    expect(server.requests).toHaveLength(2);
  });

  it('aborting ends the kept first body too', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const controller = new AbortController();
    const body = await reader.getReader(0, BS - 1, controller.signal);
    controller.abort(new Error('stop now'));
    await expect(collect(body)).rejects.toThrow('stop now');
  });

  it('aborting before reading the kept first body still ends it', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const controller = new AbortController();
    const body = await reader.getReader(0, BS - 1, controller.signal);
    controller.abort(new Error('stop early'));
    await expect(collect(body)).rejects.toThrow('stop early');
  });

  it('close() ends bodies that were handed out but never read', async () => {
    const server = await serve();
    const reader = new HttpReader({ url: server.url, blockSize: BS });
    await reader.contentLengthAndBlockSize();
    const unread = await reader.getReader(BS, 2 * BS - 1, new AbortController().signal);
    // Would wait forever for the unread body's request if close() did not end it.
    await reader.close();
    await expect(collect(unread)).rejects.toThrow();
  });

  it('adds no abort listener per body to a shared signal beyond undici\'s own', async () => {
    const server = await serve();
    const reader = open(server.url);
    await reader.contentLengthAndBlockSize();
    const controller = new AbortController();
    const { EventEmitter } = await import('node:events');
    const getEventListeners = (t: EventTarget, name: string): unknown[] => (EventEmitter as unknown as { getEventListeners(t: EventTarget, n: string): unknown[] }).getEventListeners(t, name);
    const bodies = [];
    for (let i = 1; i <= 4; i++) bodies.push(await reader.getReader(i * BS, (i + 1) * BS - 1, controller.signal));
    const whileOpen = getEventListeners(controller.signal, 'abort').length;
    expect(whileOpen).toBeLessThanOrEqual(4);
    for (const body of bodies) await collect(body);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('an already aborted signal rejects at once, without a request', async () => {
    const server = await serve();
    const reader = open(server.url);
    await expect(reader.getReader(0, 1, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(server.requests).toHaveLength(0);
  });
});

describe('options', () => {
  it('rejects bad options with a message naming the option, value and type', () => {
    expect(() => new HttpReader({ url: 'ftp://x/y' })).toThrow(/url must be http or https/);
    expect(() => new HttpReader({ url: 'not a url' })).toThrow(InvalidArgumentError);
    expect(() => new HttpReader({ url: 'http://127.0.0.1/', blockSize: 0 })).toThrow('blockSize must be a whole number >= 1, got 0 (number)');
    expect(() => new HttpReader({ url: 'http://127.0.0.1/', idleTimeoutMs: '5' as unknown as number })).toThrow('idleTimeoutMs must be a whole number >= 1, got "5" (string)');
    expect(() => new HttpReader({ url: 'http://127.0.0.1/', headers: { Range: 'bytes=0-1' } })).toThrow(/may not set "Range"/);
  });

  it('names the reader by its URL without credentials', () => {
    const reader = new HttpReader({ url: 'https://u:p@example.com/f?X-Amz-Signature=abc' });
    readers.push(reader);
    expect(reader.name).toBe('https://example.com/f?X-Amz-Signature=REDACTED');
  });
});

describe('proxy settings', () => {
  let proxy: { url: string; connects: string[]; close(): Promise<void> };
  beforeAll(async () => {
    const net = await import('node:net');
    const http = await import('node:http');
    const connects: string[] = [];
    const sockets = new Set<import('node:net').Socket>();
    const server = http.createServer((_req, res) => res.writeHead(405).end());
    server.on('connect', (req, client: import('node:net').Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    proxy = {
      url: `http://127.0.0.1:${port}`,
      connects,
      close: () =>
        new Promise((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    };
  });
  afterAll(async () => {
    await proxy.close();
  });

  it('goes through HTTP_PROXY, and not for hosts in NO_PROXY', async () => {
    const { createDefaultDispatcher } = await import('../src/http/dispatcher.js');
    const server = await serve();
    const via = createDefaultDispatcher({ HTTP_PROXY: proxy.url });
    try {
      const reader = open(server.url, { dispatcher: via });
      expect((await reader.contentLengthAndBlockSize()).contentLength).toBe(SIZE);
      expect(proxy.connects).toEqual([new URL(server.url).host]);
    } finally {
      await via.destroy();
    }
    const direct = createDefaultDispatcher({ HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' });
    try {
      await open(server.url, { dispatcher: direct }).contentLengthAndBlockSize();
      expect(proxy.connects).toHaveLength(1);
      expect(server.requests).toHaveLength(2);
    } finally {
      await direct.destroy();
    }
  });
});
