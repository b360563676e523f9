/**
 * The pure parts of the HTTP layer, without a server: header parsing, digest
 * headers, the redirect policy, pinning headers, status classification and
 * option validation.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { BlockfetchError, HttpStatusError, InvalidArgumentError } from '../src/errors.js';
import { digestFromHeaders, parseLegacyDigest, parseReprDigest } from '../src/http/digest-headers.js';
import { networkError, statusError } from '../src/http/failures.js';
import { isStrongEtag, parseContentLength, parseContentRange, parseRetryAfter } from '../src/http/headers.js';
import { pinHeaders, pinKind } from '../src/http/identity.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_MAX_RETRY_AFTER_MS, DEFAULT_TIMEOUT_MS } from '../src/defaults.js';
import { defaultHttpReaderOptions, resolveHttpReaderOptions } from '../src/http/options.js';
import { DEFAULT_SENSITIVE_HEADERS, followRedirect } from '../src/http/redirect.js';
import { BLOCKFETCH_VERSION, DEFAULT_USER_AGENT } from '../src/http/version.js';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { exactBody } from '../src/http/body.js';

describe('parseContentRange', () => {
  it('reads the three forms', () => {
    expect(parseContentRange('bytes 0-99/1000')).toEqual({ from: 0, to: 99, size: 1000 });
    expect(parseContentRange('bytes 5-5/*')).toEqual({ from: 5, to: 5, size: undefined });
    expect(parseContentRange('bytes */0')).toEqual({ from: -1, to: -1, size: 0 });
    expect(parseContentRange('BYTES 0-0/1')).toEqual({ from: 0, to: 0, size: 1 });
  });
  it('rejects malformed and impossible ranges', () => {
    for (const bad of [undefined, '', 'bytes 0-99', 'bytes 9-0/10', 'bytes 0-10/10', 'bytes */*', 'items 0-1/2', 'bytes 0-1/2, bytes 0-1/2', 'bytes -1-2/3', 'bytes 0-99999999999999999/1']) {
      expect(parseContentRange(bad)).toBeUndefined();
    }
  });
});

describe('parseContentLength, isStrongEtag', () => {
  it('reads digits only', () => {
    expect(parseContentLength('42')).toBe(42);
    expect(parseContentLength(' 0 ')).toBe(0);
    expect(parseContentLength('-1')).toBeUndefined();
    expect(parseContentLength('4e3')).toBeUndefined();
    expect(parseContentLength('1, 1')).toBeUndefined();
  });
  it('tells strong from weak ETags', () => {
    expect(isStrongEtag('"abc"')).toBe(true);
    expect(isStrongEtag('W/"abc"')).toBe(false);
    expect(isStrongEtag('abc')).toBe(false);
    expect(isStrongEtag(undefined)).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now)).toBe(0); // in the past
  });
  it('ignores anything else', () => {
    for (const bad of [undefined, '', '1.5', '-3', 'soon', '2026-03-01']) expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});

describe('server digests', () => {
  const data = Buffer.from('hello blockfetch');
  const b64 = (alg: string): string => createHash(alg).update(data).digest('base64');
  const hex = (alg: string): string => createHash(alg).update(data).digest('hex');

  it('Repr-Digest: structured-field byte sequences, strongest wins', () => {
    expect(parseReprDigest(`sha-256=:${b64('sha256')}:`)).toEqual({ algorithm: 'sha256', hex: hex('sha256') });
    expect(parseReprDigest(`sha-256=:${b64('sha256')}:, sha-512=:${b64('sha512')}:`)).toEqual({ algorithm: 'sha512', hex: hex('sha512') });
    expect(parseReprDigest(`unixsum=:AAAA:, sha-256=:${b64('sha256')}:`)?.algorithm).toBe('sha256');
  });
  it('Repr-Digest: rejects wrong lengths, missing colons and unknown algorithms', () => {
    expect(parseReprDigest(`sha-256=:${b64('md5')}:`)).toBeUndefined();
    expect(parseReprDigest(`sha-256=${b64('sha256')}`)).toBeUndefined();
    expect(parseReprDigest(`crc32=:AAAAAA==:`)).toBeUndefined();
  });
  it('legacy Digest, case-insensitive', () => {
    expect(parseLegacyDigest(`SHA-256=${b64('sha256')}`)).toEqual({ algorithm: 'sha256', hex: hex('sha256') });
    expect(parseLegacyDigest(`MD5=${b64('md5')},SHA=${b64('sha1')}`)).toEqual({ algorithm: 'sha1', hex: hex('sha1') });
  });
  it('prefers Repr-Digest, never uses Content-Digest, skips S3 composites', () => {
    expect(digestFromHeaders({ 'content-digest': `sha-256=:${b64('sha256')}:` })).toBeUndefined();
    expect(digestFromHeaders({ 'repr-digest': `sha-256=:${b64('sha256')}:`, digest: `MD5=${b64('md5')}` })?.algorithm).toBe('sha256');
    expect(digestFromHeaders({ 'x-amz-checksum-sha256': `${b64('sha256')}-3` })).toBeUndefined();
    expect(digestFromHeaders({ 'x-amz-checksum-sha256': b64('sha256'), 'x-amz-checksum-type': 'COMPOSITE' })).toBeUndefined();
    expect(digestFromHeaders({ 'x-amz-checksum-sha256': b64('sha256'), 'x-amz-checksum-type': 'FULL_OBJECT' })).toEqual({ algorithm: 'sha256', hex: hex('sha256') });
    expect(digestFromHeaders({ 'x-goog-hash': ['crc32c=n03x6A==', `md5=${b64('md5')}`] })).toEqual({ algorithm: 'md5', hex: hex('md5') });
    expect(digestFromHeaders({ 'x-goog-hash': 'crc32c=n03x6A==' })).toBeUndefined();
    // Stored gzip-compressed: the hashes are of the stored bytes, not of the file served.
    expect(digestFromHeaders({ 'x-goog-hash': `md5=${b64('md5')}`, 'x-goog-stored-content-encoding': 'gzip' })).toBeUndefined();
    expect(digestFromHeaders({ 'x-goog-hash': `md5=${b64('md5')}`, 'x-goog-stored-content-encoding': 'identity' })).toEqual({ algorithm: 'md5', hex: hex('md5') });
    expect(digestFromHeaders({})).toBeUndefined();
  });
});

describe('followRedirect (the redirect policy)', () => {
  const creds = { authorization: 'Bearer t', cookie: 'a=1', 'x-api-key': 'k', accept: '*/*' };
  const sensitive = [...DEFAULT_SENSITIVE_HEADERS, 'x-api-key'];

  it('resolves relative locations and keeps headers on the same origin', () => {
    const next = followRedirect(new URL('https://a.example/dir/f'), '../g?x=1', creds, sensitive);
    expect(next.url.href).toBe('https://a.example/g?x=1');
    expect(next.headers).toEqual(creds);
  });
  it('drops credentials when the origin changes, even only the port', () => {
    for (const location of ['https://b.example/f', 'https://a.example:8443/f', 'http://127.0.0.1/f']) {
      const from = location.startsWith('http://') ? new URL('http://127.0.0.2/f') : new URL('https://a.example/f');
      expect(followRedirect(from, location, creds, sensitive).headers).toEqual({ accept: '*/*' });
    }
  });
  it('refuses https to http, other schemes, and a missing or broken Location', () => {
    const from = new URL('https://a.example/f');
    for (const location of ['http://a.example/f', 'ftp://a.example/f', 'file:///etc/passwd', undefined, '', 'http://[::1']) {
      let err: unknown;
      try {
        followRedirect(from, location, creds, sensitive);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BlockfetchError);
      expect(err).toMatchObject({ code: 'BLOCKFETCH_REDIRECT', retryable: false });
    }
  });
  it('allows http to https', () => {
    expect(followRedirect(new URL('http://a.example/f'), 'https://a.example/f', {}, sensitive).url.protocol).toBe('https:');
  });
});

describe('pinning headers', () => {
  const url = 'http://h/f';
  it('strong ETag → If-Match; weak or none → If-Unmodified-Since; neither → nothing', () => {
    const lm = 'Wed, 01 Jan 2025 00:00:00 GMT';
    expect(pinHeaders({ url, size: 1, etag: '"x"', lastModified: lm })).toEqual({ 'if-match': '"x"' });
    expect(pinHeaders({ url, size: 1, etag: 'W/"x"', lastModified: lm })).toEqual({ 'if-unmodified-since': lm });
    expect(pinHeaders({ url, size: 1, lastModified: lm })).toEqual({ 'if-unmodified-since': lm });
    expect(pinHeaders({ url, size: 1, etag: 'W/"x"' })).toEqual({});
    expect(pinKind({ url, size: 1 })).toBe('none');
  });
});

describe('status and network error classification', () => {
  it('retries exactly 408, 429, 500, 502, 503, 504', () => {
    const retryable = [];
    for (let status = 400; status < 600; status++) if (statusError(status, {}, 'http://h/f', 1000).retryable) retryable.push(status);
    expect(retryable).toEqual([408, 429, 500, 502, 503, 504]);
  });
  it('carries Retry-After, capped at maxRetryAfterMs and still retryable', () => {
    expect(statusError(503, { 'retry-after': '2' }, 'http://h/f', 5000).retryAfterMs).toBe(2000);
    const tooLong = statusError(503, { 'retry-after': '10' }, 'http://h/f', 5000);
    expect(tooLong).toBeInstanceOf(HttpStatusError);
    expect(tooLong).toMatchObject({ retryable: true, retryAfterMs: 5000 });
  });
  it('maps undici errors: timeouts, bad arguments, the rest', () => {
    expect(networkError(Object.assign(new Error('t'), { code: 'UND_ERR_BODY_TIMEOUT' }), 'http://h/f')).toMatchObject({ code: 'BLOCKFETCH_TIMEOUT', retryable: true });
    expect(networkError(Object.assign(new Error('bad'), { code: 'UND_ERR_INVALID_ARG' }), 'http://h/f')).toBeInstanceOf(InvalidArgumentError);
    expect(networkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'http://u:p@h/f')).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true, message: 'http://h/f: x (ECONNRESET)' });
    const reason = new Error('mine');
    expect(networkError(new Error('whatever'), 'http://h/f', AbortSignal.abort(reason))).toBe(reason);
  });
});

describe('options', () => {
  it('fills defaults and fixed headers', () => {
    const o = resolveHttpReaderOptions({ url: 'http://127.0.0.1/f', headers: { 'X-Trace': '1' } });
    expect(o.blockSize).toBe(DEFAULT_BLOCK_SIZE);
    expect(o.maxRedirects).toBe(10);
    expect(o.idleTimeoutMs).toBe(defaultHttpReaderOptions.idleTimeoutMs);
    expect(o.headers).toEqual({ 'x-trace': '1', 'user-agent': DEFAULT_USER_AGENT, 'accept-encoding': 'identity' });
    expect(o.sensitiveHeaders).toEqual(['authorization', 'cookie', 'proxy-authorization']);
  });
  it('takes the User-Agent version from package.json', () => {
    const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
    expect(BLOCKFETCH_VERSION).toBe(pkg.version);
    expect(DEFAULT_USER_AGENT).toBe(`blockfetch/${pkg.version}`);
  });
  it('moves URL credentials into a Basic Authorization header', () => {
    const o = resolveHttpReaderOptions({ url: 'http://us%40er:p%3Ass@127.0.0.1/f' });
    expect(o.url.href).toBe('http://127.0.0.1/f');
    expect(o.headers['authorization']).toBe(`Basic ${Buffer.from('us@er:p:ss').toString('base64')}`);
  });
  it('takes its defaults from src/defaults.ts, as every other entry point does', () => {
    const o = resolveHttpReaderOptions({ url: 'http://h/' });
    expect(o.requestTimeoutMs).toBe(DEFAULT_TIMEOUT_MS);
    expect(o.idleTimeoutMs).toBe(DEFAULT_TIMEOUT_MS);
    expect(o.maxRetryAfterMs).toBe(DEFAULT_MAX_RETRY_AFTER_MS);
  });
  it('names the owner, the option, the value and its type', () => {
    expect(() => resolveHttpReaderOptions({ url: 'http://h/', firstBodyHoldMs: -1 })).toThrow(
      'HttpReader option firstBodyHoldMs must be a whole number >= 0, got -1 (number)',
    );
  });
  it('names the option, the value and its type', () => {
    const bad: [object, RegExp][] = [
      [{ url: 'http://h/', maxRedirects: -1 }, /maxRedirects must be a whole number >= 0, got -1 \(number\)/],
      [{ url: 'http://h/', blockSize: 1.5 }, /blockSize must be a whole number >= 1, got 1.5 \(number\)/],
      [{ url: 42 }, /url must be a string or URL, got number/],
      [{ url: 'http://h/', headers: { 'If-Match': '"x"' } }, /may not set "If-Match"/],
      [{ url: 'http://h/', headers: { a: 1 } }, /headers\["a"\] must be a string, got number/],
      [{ url: 'http://h/', dispatcher: {} }, /dispatcher must be an undici Dispatcher/],
      [{ url: 'http://h/', headers: { 'bad name': 'x' } }, /invalid header name "bad name"/],
      [{ url: 'http://h/', headers: { authorization: 'Bearer x\r\nHost: evil' } }, /headers\["authorization"\] contains a line break or NUL$/],
      [{ url: 'http://h/', expected: { etag: '"x"' } }, /expected must be a RemoteIdentity/],
    ];
    for (const [options, message] of bad) {
      expect(() => resolveHttpReaderOptions(options as never)).toThrow(message);
    }
  });
});

describe('exactBody (any chunking of any body)', () => {
  /** Splits `data` at the given cut points into a Readable of Buffers. */
  const chunked = (data: Buffer, cuts: number[]): Readable => {
    const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let at = 0;
    for (const p of [...points, data.length]) {
      if (p > at) pieces.push(data.subarray(at, p));
      at = Math.max(at, p);
    }
    return Readable.from(pieces, { objectMode: false });
  };
  const drain = async (body: AsyncIterable<Uint8Array>): Promise<{ out: Buffer; err?: unknown }> => {
    const parts: Uint8Array[] = [];
    try {
      for await (const c of body) parts.push(c);
      return { out: Buffer.concat(parts) };
    } catch (err) {
      return { out: Buffer.concat(parts), err };
    }
  };

  it("yields exactly the asked bytes, or a retryable BODY_LENGTH error and never a byte past them", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 50 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom<'error' | 'discard'>('error', 'discard'),
        async (bodyLength, length, skip, cuts, beyond) => {
          const data = Buffer.from(Array.from({ length: bodyLength }, (_, i) => i % 251));
          const { out, err } = await drain(exactBody(chunked(data, cuts), { length, skip, beyond, url: 'http://h/f' }));
          const wanted = data.subarray(Math.min(skip, data.length), Math.min(skip + length, data.length));
          // Whatever happened, what was yielded is a prefix of the asked bytes.
          expect(wanted.subarray(0, out.length).equals(out)).toBe(true);
          const available = Math.max(0, bodyLength - skip);
          if (available < length) {
            expect(err).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH', retryable: true });
          } else if (available > length && beyond === 'error') {
            expect(err).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH', retryable: true });
            expect(out.length).toBeLessThanOrEqual(length);
          } else {
            expect(err).toBeUndefined();
            expect(out.equals(wanted)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
