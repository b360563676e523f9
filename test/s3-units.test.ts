/**
 * The S3 source's pieces on their own: s3:// URLs and request URLs, the
 * region/endpoint/credentials resolution from the environment and temp
 * ~/.aws files, the signer against AWS's published example, the paths a
 * prefix's keys may take, and the entries of a prefix listed over several
 * pages (s3rver) or with hostile keys (a scripted loopback listing).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, type BlockfetchError } from '../src/errors.js';
import { resolveS3Config } from '../src/s3/config.js';
import { s3DownloadEntries, unsafeRelativePath } from '../src/s3/entries.js';
import { downloadFiles } from '../src/download-files.js';
import { S3Reader } from '../src/s3/s3-reader.js';
import { S3Signer } from '../src/s3/signer.js';
import { bucketUrl, parseS3Url } from '../src/s3/url.js';
import { payload } from './helpers/payload.js';
import { S3RVER_ACCESS_KEY_ID, startS3Server } from './helpers/s3-server.js';

let dir: string;
let dispatcher: Agent;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-s3-units-'));
  dispatcher = new Agent();
});
afterAll(async () => {
  await dispatcher.close();
  await rm(dir, { recursive: true, force: true });
});

describe('s3:// URLs', () => {
  it('names one object, or every key under a prefix', () => {
    expect(parseS3Url('s3://my-bucket/models/llama.gguf')).toEqual({ bucket: 'my-bucket', key: 'models/llama.gguf', isPrefix: false });
    expect(parseS3Url('s3://my-bucket/models/')).toEqual({ bucket: 'my-bucket', key: 'models/', isPrefix: true });
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', key: '', isPrefix: true });
    expect(parseS3Url('s3://my-bucket/a b%20c?x')).toEqual({ bucket: 'my-bucket', key: 'a b%20c?x', isPrefix: false });
  });

  it('refuses what cannot be a bucket', () => {
    for (const bad of ['s3://', 's3://a', 's3://has space/k', 's3://dots..twice/k', 'https://bucket/k', 's3:/bucket/k']) {
      expect(() => parseS3Url(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('addresses a custom endpoint by path, AWS by host (by path for a dotted bucket), keys encoded once', () => {
    const custom = { url: new URL('http://127.0.0.1:9000'), pathStyle: true };
    expect(bucketUrl(custom, 'b', 'dir/a b+c!.bin').href).toBe('http://127.0.0.1:9000/b/dir/a%20b%2Bc%21.bin');
    expect(bucketUrl(custom, 'b').href).toBe('http://127.0.0.1:9000/b');
    expect(bucketUrl({ url: new URL('https://minio.example/s3/'), pathStyle: true }, 'b', 'k').href).toBe('https://minio.example/s3/b/k');
    const aws = { url: new URL('https://s3.eu-west-1.amazonaws.com'), pathStyle: false };
    expect(bucketUrl(aws, 'my-bucket', 'été/x.bin').href).toBe('https://my-bucket.s3.eu-west-1.amazonaws.com/%C3%A9t%C3%A9/x.bin');
    expect(bucketUrl(aws, 'my.bucket', 'x').href).toBe('https://s3.eu-west-1.amazonaws.com/my.bucket/x');
  });
});

describe('resolveS3Config', () => {
  const home = (): string => join(dir, 'home');
  beforeAll(async () => {
    await mkdir(join(home(), '.aws'), { recursive: true });
    await writeFile(
      join(home(), '.aws', 'credentials'),
      '[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = dev-secret\naws_session_token = dev-token\n',
    );
    await writeFile(
      join(home(), '.aws', 'config'),
      '[default]\nregion = eu-west-3\n\n[profile dev]\nregion = ap-south-1\nendpoint_url = http://127.0.0.1:9999\n\n[profile sso]\nsso_session = corp\nregion = us-west-2\n\n[profile onlyconfig]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = config-secret\n',
    );
  });

  it('with nothing set: us-east-1, AWS endpoint by host, anonymous', async () => {
    const config = await resolveS3Config({ env: { HOME: join(dir, 'empty-home') } });
    expect(config).toEqual({
      region: 'us-east-1',
      endpoint: { url: new URL('https://s3.us-east-1.amazonaws.com'), pathStyle: false },
      credentials: undefined,
      credentialSource: 'none (anonymous requests)',
    });
  });

  it('reads the default profile: credentials from ~/.aws/credentials, region from ~/.aws/config', async () => {
    const config = await resolveS3Config({ env: { HOME: home() } });
    expect(config.credentials).toEqual({ accessKeyId: 'AKIDDEFAULT', secretAccessKey: 'default-secret' });
    expect(config.region).toBe('eu-west-3');
    expect(config.endpoint.url.href).toBe('https://s3.eu-west-3.amazonaws.com/');
    expect(config.credentialSource).toBe(`profile "default" (${join(home(), '.aws', 'credentials')})`);
  });

  it('AWS_PROFILE picks a [profile NAME] section, with its token, region and endpoint_url (path style)', async () => {
    const config = await resolveS3Config({ env: { HOME: home(), AWS_PROFILE: 'dev' } });
    expect(config.credentials).toEqual({ accessKeyId: 'AKIDDEV', secretAccessKey: 'dev-secret', sessionToken: 'dev-token' });
    expect(config.region).toBe('ap-south-1');
    expect(config.endpoint).toEqual({ url: new URL('http://127.0.0.1:9999'), pathStyle: true });
    const fromConfig = await resolveS3Config({ env: { HOME: home(), AWS_PROFILE: 'onlyconfig' } });
    expect(fromConfig.credentials).toEqual({ accessKeyId: 'AKIDCONFIG', secretAccessKey: 'config-secret' });
  });

  it('the environment wins: keys over the profile, AWS_REGION over AWS_DEFAULT_REGION over the profile, AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL', async () => {
    const env = {
      HOME: home(),
      AWS_PROFILE: 'dev',
      AWS_ACCESS_KEY_ID: 'AKIDENV',
      AWS_SECRET_ACCESS_KEY: 'env-secret',
      AWS_SESSION_TOKEN: 'env-token',
      AWS_DEFAULT_REGION: 'ca-central-1',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:1111',
    };
    const a = await resolveS3Config({ env });
    expect(a.credentials).toEqual({ accessKeyId: 'AKIDENV', secretAccessKey: 'env-secret', sessionToken: 'env-token' });
    expect(a.credentialSource).toBe('environment (AWS_ACCESS_KEY_ID)');
    expect(a.region).toBe('ca-central-1');
    expect(a.endpoint.url.href).toBe('http://127.0.0.1:1111/');
    const b = await resolveS3Config({ env: { ...env, AWS_REGION: 'sa-east-1', AWS_ENDPOINT_URL_S3: 'https://s3.example.com' } });
    expect(b.region).toBe('sa-east-1');
    expect(b.endpoint).toEqual({ url: new URL('https://s3.example.com'), pathStyle: true });
  });

  it('AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move the files (~ is the home)', async () => {
    await writeFile(join(home(), 'creds'), '[default]\naws_access_key_id = AKIDMOVED\naws_secret_access_key = moved-secret\n');
    await writeFile(join(dir, 'conf'), '[default]\nregion = me-south-1\n');
    const config = await resolveS3Config({ env: { HOME: home(), AWS_SHARED_CREDENTIALS_FILE: '~/creds', AWS_CONFIG_FILE: join(dir, 'conf') } });
    expect(config.credentials?.accessKeyId).toBe('AKIDMOVED');
    expect(config.region).toBe('me-south-1');
  });

  it('--no-sign-request (noSignRequest) drops every credential', async () => {
    const config = await resolveS3Config({ env: { HOME: home(), AWS_ACCESS_KEY_ID: 'AKIDENV', AWS_SECRET_ACCESS_KEY: 'env-secret' }, noSignRequest: true });
    expect(config.credentials).toBeUndefined();
  });

  it('says what to fix, never showing a secret: half-set keys, an unknown profile, an SSO profile, a bad endpoint or region', async () => {
    const problems: [Record<string, string>, RegExp][] = [
      [{ AWS_SECRET_ACCESS_KEY: 'half-secret' }, /AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not/],
      [{ AWS_ACCESS_KEY_ID: 'AKIDHALF' }, /AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not/],
      [{ AWS_PROFILE: 'nosuch' }, /AWS_PROFILE names the profile "nosuch", which is in neither/],
      [{ AWS_PROFILE: 'sso' }, /profile "sso" gets its credentials through sso_session, which blockfetch does not support/],
      [{ AWS_ENDPOINT_URL_S3: 'ftp://x' }, /AWS_ENDPOINT_URL_S3 must be a plain http:\/\/ or https:\/\/ URL/],
      [{ AWS_ENDPOINT_URL: 'not a url' }, /AWS_ENDPOINT_URL is not a URL/],
      [{ AWS_REGION: 'eu west' }, /is not a region name/],
    ];
    for (const [env, message] of problems) {
      const error = await resolveS3Config({ env: { HOME: home(), ...env } }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error, JSON.stringify(env)).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('secret');
    }
  });
});

describe('S3Signer', () => {
  it("signs AWS's published GET Object example (Range bytes=0-9) to the published signature", async () => {
    // docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "Example: GET Object".
    const signer = new S3Signer({ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }, 'us-east-1');
    const headers = await signer.sign(
      { method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: { range: 'bytes=0-9' } },
      new Date(Date.UTC(2013, 4, 24)),
    );
    expect(headers['authorization']).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
    expect(headers['x-amz-content-sha256']).toBe(createHash('sha256').update('').digest('hex'));
    expect(headers['host']).toBeUndefined();
  });

  it('signs the session token and a fresh date each time', async () => {
    const signer = new S3Signer({ accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'token' }, 'eu-west-1');
    const request = { method: 'HEAD' as const, url: new URL('http://127.0.0.1:9000/b/k'), headers: { 'if-match': '"abc"' } };
    const a = await signer.sign(request, new Date(Date.UTC(2026, 0, 1)));
    const b = await signer.sign(request, new Date(Date.UTC(2026, 0, 1, 0, 0, 1)));
    expect(a['x-amz-security-token']).toBe('token');
    expect(a['authorization']).toMatch(/SignedHeaders=host;if-match;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
    expect(a['authorization']).not.toBe(b['authorization']);
    expect(JSON.stringify(a)).not.toContain('secret');
  });
});

describe('paths under a prefix', () => {
  it('keeps a relative path; refuses one that could leave the directory or collide with our own files', () => {
    expect(unsafeRelativePath('a.bin')).toBeUndefined();
    expect(unsafeRelativePath('sub/deeper/c.bin')).toBeUndefined();
    expect(unsafeRelativePath('..x/y..')).toBeUndefined();
    expect(unsafeRelativePath('../etc/passwd')).toMatch(/"\.\." segment/);
    expect(unsafeRelativePath('a/../../b')).toMatch(/"\.\." segment/);
    expect(unsafeRelativePath('/etc/passwd')).toMatch(/starts with "\/"/);
    expect(unsafeRelativePath('a//b')).toMatch(/empty segment/);
    expect(unsafeRelativePath('./a')).toMatch(/"\." segment/);
    expect(unsafeRelativePath('a\0b')).toMatch(/NUL/);
    expect(unsafeRelativePath('x.bin.blockfetch.json')).toMatch(/blockfetch's own files/);
    expect(unsafeRelativePath('x.bin.blockfetch')).toMatch(/blockfetch's own files/);
  });

  it('a listing with hostile keys gives entries only for the safe ones, each inside the directory', async () => {
    const keys = ['p/ok.bin', 'p/../escape.bin', 'p//rooted.bin', 'p/sub/../../up.bin', 'p/a.bin.blockfetch.json', 'p/dir/', 'p/sub/fine.bin'];
    const xml = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bkt</Name><Prefix>p/</Prefix><IsTruncated>false</IsTruncated>${keys
      .map((key) => `<Contents><Key>${key}</Key><Size>${key.endsWith('/') ? 0 : 5}</Size><ETag>"e"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>`)
      .join('')}</ListBucketResult>`;
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/xml' }).end(xml));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: endpoint } });
      const plan = await s3DownloadEntries('s3://bkt/p/', { config, dispatcher, directory: join(dir, 'hostile') });
      expect(plan.entries.map((e) => e.target)).toEqual([join(dir, 'hostile', 'ok.bin'), join(dir, 'hostile', 'sub', 'fine.bin')]);
      expect(plan.skipped.map((s) => [s.key, s.folderMarker])).toEqual([
        ['p/../escape.bin', false],
        ['p//rooted.bin', false],
        ['p/sub/../../up.bin', false],
        ['p/a.bin.blockfetch.json', false],
        ['p/dir/', true],
      ]);
      expect(plan.entries[0]?.source).toBe('s3://bkt/p/ok.bin');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("a prefix's default folder is its last segment only when that is a safe name, else the bucket's", async () => {
    const xml = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bkt</Name><IsTruncated>false</IsTruncated>' +
      '<Contents><Key>../x.bin</Key><Size>5</Size><ETag>"e"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>';
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/xml' }).end(xml));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: endpoint } });
      const plan = await s3DownloadEntries('s3://bkt/../', { config, dispatcher });
      expect(plan.directory).toBe('bkt');
      expect(plan.entries.map((e) => e.target)).toEqual([join('bkt', 'x.bin')]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('-o FILE with a prefix is refused: many keys cannot be one file', async () => {
    const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' } });
    await expect(s3DownloadEntries('s3://bkt/p/', { config, dispatcher, output: 'one.bin' })).rejects.toThrow(/cannot be saved as one file/);
  });
});

describe('S3 errors a scripted endpoint sends', () => {
  it('a bucket in another region names that region and says to set AWS_REGION', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.method ?? '');
      res.writeHead(301, { 'x-amz-bucket-region': 'eu-central-1', 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : '<Error><Code>PermanentRedirect</Code><Message>m</Message></Error>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'secret' } });
      const reader = new S3Reader({ bucket: 'far-away', key: 'k.bin', config, dispatcher });
      const error = await reader.contentLengthAndBlockSize().then(
        () => undefined,
        (err: unknown) => err as BlockfetchError,
      );
      expect(error?.message).toBe('s3://far-away/k.bin: HTTP 301: the bucket is in the region eu-central-1, not the one the requests were signed for (PermanentRedirect)');
      expect(error?.hint).toBe('set AWS_REGION=eu-central-1');
      expect(error?.retryable).toBe(false);
      // The HEAD's own headers say it all: no second request.
      expect(seen).toEqual(['HEAD']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('a prefix over several ListObjectsV2 pages (s3rver)', () => {
  it('lists every page, then downloadFiles fetches every file as one set', async () => {
    const s3 = await startS3Server({ buckets: ['paged'] });
    try {
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 7; i++) files.set(`set/${i % 2 === 0 ? 'even' : 'odd'}/f${i}.bin`, payload(i, 20_000 + i * 1000));
      for (const [key, body] of files) await s3.put('paged', key, body);
      const config = await resolveS3Config({ env: { HOME: dir, AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'x' } });
      const first = s3.requests.length;
      const plan = await s3DownloadEntries('s3://paged/set/', { config, dispatcher, directory: join(dir, 'paged'), pageSize: 3 });
      const lists = s3.requests.slice(first).filter((r) => r.url.includes('list-type=2'));
      expect(lists.length).toBe(3);
      expect(lists.map((r) => r.url.includes('continuation-token='))).toEqual([false, true, true]);
      expect(plan.entries.length).toBe(7);
      // downloadFiles writes only the files: the keys' folders are the caller's.
      for (const entry of plan.entries) await mkdir(dirname(entry.target), { recursive: true });
      const result = await downloadFiles(plan.entries, { concurrency: 2 });
      expect(result.files.map((f) => f.outcome)).toEqual(Array(7).fill('done'));
      for (const [key, body] of files) expect((await readFile(join(dir, 'paged', key.slice(4)))).equals(body), key).toBe(true);
    } finally {
      await s3.close();
    }
  });
});
