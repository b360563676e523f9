/**
 * S3Reader against s3rver (a real S3-compatible server, test/helpers/s3-server.ts):
 * the Reader contract, the requests it sends (signed, pinned, HEAD with
 * checksum mode), s3rver's `bytes=0-0` quirk, the full-object checksum, a
 * replaced object, and the clear errors (wrong secret, unknown key id,
 * missing key or bucket) with no retry loop.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { downloadFile } from '../src/download-file.js';
import { BlockfetchError } from '../src/errors.js';
import { resolveS3Config, type S3Config } from '../src/s3/config.js';
import { S3Reader } from '../src/s3/s3-reader.js';
import { payload } from './helpers/payload.js';
import { readRange, readerContract, type ReaderFault } from './helpers/reader-contract.js';
import { S3RVER_ACCESS_KEY_ID, startS3Server, type S3Fault, type S3Server } from './helpers/s3-server.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE';

let s3: S3Server;
let dir: string;
let made = 0;

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bucket'] });
  dir = await mkdtemp(join(tmpdir(), 'bf-s3-reader-'));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Config for `server` with s3rver's key id and the given secret (and token). */
async function configFor(server: S3Server, secret = SECRET, sessionToken?: string): Promise<S3Config> {
  return resolveS3Config({
    env: {
      HOME: dir,
      AWS_ENDPOINT_URL_S3: server.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: secret,
      ...(sessionToken === undefined ? {} : { AWS_SESSION_TOKEN: sessionToken }),
    },
  });
}

function s3Fault(fault: ReaderFault): S3Fault {
  switch (fault.kind) {
    case 'cut':
      return { kind: 'cut', after: fault.after };
    case 'stall':
      return { kind: 'stall', after: fault.after };
    case 'refuse':
      return { kind: 'refuse', retryAfterSeconds: fault.retryAfterMs / 1000 };
    case 'long':
      throw new Error('not offered');
  }
}

readerContract('S3Reader over s3rver', {
  faults: ['cut', 'stall', 'refuse'],
  sourceFaults: 'transient',
  advertisesDigest: true,
  make: async (content, options = {}) => {
    const key = `contract/${++made}.bin`;
    await s3.put('bucket', key, content, { checksum: options.digest !== undefined });
    const reader = new S3Reader({ bucket: 'bucket', key, config: await configFor(s3), blockSize: 4096 });
    return {
      reader,
      fault: async (fault) => s3.fault(s3Fault(fault)),
      close: () => reader.close(),
    };
  },
});

describe('S3Reader requests', () => {
  const readers: S3Reader[] = [];
  afterEach(async () => {
    await Promise.all(readers.splice(0).map((r) => r.close()));
  });
  const reader = async (key: string, config?: S3Config, server: S3Server = s3): Promise<S3Reader> => {
    const r = new S3Reader({ bucket: 'bucket', key, config: config ?? (await configFor(server)), blockSize: 4096 });
    readers.push(r);
    return r;
  };

  it('HEADs with checksum mode, then signs every ranged GET, Range and If-Match included, pinned to the ETag', async () => {
    const content = payload(0, 49_999);
    const etag = await s3.put('bucket', 'signed.bin', content);
    const first = s3.requests.length;
    const r = await reader('signed.bin', await configFor(s3, SECRET, TOKEN));
    const info = await r.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: 50_000, rangesSupported: true, pinned: true, identity: { url: 's3://bucket/signed.bin', etag, size: 50_000 } });
    const got = await readRange(r, 100, 20_099);
    expect(got.error).toBeUndefined();
    expect(got.bytes.equals(content.subarray(100, 20_100))).toBe(true);
    const [head, get] = s3.requests.slice(first);
    expect(head?.method).toBe('HEAD');
    expect(head?.headers['x-amz-checksum-mode']).toBe('ENABLED');
    expect(get?.method).toBe('GET');
    expect(get?.headers.range).toBe('bytes=100-20099');
    expect(get?.headers['if-match']).toBe(etag);
    expect(get?.headers['x-amz-security-token']).toBe(TOKEN);
    const signed = /SignedHeaders=([^,]+)/.exec(String(get?.headers.authorization))?.[1]?.split(';');
    expect(signed).toEqual(expect.arrayContaining(['host', 'range', 'if-match', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']));
    // The secret itself never travels.
    expect(JSON.stringify(s3.requests.slice(first))).not.toContain(SECRET);
  });

  it('sends anonymous requests without any signature when there are no credentials', async () => {
    await s3.put('bucket', 'public.bin', payload(0, 999));
    const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: s3.endpoint } });
    expect(config.credentials).toBeUndefined();
    const first = s3.requests.length;
    const got = await readRange(await reader('public.bin', config), 0, 999);
    expect(got.bytes.equals(payload(0, 999))).toBe(true);
    for (const request of s3.requests.slice(first)) {
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers['x-amz-date']).toBeUndefined();
    }
  });

  it("reads bytes=0-0 of a large object from s3rver (which answers it with the whole object) without downloading the rest", async () => {
    const size = 32 * 1024 * 1024;
    const content = payload(0, size - 1);
    await s3.put('bucket', 'zero.bin', content);
    const r = await reader('zero.bin');
    await r.contentLengthAndBlockSize();
    const first = s3.requests.length;
    const got = await readRange(r, 0, 0);
    expect(got.error).toBeUndefined();
    expect(got.bytes.equals(content.subarray(0, 1))).toBe(true);
    const get = s3.requests.slice(first).find((q) => q.method === 'GET');
    expect(get?.headers.range).toBe('bytes=0-0');
    // The connection was closed after the first byte: s3rver got to send a
    // socket buffer's worth at most, not the 32 MiB it started to.
    await new Promise((resolve) => setImmediate(resolve));
    expect(get?.bytesSent).toBeLessThan(size / 4);
    // And the reader still works.
    const again = await readRange(r, 5, 9);
    expect(again.bytes.equals(content.subarray(5, 10))).toBe(true);
  });

  it('advertises the full-object x-amz-checksum-sha256, and downloadFile verifies against it', async () => {
    const content = payload(0, 99_999);
    await s3.put('bucket', 'summed.bin', content, { checksum: true });
    const r = await reader('summed.bin');
    await r.contentLengthAndBlockSize();
    expect(r.digest()).toEqual({ algorithm: 'sha256', hex: createHash('sha256').update(content).digest('hex') });
    const target = join(dir, 'summed.bin');
    const result = await downloadFile(r, target);
    expect(result.digest).toMatchObject({ algorithm: 'sha256', verified: true });
    expect((await readFile(target)).equals(content)).toBe(true);
  });

  it('a checksum that does not match the bytes fails the download as a digest mismatch, keeping the partial file', async () => {
    await s3.put('bucket', 'lying.bin', payload(0, 9_999), { checksum: payload(1, 10_000) });
    const r = await reader('lying.bin');
    const target = join(dir, 'lying.bin');
    await expect(downloadFile(r, target)).rejects.toMatchObject({ code: 'BLOCKFETCH_DIGEST_MISMATCH' });
  });

  it('in a versioned bucket, every GET names the version the HEAD saw (signed, as part of the query)', async () => {
    const verifying = await startS3Server({ buckets: ['bucket'], verify: { secretAccessKey: SECRET } });
    try {
      const content = payload(0, 29_999);
      await verifying.put('bucket', 'versioned.bin', content, { versionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' });
      const r = await reader('versioned.bin', await configFor(verifying), verifying);
      await r.contentLengthAndBlockSize();
      const first = verifying.requests.length;
      const got = await readRange(r, 10_000, 29_999);
      expect(got.error).toBeUndefined();
      expect(got.bytes.equals(content.subarray(10_000))).toBe(true);
      const get = verifying.requests.slice(first).find((q) => q.method === 'GET');
      expect(new URL(get?.url ?? '', 'http://x').searchParams.get('versionId')).toBe('3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY');
      // That version gone: a clear error, not another version's bytes.
      await verifying.put('bucket', 'versioned.bin', content, { versionId: 'another' });
      const gone = await readRange(r, 0, 99);
      expect(gone.error).toMatchObject({ code: 'BLOCKFETCH_HTTP_STATUS' });
      expect((gone.error as Error).message).toContain('(NoSuchVersion)');
    } finally {
      await verifying.close();
    }
  });

  it('an object replaced on s3rver (which ignores If-Match) is caught by its new ETag, not mixed', async () => {
    const before = payload(0, 99_999);
    await s3.put('bucket', 'moving.bin', before);
    const r = await reader('moving.bin');
    await r.contentLengthAndBlockSize();
    await s3.put('bucket', 'moving.bin', payload(7, 100_006));
    const got = await readRange(r, 0, 4095);
    expect(got.bytes.length).toBe(0);
    expect(got.error).toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
    await expect(r.revalidate(new AbortController().signal)).rejects.toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
  });

  it('an object replaced behind a server that honours If-Match is a 412, reported as a change', async () => {
    const strict = await startS3Server({ buckets: ['bucket'], enforceIfMatch: true });
    try {
      await strict.put('bucket', 'moving.bin', payload(0, 99_999));
      const r = await reader('moving.bin', await configFor(strict), strict);
      await r.contentLengthAndBlockSize();
      await strict.put('bucket', 'moving.bin', payload(7, 100_006));
      const first = strict.requests.length;
      const got = await readRange(r, 0, 4095);
      expect(got.error).toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
      expect((got.error as Error).message).toContain('412');
      expect(strict.requests.length - first).toBe(1);
      await expect(r.revalidate(new AbortController().signal)).rejects.toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
    } finally {
      await strict.close();
    }
  });
});

describe('S3Reader errors', () => {
  const readers: S3Reader[] = [];
  afterEach(async () => {
    await Promise.all(readers.splice(0).map((r) => r.close()));
  });

  /** The first look's error, and how many requests it cost. */
  async function lookError(server: S3Server, key: string, config: S3Config, bucket = 'bucket'): Promise<{ error: BlockfetchError; requests: number }> {
    const r = new S3Reader({ bucket, key, config });
    readers.push(r);
    const first = server.requests.length;
    const error = await r.contentLengthAndBlockSize().then(
      () => {
        throw new Error('expected a failure');
      },
      (err: unknown) => err as BlockfetchError,
    );
    return { error, requests: server.requests.length - first };
  }

  it('a wrong secret is a one-line 403 SignatureDoesNotMatch that says what to check, not retryable, in two requests', async () => {
    const verifying = await startS3Server({ buckets: ['bucket'], verify: { secretAccessKey: SECRET } });
    try {
      await verifying.put('bucket', 'a.bin', payload(0, 999));
      // The right secret works...
      const good = new S3Reader({ bucket: 'bucket', key: 'a.bin', config: await configFor(verifying) });
      readers.push(good);
      expect((await good.contentLengthAndBlockSize()).contentLength).toBe(1000);
      // ...and a wrong one is refused with a clear error.
      const wrong = 'not-the-secret-at-all/EXAMPLEKEY';
      const { error, requests } = await lookError(verifying, 'a.bin', await configFor(verifying, wrong));
      expect(error).toBeInstanceOf(BlockfetchError);
      expect(error.code).toBe('BLOCKFETCH_HTTP_STATUS');
      expect(error.retryable).toBe(false);
      expect(error.message).toBe('s3://bucket/a.bin: HTTP 403: the secret access key does not match the access key id (SignatureDoesNotMatch)');
      expect(error.hint).toContain('AWS_SECRET_ACCESS_KEY');
      expect(error.message).not.toContain('\n');
      expect(`${error.message} ${error.hint ?? ''}`).not.toContain(wrong);
      // The HEAD, and one GET to learn the S3 error code a HEAD cannot carry.
      expect(requests).toBe(2);
    } finally {
      await verifying.close();
    }
  });

  it('an access key id s3rver does not know is InvalidAccessKeyId', async () => {
    await s3.put('bucket', 'a.bin', payload(0, 999));
    const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ACCESS_KEY_ID: 'AKIDNOBODY', AWS_SECRET_ACCESS_KEY: SECRET } });
    const { error, requests } = await lookError(s3, 'a.bin', config);
    expect(error.message).toContain('(InvalidAccessKeyId)');
    expect(error.hint).toContain('AWS_ACCESS_KEY_ID');
    expect(error.retryable).toBe(false);
    expect(requests).toBe(2);
  });

  it('a missing key is NoSuchKey, a missing bucket NoSuchBucket', async () => {
    const config = await configFor(s3);
    const key = await lookError(s3, 'no/such/key.bin', config);
    expect(key.error.message).toBe('s3://bucket/no/such/key.bin: HTTP 404: no object has this key (NoSuchKey)');
    const bucket = await lookError(s3, 'a.bin', config, 'no-such-bucket');
    expect(bucket.error.message).toBe('s3://no-such-bucket/a.bin: HTTP 404: the bucket does not exist (NoSuchBucket)');
  });
});
