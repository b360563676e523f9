/**
 * `blockfetch s3://…` end to end: the real command as a child process,
 * against s3rver behind the signature-verifying front
 * (test/helpers/s3-server.ts), with credentials from the environment or
 * from a temp ~/.aws. One object, a prefix, kill -9 and resume, an object
 * replaced mid-download, a wrong secret, a missing key; and the secret key
 * and session token never in any output, index or `inspect`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli, startCli, waitFor, type CliResult } from './cli-helpers.js';
import { payload } from './helpers/payload.js';
import { S3RVER_ACCESS_KEY_ID, startS3Server, type S3Server } from './helpers/s3-server.js';

const MiB = 1024 * 1024;
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'FwoGZXIvYXdzEXAMPLESESSIONTOKENabcdef0123456789';

let s3: S3Server;
let dir: string;
/** Everything every run printed, and every index it left, for the secrets check at the end. */
const seen: string[] = [];

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['bucket'], verify: { secretAccessKey: SECRET } });
  dir = await mkdtemp(join(tmpdir(), 'bf-s3-cli-'));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

/** No AWS setting of the machine running the tests leaks in: every variable the S3 source reads is set here. */
function awsEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: join(dir, 'no-home'),
    AWS_PROFILE: '',
    AWS_CONFIG_FILE: '',
    AWS_SHARED_CREDENTIALS_FILE: '',
    AWS_DEFAULT_REGION: '',
    AWS_ENDPOINT_URL: '',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET,
    AWS_SESSION_TOKEN: TOKEN,
    ...extra,
  };
}

async function run(args: readonly string[], env: Record<string, string> = awsEnv()): Promise<CliResult> {
  const result = await runCli(args, { cwd: dir, env });
  seen.push(result.stdout.toString('utf8'), result.stderr);
  return result;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The body bytes s3rver sent for GETs since request number `from`. */
function bytesSentSince(from: number): number {
  return s3.requests.slice(from).reduce((sum, r) => sum + (r.method === 'GET' ? r.bytesSent : 0), 0);
}

describe('blockfetch s3://', () => {
  it('downloads one object: the same bytes (sha256), credentials from the environment, the request signed with the token', async () => {
    const content = payload(0, 3 * MiB + 12_345);
    await s3.put('bucket', 'models/one.bin', content);
    const first = s3.requests.length;
    const result = await run(['s3://bucket/models/one.bin', '-d', 'single', '-c', '4', '--block-size', '256KiB']);
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(sha256(await readFile(join(dir, 'single', 'one.bin')))).toBe(sha256(content));
    expect(s3.requests.slice(first).every((r) => String(r.headers.authorization).startsWith('AWS4-HMAC-SHA256 Credential=S3RVER/'))).toBe(true);
    expect(s3.requests.slice(first).every((r) => r.headers['x-amz-security-token'] === TOKEN)).toBe(true);
    // Run again: already complete, by its HEAD; nothing downloaded.
    const again = await run(['s3://bucket/models/one.bin', '-d', 'single']);
    expect(again.code, again.stderr).toBe(ExitCode.SUCCESS);
    expect(again.stderr).toContain('already complete');
  });

  it('downloads every key under a prefix, nested paths kept under -d, folder markers left out', async () => {
    const files: Record<string, Buffer> = {
      'tree/a.bin': payload(0, 99_999),
      'tree/sub/b.bin': payload(1, 200_000),
      'tree/sub/deeper/c.bin': payload(2, 3000),
      'tree/empty.txt': Buffer.alloc(0),
    };
    for (const [key, body] of Object.entries(files)) await s3.put('bucket', key, body);
    await s3.put('bucket', 'tree/folder/', Buffer.alloc(0));
    await s3.put('bucket', 'treetop.bin', payload(0, 9)); // shares the prefix's letters, not its folder
    const result = await run(['s3://bucket/tree/', '-d', 'out']);
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    for (const [key, body] of Object.entries(files)) {
      expect(sha256(await readFile(join(dir, 'out', key.slice('tree/'.length)))), key).toBe(sha256(body));
    }
    expect((await readdir(join(dir, 'out'), { recursive: true })).sort()).toEqual(['a.bin', 'empty.txt', 'sub', 'sub/b.bin', 'sub/deeper', 'sub/deeper/c.bin']);
    // The set's summary (a prefix is a set of files, as several URLs are).
    expect(result.stderr).toMatch(/^summary: 4 files in .*: 4 done, 0 skipped, 0 failed \(exit status 0\)$/m);
    // A second run finds them complete (listed size and modification time) and fetches nothing.
    const first = s3.requests.length;
    const again = await run(['s3://bucket/tree/', '-d', 'out']);
    expect(again.code, again.stderr).toBe(ExitCode.SUCCESS);
    expect(again.stderr).toMatch(/^summary: 4 files in .*: 0 done, 4 skipped, 0 failed/m);
    expect(s3.requests.slice(first).filter((r) => r.method !== 'GET' || r.headers.range !== undefined)).toEqual([]);
  });

  it('one file of a prefix failing does not stop the others; the exit status is that failure', async () => {
    for (const name of ['a', 'b', 'c']) await s3.put('bucket', `mix/${name}.bin`, payload(0, 300_000));
    let replaced = false;
    s3.onRequest(async (request) => {
      // b.bin changes after its HEAD, before its first GET is served: that GET sees a new ETag.
      if (!replaced && request.method === 'GET' && request.url.endsWith('/mix/b.bin')) {
        replaced = true;
        await s3.put('bucket', 'mix/b.bin', payload(3, 300_003));
      }
    });
    try {
      const result = await run(['s3://bucket/mix/', '-d', 'mix']);
      expect(result.code, result.stderr).toBe(ExitCode.REMOTE_CHANGED);
      expect(result.stderr).toContain('s3://bucket/mix/b.bin changed since the download started');
      expect(result.stderr).toMatch(/^summary: 3 files in .*: 2 done, 0 skipped, 1 failed \(exit status 4\)$/m);
      expect((await readFile(join(dir, 'mix', 'a.bin'))).equals(payload(0, 300_000))).toBe(true);
      expect((await readFile(join(dir, 'mix', 'c.bin'))).equals(payload(0, 300_000))).toBe(true);
      expect(existsSync(join(dir, 'mix', 'b.bin'))).toBe(false);
    } finally {
      s3.onRequest(undefined);
    }
  });

  it('a key whose folder cannot be made (a file of that name is in the way) fails alone; the rest of the prefix downloads', async () => {
    const a = payload(0, 100_000);
    const z = payload(3, 100_000);
    await s3.put('bucket', 'clash/a.bin', a);
    await s3.put('bucket', 'clash/k', payload(1, 100_000));
    await s3.put('bucket', 'clash/k/x.bin', payload(2, 100_000));
    await s3.put('bucket', 'clash/z.bin', z);
    await mkdir(join(dir, 'clash-out'), { recursive: true });
    await writeFile(join(dir, 'clash-out', 'k'), 'an older file of the user');
    const result = await run(['s3://bucket/clash/', '-d', 'clash-out']);
    expect(result.code, result.stderr).not.toBe(ExitCode.SUCCESS);
    expect(result.stderr).toMatch(/BLOCKFETCH_UNSAFE_PATH: cannot make the folder .*clash-out\/k for s3:\/\/bucket\/clash\/k\/x\.bin/);
    expect(result.stderr).not.toMatch(/looks like a bug/);
    expect(sha256(await readFile(join(dir, 'clash-out', 'a.bin')))).toBe(sha256(a));
    expect(sha256(await readFile(join(dir, 'clash-out', 'z.bin')))).toBe(sha256(z));
    expect(await readFile(join(dir, 'clash-out', 'k'), 'utf8')).toBe('an older file of the user');
  });

  it('a prefix with -c 4 -j 3: never more than 4 object requests open across the prefix, and several objects at once', async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => payload(100 + i, 3 * MiB));
    for (const [i, body] of bodies.entries()) await s3.put('bucket', `par/f${i}.bin`, body);
    // A barrier: no GET is answered until GETs for two different objects have arrived, so a
    // client that ran the objects one after another would never finish (the test would time out).
    const asked = new Set<string>();
    const waiting: (() => void)[] = [];
    s3.onRequest((request) => {
      if (request.method !== 'GET' || request.url.includes('list-type=')) return;
      asked.add(request.url.split('?')[0] as string);
      if (asked.size < 2) return new Promise<void>((resolve) => waiting.push(resolve));
      for (const release of waiting.splice(0)) release();
    });
    s3.gauge.reset();
    try {
      const result = await run(['s3://bucket/par/', '-d', 'par', '-c', '4', '-j', '3', '--block-size', '1MiB']);
      expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
      for (const [i, body] of bodies.entries()) expect(sha256(await readFile(join(dir, 'par', `f${i}.bin`))), `f${i}.bin`).toBe(sha256(body));
      expect(s3.gauge.max, 'object requests open at once').toBeLessThanOrEqual(4);
      expect(s3.gauge.maxFiles, 'objects with a request open at once').toBeGreaterThan(1);
      expect(result.stderr).toMatch(/^summary: 6 files in .*: 6 done, 0 skipped, 0 failed \(exit status 0\)$/m);
    } finally {
      s3.onRequest(undefined);
    }
  });

  it('--json: every line of a prefix run fits docs/cli-json.schema.json, one done line per file naming it, the summary last, nothing on stderr', async () => {
    await s3.put('bucket', 'jtree/x.bin', payload(0, 999));
    await s3.put('bucket', 'jtree/y/z.bin', payload(1, 2000));
    const result = await run(['s3://bucket/jtree/', '-d', 'jout', '--json']);
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toBe('');
    const lines = result.stdout.toString().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const Ajv = (createRequire(import.meta.url)('ajv/dist/2020') as { default: new (o: { strict: boolean }) => { compile(s: unknown): (d: unknown) => boolean } }).default;
    const addFormats = (createRequire(import.meta.url)('ajv-formats') as { default: (ajv: unknown) => void }).default;
    const ajv = new Ajv({ strict: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(await readFile(new URL('../docs/cli-json.schema.json', import.meta.url), 'utf8')));
    for (const line of lines) expect(validate(line), JSON.stringify(line)).toBe(true);
    const done = lines.filter((l) => l['type'] === 'done');
    // The files run at once (-j): their lines may come in either order.
    expect(done.map((l) => l['target']).sort()).toEqual([join(dir, 'jout', 'x.bin'), join(dir, 'jout', 'y', 'z.bin')]);
    expect(done.map((l) => l['file']).sort()).toEqual(['s3://bucket/jtree/x.bin', 's3://bucket/jtree/y/z.bin']);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', outcome: 'complete', exitCode: 0 });
  });

  it('resumes a large object after kill -9: the second run fetches only what is missing', async () => {
    const size = 24 * MiB;
    const content = payload(0, size - 1);
    await s3.put('bucket', 'big.bin', content);
    const target = join(dir, 'big.bin');
    const indexPath = `${target}.blockfetch.json`;
    const first = s3.requests.length;
    const running = startCli(['s3://bucket/big.bin', '-o', 'big.bin', '-c', '4', '--block-size', '1MiB', '--rate', '6MiB/s'], { cwd: dir, env: awsEnv() });
    // Kill it once its durable index records a good part.
    const cachedBytes = async (): Promise<number> =>
      ((JSON.parse(await readFile(indexPath, 'utf8').catch(() => '{}')) as { cachedBytes?: number }).cachedBytes ?? 0);
    await waitFor(async () => (await cachedBytes()) >= 8 * MiB, 30_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; sent ${bytesSentSince(first)}; its stderr: ${running.stderr()}`);
    });
    running.child.kill('SIGKILL');
    const killed = await running.done;
    expect(killed.signal).toBe('SIGKILL');
    const recorded = await cachedBytes();
    expect(recorded).toBeGreaterThanOrEqual(8 * MiB);
    seen.push(killed.stderr, await readFile(indexPath, 'utf8'));
    const live = `${target}.blockfetch.live`;
    if (existsSync(live)) seen.push(await readFile(live, 'utf8'));
    const inspect = await run(['inspect', 'big.bin']);
    expect(inspect.code, inspect.stderr).toBe(ExitCode.SUCCESS);
    expect(inspect.stdout.toString()).toContain('s3://bucket/big.bin');
    const inspected = await run(['inspect', 'big.bin', '--json']);
    const outstanding = (JSON.parse(inspected.stdout.toString()) as { outstanding: { from: number; to: number }[] }).outstanding;
    const second = s3.requests.length;
    const resumed = await run(['s3://bucket/big.bin', '-o', 'big.bin', '-c', '4', '--block-size', '1MiB']);
    expect(resumed.code, resumed.stderr).toBe(ExitCode.SUCCESS);
    expect(resumed.stderr).toContain('resuming');
    expect(sha256(await readFile(target))).toBe(sha256(content));
    // What the index recorded is not asked for again: every range the
    // second run asked for lies inside what inspect called outstanding.
    // (Bytes sent are no measure of that: a request the tail cut short may
    // have had its whole range written into the socket buffers already.)
    const asked = s3.requests.slice(second).filter((r) => r.method === 'GET');
    expect(asked.length).toBeGreaterThan(0);
    for (const request of asked) {
      const [from, to] = /^bytes=(\d+)-(\d+)$/.exec(String(request.headers.range))!.slice(1).map(Number) as [number, number];
      expect(outstanding.some((o) => o.from <= from && to <= o.to), `${from}-${to} outside ${JSON.stringify(outstanding)}`).toBe(true);
    }
    expect(outstanding.reduce((sum, o) => sum + o.to - o.from + 1, 0)).toBeLessThanOrEqual(size - recorded);
  });

  it('an object replaced mid-download ends with exit 4 (remote changed), the partial kept', async () => {
    await s3.put('bucket', 'moving.bin', payload(0, 8 * MiB - 1));
    let gets = 0;
    s3.onRequest(async (request) => {
      if (request.method === 'GET' && request.headers.range !== undefined && ++gets === 3) await s3.put('bucket', 'moving.bin', payload(9, 8 * MiB + 8));
    });
    try {
      const result = await run(['s3://bucket/moving.bin', '-o', 'moving.bin', '-c', '1', '--block-size', '1MiB', '--request-size', '1MiB']);
      expect(result.code, result.stderr).toBe(ExitCode.REMOTE_CHANGED);
      expect(result.stderr).toContain('s3://bucket/moving.bin changed since the download started');
      expect(existsSync(join(dir, 'moving.bin.blockfetch.json'))).toBe(true);
      expect(existsSync(join(dir, 'moving.bin'))).toBe(false);
    } finally {
      s3.onRequest(undefined);
    }
  });

  it('takes credentials, region and endpoint from a profile in temp ~/.aws files (AWS_PROFILE, AWS_CONFIG_FILE)', async () => {
    const content = payload(5, 500_004);
    await s3.put('bucket', 'profiled.bin', content);
    const home = join(dir, 'home');
    await mkdir(join(home, '.aws'), { recursive: true });
    await writeFile(join(home, '.aws', 'credentials'), `[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = wrong\n\n[dev]\naws_access_key_id = ${S3RVER_ACCESS_KEY_ID}\naws_secret_access_key = ${SECRET}\n`);
    const configFile = join(dir, 'aws-config');
    await writeFile(configFile, `[profile dev]\nregion = us-east-1\nendpoint_url = ${s3.endpoint}\n`);
    const env = awsEnv({ HOME: home, AWS_PROFILE: 'dev', AWS_CONFIG_FILE: configFile, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '', AWS_ENDPOINT_URL_S3: '', AWS_REGION: '' });
    const result = await run(['s3://bucket/profiled.bin', '-o', 'profiled.bin', '-v'], env);
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toContain(`credentials: profile "dev" (${join(home, '.aws', 'credentials')})`);
    expect(sha256(await readFile(join(dir, 'profiled.bin')))).toBe(sha256(content));
    // An unknown profile is a usage error naming both files.
    const missing = await run(['s3://bucket/profiled.bin', '-o', 'nope.bin'], { ...env, AWS_PROFILE: 'nosuch' });
    expect(missing.code).toBe(ExitCode.USAGE);
    expect(missing.stderr).toContain('AWS_PROFILE names the profile "nosuch"');
  });

  it('a wrong secret is one clear error, exit 1, in two requests and no retries; no file left', async () => {
    await s3.put('bucket', 'guarded.bin', payload(0, 99_999));
    const first = s3.requests.length;
    const result = await run(['s3://bucket/guarded.bin', '-o', 'guarded.bin'], awsEnv({ AWS_SECRET_ACCESS_KEY: 'an-entirely-wrong-secret' }));
    expect(result.code).toBe(ExitCode.FAILURE);
    expect(result.stderr.split('\n')[0]).toBe('blockfetch: s3://bucket/guarded.bin: HTTP 403: the secret access key does not match the access key id (SignatureDoesNotMatch)');
    expect(result.stderr).toContain('AWS_SECRET_ACCESS_KEY');
    expect(result.stderr).not.toContain('an-entirely-wrong-secret');
    expect(result.stderr).not.toMatch(/retry|\n\s+at /);
    expect(s3.requests.length - first).toBe(2);
    expect((await readdir(dir)).filter((f) => f.startsWith('guarded'))).toEqual([]);
  });

  it('a missing key is a clear NoSuchKey error; --no-sign-request sends nothing signed', async () => {
    const missing = await run(['s3://bucket/no/such.bin', '-o', 'such.bin']);
    expect(missing.code).toBe(ExitCode.FAILURE);
    expect(missing.stderr).toContain('s3://bucket/no/such.bin: HTTP 404: no object has this key (NoSuchKey)');
    expect((await readdir(dir)).filter((f) => f.startsWith('such'))).toEqual([]);
    await s3.put('bucket', 'open.bin', payload(0, 999));
    const first = s3.requests.length;
    const anonymous = await run(['s3://bucket/open.bin', '-o', 'open.bin', '--no-sign-request']);
    expect(anonymous.code, anonymous.stderr).toBe(ExitCode.SUCCESS);
    expect(s3.requests.slice(first).map((r) => r.headers.authorization)).toEqual(s3.requests.slice(first).map(() => undefined));
  });

  it('never shows the secret key or the session token: not in any output, index or inspect', () => {
    expect(seen.length).toBeGreaterThan(10);
    const all = seen.join('\n');
    expect(all).toContain('s3://bucket/');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(TOKEN);
    expect(all).not.toMatch(/X-Amz-Signature|Signature=[0-9a-f]{64}/);
  });
});
