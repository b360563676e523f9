/**
 * Issue 11, "A wrong file with exit 0": hostile loopback servers that lie
 * about sizes and revisions, and the checks that keep `downloadFile` from
 * ending with a wrong file and success. Each test fails without its fix.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open as openFile, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/cache/index-format.js';
import { downloadFile, type DownloadFileOptions } from '../src/download-file.js';
import { BlockfetchError, DigestMismatchError, NotEnoughSpaceError, RemoteChangedError } from '../src/errors.js';
import { parseRetryAfter } from '../src/http/headers.js';
import { statusError } from '../src/http/failures.js';
import { startFaultServer, type Content, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const KiB = 1024;
const BS = 64 * KiB;
const fastRetry = { baseDelayMs: 5, maxDelayMs: 50, jitter: 0 } as const;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-hostile-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(content: Content, options: Partial<Parameters<typeof startFaultServer>[0]> = {}): Promise<FaultServer> {
  const server = await startFaultServer({ content, ...options });
  cleanups.push(() => server.close());
  return server;
}

/** What a hand-written server answers: status, headers, and the body bytes. */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

/**
 * A hand-written loopback server that answers whatever `answer` says, with
 * none of the fault server's honesty (If-Match ignored unless `answer`
 * looks at it). Returns its URL; stopped after the test.
 */
async function lyingServer(answer: (req: IncomingMessage, index: number) => Answer): Promise<{ url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    const index = requests.push(req) - 1;
    const a = answer(req, index);
    res.writeHead(a.status, { ...a.headers, 'content-length': String(a.body.length) });
    res.end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`, requests };
}

/** A ranged answer of `content` to `req` (206 for `bytes=a-b`, else 200), with `headers`. */
function ranged(content: Buffer, req: IncomingMessage, headers: Record<string, string>): Answer {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) return { status: 200, headers, body: content };
  const from = Number(m[1]);
  const to = Math.min(Number(m[2]), content.length - 1);
  return {
    status: 206,
    headers: { ...headers, 'content-range': `bytes ${from}-${to}/${content.length}` },
    body: content.subarray(from, to + 1),
  };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `downloadFile` that must fail: its typed error. */
async function fails(promise: Promise<unknown>): Promise<BlockfetchError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return err as BlockfetchError;
  }
  throw new Error('expected the download to fail, it succeeded');
}

const base: DownloadFileOptions = { blockSize: BS, concurrency: 4, retry: fastRetry, timeoutMs: 5_000 };

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('1. a 416 without Content-Range is not an empty file', () => {
  it('a non-empty file whose server answers ranged requests 416 is fetched whole, not as 0 bytes', async () => {
    const content = payload(0, 8 * BS - 1);
    const server = await serve(content);
    server.script((req) => (req.headers.range === undefined ? undefined : { kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'big.bin');
    const result = await downloadFile(server.url, target, base);
    expect(result.size).toBe(content.length);
    expect(sha256(await readFile(target))).toBe(sha256(content));
  });

  it('a 416 to every request, with and without Range, is an error, not an empty file', async () => {
    const server = await serve(payload(0, 8 * BS - 1));
    server.script(() => ({ kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'big.bin');
    const err = await fails(downloadFile(server.url, target, { ...base, retry: { ...fastRetry, attemptsPerBlock: 2 } }));
    expect(err.message).toMatch(/416/);
    expect(await exists(target)).toBe(false);
  });

  it('a real empty file (416 without Content-Range, then Content-Length: 0) still downloads', async () => {
    const server = await serve(Buffer.alloc(0));
    server.script((req) => (req.headers.range === undefined ? undefined : { kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'empty.bin');
    const result = await downloadFile(server.url, target, base);
    expect(result.size).toBe(0);
    expect((await readFile(target)).length).toBe(0);
  });
});

describe('2. later responses must carry the identity the first one had', () => {
  const first = { etag: '"rev-a"', 'last-modified': 'Fri, 20 Nov 2026 08:15:00 GMT' };

  it('206s that drop the ETag and serve other bytes are a changed remote, not data', async () => {
    const a = payload(0, 8 * BS - 1);
    const b = Buffer.from(a).fill(0x42);
    const { url } = await lyingServer((req, index) => (index === 0 ? ranged(a, req, first) : ranged(b, req, {})));
    const target = join(await tempDir(), 'big.bin');
    const err = await fails(downloadFile(url, target, base));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect(err.message).toMatch(/etag/i);
    expect(await exists(target)).toBe(false);
  });

  it('206s that keep no Last-Modified (the only validator) are a changed remote', async () => {
    const a = payload(0, 8 * BS - 1);
    const b = Buffer.from(a).fill(0x43);
    const lm = { 'last-modified': first['last-modified'] };
    const { url } = await lyingServer((req, index) => (index === 0 ? ranged(a, req, lm) : ranged(b, req, {})));
    const target = join(await tempDir(), 'big.bin');
    const err = await fails(downloadFile(url, target, base));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect(err.message).toMatch(/lastModified|last-modified/i);
  });

  it('206s that carry another weak ETag are a changed remote', async () => {
    const a = payload(0, 8 * BS - 1);
    const { url } = await lyingServer((req, index) => ranged(a, req, { etag: index === 0 ? 'W/"a"' : 'W/"b"' }));
    const err = await fails(downloadFile(url, join(await tempDir(), 'big.bin'), base));
    expect(err).toBeInstanceOf(RemoteChangedError);
  });
});

describe('Retry-After too large to count', () => {
  it('is capped at maxRetryAfterMs, not treated as absent', () => {
    expect(parseRetryAfter('99999999999999999999')).toBe(Number.MAX_SAFE_INTEGER);
    const err = statusError(503, { 'retry-after': '99999999999999999999' }, 'http://127.0.0.1/f', 60_000);
    expect(err.retryAfterMs).toBe(60_000);
    expect(err.message).toMatch(/waiting 60000 ms/);
  });
});

describe('4. a server without Range support that rewrites the file in place', () => {
  it('is revalidated at the end with a GET: a mixed file is a changed remote, not success', async () => {
    const a = payload(0, 8 * BS - 1);
    const b = Buffer.from(a).fill(0x44);
    // The first answer starts as revision A and ends as B (rewritten while
    // streamed, as python's http.server does); later answers are B.
    const mixed = Buffer.concat([a.subarray(0, 4 * BS), b.subarray(4 * BS)]);
    const revA = { etag: '"a"', 'last-modified': 'Fri, 20 Nov 2026 08:15:00 GMT' };
    const revB = { etag: '"b"', 'last-modified': 'Fri, 20 Nov 2026 08:16:00 GMT' };
    const { url, requests } = await lyingServer((_req, index) =>
      index === 0 ? { status: 200, headers: revA, body: mixed } : { status: 200, headers: revB, body: b },
    );
    const target = join(await tempDir(), 'big.bin');
    const err = await fails(downloadFile(url, target, base));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(await exists(target)).toBe(false);
  });

  it('a server without ranges that did not change still downloads (one revalidating GET)', async () => {
    const a = payload(0, 8 * BS - 1);
    const rev = { etag: '"a"' };
    const { url, requests } = await lyingServer(() => ({ status: 200, headers: rev, body: a }));
    const target = join(await tempDir(), 'big.bin');
    await downloadFile(url, target, base);
    expect(sha256(await readFile(target))).toBe(sha256(a));
    expect(requests[1]?.headers['if-match']).toBe('"a"');
  });
});

describe('5. a digest a run knew is stored and checked by every later run', () => {
  /** Run 1 fetches 3 blocks then meets a 404; a byte of claimed block 1 is then changed on disk. */
  async function partialThenCorrupt(options: DownloadFileOptions): Promise<{ server: FaultServer; target: string }> {
    const content = payload(0, 8 * BS - 1);
    const server = await serve(content);
    server.script((req) => (req.index >= 3 ? { kind: 'status', status: 404 } : undefined));
    const target = join(await tempDir(), 'big.bin');
    await fails(downloadFile(server.url, target, { ...base, concurrency: 1, maxRequestBytes: BS, ...options }));
    const index = JSON.parse(await readFile(`${target}.blockfetch.json`, 'utf8')) as { cachedBlocks: number };
    expect(index.cachedBlocks).toBeGreaterThanOrEqual(2);
    const data = await openFile(`${target}.blockfetch`, 'r+');
    await data.write(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, BS + 16);
    await data.close();
    server.script(undefined);
    return { server, target };
  }

  it('the caller\'s expectedDigest, given once, fails a later run whose claimed block is wrong on disk', async () => {
    const content = payload(0, 8 * BS - 1);
    const expectedDigest = { algorithm: 'sha256', hex: sha256(content) } as const;
    const { server, target } = await partialThenCorrupt({ expectedDigest });
    const stored = JSON.parse(await readFile(`${target}.blockfetch.json`, 'utf8')) as { remote: { digest?: unknown } };
    expect(stored.remote.digest).toEqual(expectedDigest);
    // Run 2 is not given the digest: the stored one is checked all the same.
    const err = await fails(downloadFile(server.url, target, base));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.hint).toMatch(/not one you gave/);
    expect(await exists(target)).toBe(false);
    expect(await exists(`${target}.blockfetch`)).toBe(true);
  });

  it('every digest a run knew is stored, one per algorithm, and a digest of another algorithm does not stand in for it', async () => {
    const content = payload(0, 8 * BS - 1);
    const given256 = { algorithm: 'sha256', hex: sha256(content) } as const;
    const { server, target } = await partialThenCorrupt({ expectedDigest: given256 });
    // The bytes as they now are on disk once completed: block 1 is damaged.
    const damaged = Buffer.from(content);
    damaged.fill(0xff, BS + 16, BS + 20);
    const sha512OfDamaged = createHash('sha512').update(damaged).digest('hex');
    // Run 2 is given only a sha512, one the damaged file does have: the
    // sha256 given to run 1 is checked all the same, and fails it.
    const err = await fails(downloadFile(server.url, target, { ...base, expectedDigest: { algorithm: 'sha512', hex: sha512OfDamaged } }));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toMatch(/sha256/);
    const stored = JSON.parse(await readFile(`${target}.blockfetch.json`, 'utf8')) as { remote: { digest?: unknown; extraDigests?: unknown } };
    expect(stored.remote.digest).toEqual({ algorithm: 'sha512', hex: sha512OfDamaged });
    expect(stored.remote.extraDigests).toEqual([given256]);
    expect(await exists(target)).toBe(false);
  });

  it('a remote with a digest of each of two algorithms: both checked, a complete file with both is accepted', async () => {
    const content = payload(0, 8 * BS - 1);
    const server = await serve(content);
    const b64 = createHash('sha512').update(content).digest('base64');
    server.script(() => ({ kind: 'normal', headers: { 'repr-digest': `sha-512=:${b64}:` } }));
    const target = join(await tempDir(), 'ok.bin');
    const result = await downloadFile(server.url, target, { ...base, expectedDigest: { algorithm: 'sha256', hex: sha256(content) } });
    expect(result.digest).toMatchObject({ algorithm: 'sha256', verified: true });
    expect(sha256(await readFile(target))).toBe(sha256(content));
    // The same with a sha512 the bytes do not have: the right sha256 does not save it.
    const wrong = Buffer.alloc(64, 7).toString('base64');
    server.script(() => ({ kind: 'normal', headers: { 'repr-digest': `sha-512=:${wrong}:` } }));
    const err = await fails(downloadFile(server.url, join(await tempDir(), 'bad.bin'), { ...base, expectedDigest: { algorithm: 'sha256', hex: sha256(content) } }));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toMatch(/sha512/);
  });

  it('a resealed index that claims blocks and drops the remote (and its digest) is corrupt, not a resume', async () => {
    const content = payload(0, 8 * BS - 1);
    const { server, target } = await partialThenCorrupt({ expectedDigest: { algorithm: 'sha256', hex: sha256(content) } });
    const path = `${target}.blockfetch.json`;
    const { checksum: _old, ...index } = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const forged = { ...index, remote: null };
    const checksum = `sha256:${createHash('sha256').update(canonicalJson(forged)).digest('hex')}`;
    await writeFile(path, `${JSON.stringify({ ...forged, checksum }, null, 2)}\n`);
    const err = await fails(downloadFile(server.url, target, base));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_INDEX_CORRUPT' });
    expect(err.message).toMatch(/claims \d+ block\(s\) but records no remote revision/);
    expect(await exists(target)).toBe(false);
    expect(await exists(`${target}.blockfetch`)).toBe(true);
  });

  it('a digest the server advertised once is checked on resume when the server stops sending it', async () => {
    const content = payload(0, 8 * BS - 1);
    const b64 = createHash('sha256').update(content).digest('base64');
    const { server, target } = await partialThenCorrupt({});
    // Run 2's first answer (only) advertises the digest: run 2 records it
    // and fails; run 3, told nothing, still checks the recorded one.
    let told = false;
    server.script(() => {
      if (told) return undefined;
      told = true;
      return { kind: 'normal', headers: { 'repr-digest': `sha-256=:${b64}:` } };
    });
    const err = await fails(downloadFile(server.url, target, base));
    expect(err).toBeInstanceOf(DigestMismatchError);
    const err2 = await fails(downloadFile(server.url, target, base));
    expect(err2).toBeInstanceOf(DigestMismatchError);
  });
});

describe('3. without validators, the recorded URL must match before bytes are reused', () => {
  it('a partial of URL A is not continued from URL B of the same size', async () => {
    const a = payload(0, 8 * BS - 1);
    const b = Buffer.from(a).fill(0x45);
    const none = { etag: null, lastModified: null } as const;
    const serverA = await serve(a, none);
    // One stream (no validator): it is cut after three blocks, then refused.
    serverA.script((req) => (req.index === 1 ? { kind: 'cut', after: 3 * BS + 100 } : req.index >= 2 ? { kind: 'status', status: 404 } : undefined));
    const target = join(await tempDir(), 'big.bin');
    await fails(downloadFile(serverA.url, target, { ...base, concurrency: 1, maxRequestBytes: BS }));
    const serverB = await serve(b, none);
    const err = await fails(downloadFile(serverB.url, target, base));
    expect(err).toBeInstanceOf(RemoteChangedError);
    expect((err as RemoteChangedError).changes.map((c) => c.field)).toContain('url');
    expect(await exists(`${target}.blockfetch`)).toBe(true);
  });

  it('a renewed signed URL (same origin and path, another query) is the same remote', async () => {
    const a = payload(0, 8 * BS - 1);
    const server = await serve(a, { etag: null, lastModified: null });
    server.script((req) => (req.index === 1 ? { kind: 'cut', after: 3 * BS + 100 } : req.index === 2 ? { kind: 'status', status: 404 } : undefined));
    const target = join(await tempDir(), 'big.bin');
    await fails(downloadFile(`${server.url}?sig=1`, target, { ...base, concurrency: 1, maxRequestBytes: BS }));
    await downloadFile(`${server.url}?sig=2`, target, base);
    expect(sha256(await readFile(target))).toBe(sha256(a));
  });
});

describe('3. without validators, one stream unless a digest is known', () => {
  // The ranged GETs after the probe, less the one-byte revalidation at the end.
  const ranges = (server: FaultServer): string[] =>
    server.requests
      .slice(1)
      .map((r) => String(r.headers.range))
      .filter((r) => r !== 'bytes=0-0');

  it('no ETag, no Last-Modified, no digest: the whole file in one request, whatever the concurrency', async () => {
    const data = payload(0, 16 * BS - 1);
    const server = await serve(data, { etag: null, lastModified: null });
    const target = join(await tempDir(), 'big.bin');
    const events: string[] = [];
    await downloadFile(server.url, target, { ...base, concurrency: 8, maxRequestBytes: BS, onEvent: (e) => e.type === 'start' && events.push(`${e.connections}`) });
    expect(sha256(await readFile(target))).toBe(sha256(data));
    expect(ranges(server)).toEqual([`bytes=0-${data.length - 1}`]);
    expect(events).toEqual(['1']);
  });

  it('cut mid-stream, it goes on from where the stream stopped, still one request at a time', async () => {
    const data = payload(0, 16 * BS - 1);
    const server = await serve(data, { etag: null, lastModified: null });
    server.script((req) => (req.index === 1 ? { kind: 'cut', after: 5 * BS + 7 } : undefined));
    const target = join(await tempDir(), 'big.bin');
    await downloadFile(server.url, target, { ...base, concurrency: 8, maxRequestBytes: BS });
    expect(sha256(await readFile(target))).toBe(sha256(data));
    const asked = ranges(server);
    expect(asked[0]).toBe(`bytes=0-${data.length - 1}`);
    expect(asked).toHaveLength(2);
    expect(Number(/^bytes=(\d+)-/.exec(asked[1] ?? '')?.[1])).toBeGreaterThanOrEqual(4 * BS);
  });

  it('with a digest to check the whole file against, parallel requests are allowed', async () => {
    const data = payload(0, 16 * BS - 1);
    const server = await serve(data, { etag: null, lastModified: null });
    const target = join(await tempDir(), 'big.bin');
    const events: number[] = [];
    await downloadFile(server.url, target, {
      ...base,
      concurrency: 4,
      maxRequestBytes: BS,
      expectedDigest: { algorithm: 'sha256', hex: sha256(data) },
      onEvent: (e) => e.type === 'start' && events.push(e.connections),
    });
    expect(events).toEqual([4]);
    expect(ranges(server).length).toBeGreaterThanOrEqual(15);
  });

  it('with a strong ETag, parallel requests as before', async () => {
    const data = payload(0, 16 * BS - 1);
    const server = await serve(data);
    const target = join(await tempDir(), 'big.bin');
    await downloadFile(server.url, target, { ...base, concurrency: 4, maxRequestBytes: BS });
    expect(ranges(server).length).toBeGreaterThanOrEqual(15);
  });
});

describe('sizes at the edge of what a number can count', () => {
  /** A server that claims `size` bytes and answers any range with zeros. */
  const claiming = (size: string) =>
    lyingServer((req) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const from = Number(m?.[1] ?? 0);
      const to = Number(m?.[2] ?? 0);
      return { status: 206, headers: { 'content-range': `bytes ${from}-${to}/${size}`, etag: '"e"' }, body: Buffer.alloc(to - from + 1) };
    });

  it('2^53 - 1 bytes: the default block size grows to fit the bitmap, and the size is refused for the space, not as a usage error', async () => {
    const { url } = await claiming(String(Number.MAX_SAFE_INTEGER));
    const dir = await tempDir();
    const err = await fails(downloadFile(url, join(dir, 'big.bin'), { concurrency: 1, retry: fastRetry }));
    expect(err).toBeInstanceOf(NotEnoughSpaceError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('past 2^53 - 1 bytes: refused at once as unusable, not retried as a malformed answer', async () => {
    const { url, requests } = await claiming('9007199254740994');
    const dir = await tempDir();
    const err = await fails(downloadFile(url, join(dir, 'big.bin'), { concurrency: 1, retry: fastRetry }));
    expect(err).toMatchObject({ code: 'BLOCKFETCH_UNUSABLE_RESPONSE' });
    expect(err.message).toMatch(/9007199254740994 bytes, more than the 9007199254740991/);
    expect(requests).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
  });
});
