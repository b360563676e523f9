/**
 * The core HttpReader behaviour against a real nginx: its own Range, ETag,
 * If-Match and If-Unmodified-Since handling, not our fault server's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteChangedError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import { startNginx, type NginxRequest, type NginxServer } from './helpers/nginx.js';
import { waitFor } from './cli-helpers.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const BS = 64 * 1024;
const SIZE = 4 * BS + 777;

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts);
}

/**
 * The access log once `done(lines)` holds: nginx writes a line when a
 * response ends, which may be after the client has its last byte, so a
 * test waits for the line rather than for a fixed time.
 */
async function logWhen(nginx: NginxServer, done: (lines: NginxRequest[]) => boolean): Promise<NginxRequest[]> {
  let lines: NginxRequest[] = [];
  await waitFor(async () => done((lines = await nginx.requests())), 20_000, 10);
  return lines;
}

async function readAll(reader: HttpReader, size: number): Promise<Buffer> {
  const blocks: Buffer[] = [];
  for (let from = 0; from < size; from += BS) {
    blocks.push(await collect(await reader.getReader(from, Math.min(from + BS, size) - 1, new AbortController().signal)));
  }
  return Buffer.concat(blocks);
}

describe('HttpReader against nginx', () => {
  let nginx: NginxServer;
  const readers: HttpReader[] = [];
  const open = (name: string, extra: { expected?: import('../src/cache/types.js').RemoteIdentity } = {}): HttpReader => {
    const reader = new HttpReader({ url: nginx.url(name), blockSize: BS, ...extra });
    readers.push(reader);
    return reader;
  };

  beforeAll(async () => {
    nginx = await startNginx({
      files: {
        'a.bin': payload(0, SIZE - 1),
        'b.bin': payload(0, SIZE - 1),
        'c.bin': payload(0, SIZE - 1),
        'small.bin': payload(0, 99),
        'empty.bin': Buffer.alloc(0),
        'noetag/d.bin': payload(0, SIZE - 1),
      },
      // /noetag/: nginx sends Last-Modified but no ETag, so requests are
      // pinned with If-Unmodified-Since, which nginx itself evaluates.
      serverConfig: 'location = /moved { return 302 /a.bin; }\n    location /noetag/ { etag off; }',
    });
  });
  afterAll(async () => {
    await Promise.all(readers.map((r) => r.close()));
    await nginx?.stop();
  });

  it('discovers size and a strong "mtime-size" ETag, and reads every block byte-identical', async () => {
    const reader = open('a.bin');
    const info = await reader.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: SIZE, blockSize: BS, rangesSupported: true, pinned: true });
    expect(info.identity.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(info.identity.etag?.endsWith(`-${SIZE.toString(16)}"`)).toBe(true);
    expect(info.identity.lastModified).toMatch(/GMT$/);
    const all = await readAll(reader, SIZE);
    expect(all.length).toBe(SIZE);
    expect(firstMisplaced(all, 0)).toBe(-1);
  });

  it('nginx itself received one request per block, each pinned with If-Match', async () => {
    await nginx.writeFile('p.bin', payload(0, SIZE - 1));
    const before = (await nginx.requests()).length;
    const reader = open('p.bin');
    const info = await reader.contentLengthAndBlockSize();
    // All blocks at once: keep-alive sockets of one Agent, in parallel.
    const blocks = await Promise.all(
      Array.from({ length: Math.ceil(SIZE / BS) }, async (_, i) =>
        collect(await reader.getReader(i * BS, Math.min((i + 1) * BS, SIZE) - 1, new AbortController().signal)),
      ),
    );
    blocks.forEach((block, i) => expect(firstMisplaced(block, i * BS)).toBe(-1));
    await reader.close();
    const seen = (await logWhen(nginx, (lines) => lines.length >= before + blocks.length)).slice(before);
    expect(seen[0]).toMatchObject({ request: 'GET /p.bin HTTP/1.1', status: 206, range: `bytes=0-${BS - 1}`, ifMatch: '' });
    // Block 0 came from the first response (its getReader was called first),
    // so nginx saw exactly one request for each other block.
    const later = seen.slice(1);
    expect(later.map((r) => r.range).sort()).toEqual(
      Array.from({ length: Math.ceil(SIZE / BS) - 1 }, (_, k) => `bytes=${(k + 1) * BS}-${Math.min((k + 2) * BS, SIZE) - 1}`).sort(),
    );
    expect(later.every((r) => r.status === 206 && r.ifMatch === info.identity.etag)).toBe(true);
  });

  it('reads a range inside block 0 from the first response, and odd ranges exactly', async () => {
    const reader = open('a.bin');
    await reader.contentLengthAndBlockSize();
    expect(firstMisplaced(await collect(await reader.getReader(4, 1003, new AbortController().signal)), 4)).toBe(-1);
    const tail = await collect(await reader.getReader(SIZE - 3, SIZE - 1, new AbortController().signal));
    expect(tail.equals(payload(SIZE - 3, SIZE - 1))).toBe(true);
  });

  it('nginx answers 412 to If-Match once the file changed: RemoteChangedError, no mixed bytes', async () => {
    const reader = open('b.bin');
    const info = await reader.contentLengthAndBlockSize();
    const block1 = await collect(await reader.getReader(BS, 2 * BS - 1, new AbortController().signal));
    expect(firstMisplaced(block1, BS)).toBe(-1);
    await nginx.writeFile('b.bin', Buffer.alloc(SIZE, 0x5a)); // same size, new mtime: a new ETag
    const err = await reader.getReader(2 * BS, 3 * BS - 1, new AbortController().signal).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes[0]).toMatchObject({ field: 'etag', before: info.identity.etag });
    expect((err as RemoteChangedError).retryable).toBe(false);
  });

  it('without an ETag, pins with If-Unmodified-Since: nginx answers 412 once the file changed', async () => {
    const reader = open('noetag/d.bin');
    const info = await reader.contentLengthAndBlockSize();
    expect(info.identity.etag).toBeUndefined();
    expect(info.identity.lastModified).toBeDefined();
    expect(info.pinned).toBe(true);
    const block1 = await collect(await reader.getReader(BS, 2 * BS - 1, new AbortController().signal));
    expect(firstMisplaced(block1, BS)).toBe(-1);
    const block1Line = (l: NginxRequest): boolean => l.request.includes('/noetag/d.bin') && l.range === `bytes=${BS}-${2 * BS - 1}`;
    const seen = (await logWhen(nginx, (lines) => lines.some(block1Line))).findLast(block1Line);
    expect(seen?.ifUnmodifiedSince).toBe(info.identity.lastModified);
    await nginx.writeFile('noetag/d.bin', Buffer.alloc(SIZE, 0x5a)); // same size, a later mtime
    const err = await reader.getReader(2 * BS, 3 * BS - 1, new AbortController().signal).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).retryable).toBe(false);
    const block2Line = (l: NginxRequest): boolean => l.request.includes('/noetag/d.bin') && l.range === `bytes=${2 * BS}-${3 * BS - 1}`;
    const refused = (await logWhen(nginx, (lines) => lines.some(block2Line))).findLast(block2Line);
    expect(refused?.status).toBe(412); // nginx's own verdict, not only ours
  });

  it('detects the change on resume, before any byte is fetched', async () => {
    const first = open('c.bin');
    const { identity } = await first.contentLengthAndBlockSize();
    await nginx.writeFile('c.bin', payload(0, SIZE + 3));
    const err = await open('c.bin', { expected: identity }).contentLengthAndBlockSize().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes.map((c) => c.field)).toEqual(['size', 'etag', 'lastModified']);
  });

  it('reads a file smaller than one block with one request', async () => {
    const reader = open('small.bin');
    expect((await reader.contentLengthAndBlockSize()).contentLength).toBe(100);
    expect((await collect(await reader.getReader(0, 99, new AbortController().signal))).equals(payload(0, 99))).toBe(true);
  });

  it('reads an empty file as contentLength 0', async () => {
    const info = await open('empty.bin').contentLengthAndBlockSize();
    expect(info.contentLength).toBe(0);
  });

  it('follows nginx redirects', async () => {
    const reader = open('moved');
    const info = await reader.contentLengthAndBlockSize();
    expect(info.contentLength).toBe(SIZE);
    expect(info.identity.url).toBe(nginx.url('moved'));
    expect(firstMisplaced(await collect(await reader.getReader(BS, 2 * BS - 1, new AbortController().signal)), BS)).toBe(-1);
  });

  it('the helper fails loudly (never skips) when nginx is missing', async () => {
    await expect(startNginx({ binary: '/nonexistent/sbin/nginx' })).rejects.toThrow(/nginx is required for this test but \/nonexistent\/sbin\/nginx is missing/);
  });

  it('turns a missing file into a fatal 404', async () => {
    const err = await open('nope.bin').contentLengthAndBlockSize().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'BLOCKFETCH_HTTP_STATUS', status: 404, retryable: false });
  });
});
