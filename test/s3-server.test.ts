/**
 * What s3rver itself does, checked with plain HTTP requests, so that the
 * claims test/helpers/s3-server.ts makes about it (and that the S3Reader
 * is built around) are facts of the version installed, not hearsay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';

import { payload } from './helpers/payload.js';
import { startS3Server, type S3Server } from './helpers/s3-server.js';

let s3: S3Server;
const CONTENT = payload(0, 99_999);
let etag: string;

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['facts'] });
  etag = await s3.put('facts', 'a.bin', CONTENT);
  for (let i = 0; i < 5; i++) await s3.put('facts', `list/k${i}`, payload(0, 9));
});
afterAll(async () => {
  await s3?.close();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const response = await request(`${s3.endpoint}${path}`, { headers });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body };
}

describe('s3rver as installed', () => {
  it('answers bytes=0-0 with the whole object (as a 206), but bytes=10-19 with exactly ten bytes', async () => {
    const zero = await get('/facts/a.bin', { range: 'bytes=0-0' });
    expect(zero.status).toBe(206);
    expect(zero.headers['content-range']).toBe(`bytes 0-${CONTENT.length - 1}/${CONTENT.length}`);
    expect(zero.body.length).toBe(CONTENT.length);
    const ten = await get('/facts/a.bin', { range: 'bytes=10-19' });
    expect(ten.status).toBe(206);
    expect(ten.body.equals(CONTENT.subarray(10, 20))).toBe(true);
  });

  it('ignores If-Match: a wrong ETag is served, with the real ETag in the response', async () => {
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    const wrong = await get('/facts/a.bin', { range: 'bytes=0-9', 'if-match': '"0123456789abcdef0123456789abcdef"' });
    expect(wrong.status).toBe(206);
    expect(wrong.headers['etag']).toBe(etag);
  });

  it('does not verify SigV4 signatures: a made-up signature by its known key id is served', async () => {
    const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
    const forged = await get('/facts/a.bin', {
      range: 'bytes=0-9',
      'x-amz-date': date,
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      authorization: `AWS4-HMAC-SHA256 Credential=S3RVER/${date.slice(0, 8)}/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=${'0'.repeat(64)}`,
    });
    expect(forged.status).toBe(206);
    // ...while an unknown key id is refused.
    const unknown = await get('/facts/a.bin', {
      'x-amz-date': date,
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      authorization: `AWS4-HMAC-SHA256 Credential=NOBODY/${date.slice(0, 8)}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
    });
    expect(unknown.status).toBe(403);
    expect(unknown.body.toString()).toContain('<Code>InvalidAccessKeyId</Code>');
  });

  it('pages ListObjectsV2 with max-keys and continuation tokens', async () => {
    const first = await get('/facts?list-type=2&prefix=list%2F&max-keys=2');
    const text = first.body.toString();
    expect(text).toContain('<IsTruncated>true</IsTruncated>');
    const token = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(text)?.[1];
    expect(token).toBeDefined();
    const second = await get(`/facts?list-type=2&prefix=list%2F&max-keys=2&continuation-token=${encodeURIComponent(token ?? '')}`);
    expect(second.body.toString()).toContain('<Key>list/k2</Key>');
  });

  it('has no x-amz-checksum headers of its own', async () => {
    const response = await request(`${s3.endpoint}/facts/a.bin`, { method: 'HEAD', headers: { 'x-amz-checksum-mode': 'ENABLED' } });
    await response.body.dump();
    expect(response.statusCode).toBe(200);
    expect(Object.keys(response.headers).filter((h) => h.startsWith('x-amz-checksum'))).toEqual([]);
  });
});
