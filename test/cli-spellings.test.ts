/**
 * The download command end to end (a real child process against loopback
 * servers) with the spellings people bring from curl, wget and aria2c, and
 * the permanent failures that must fail at once, with a hint that fits and
 * without promising a resume when nothing is on disk.
 */
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli } from './cli-helpers.js';
import { selfSignedCertificate, startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const DATA = payload(0, 2 * MiB - 1);

let dir: string;
let plain: FaultServer;
let secure: FaultServer;
let certFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-spellings-'));
  const tls = await selfSignedCertificate();
  certFile = join(dir, 'ca.pem');
  await writeFile(certFile, tls.cert);
  plain = await startFaultServer({ content: DATA });
  secure = await startFaultServer({ content: DATA, tls });
});
afterAll(async () => {
  await plain.close();
  await secure.close();
  await rm(dir, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

/** The `blockfetch:` line and the `hint:` line after it. */
function failureLines(stderr: string): { message: string; hint: string } {
  const lines = stderr.trimEnd().split('\n');
  const at = lines.findIndex((l) => l.startsWith('blockfetch: '));
  expect(at, stderr).toBeGreaterThanOrEqual(0);
  expect(stderr).not.toMatch(/^\s+at /m);
  return { message: lines[at] as string, hint: lines[at + 1] ?? '' };
}

describe('TLS for one run: --cacert and -k/--insecure', () => {
  it('refuses a self-signed certificate at once, with a hint naming --cacert and -k', async () => {
    const cwd = await freshDir('tls-refused');
    const before = secure.requests.length;
    const result = await runCli([secure.url, '-o', 'f.bin'], { cwd });
    expect(result.code).toBe(ExitCode.FAILURE);
    const { message, hint } = failureLines(result.stderr);
    expect(message).toMatch(/TLS certificate rejected/);
    expect(hint).toMatch(/--cacert/);
    expect(hint).toMatch(/-k\/--insecure/);
    expect(result.stderr).not.toMatch(/resume/);
    expect(secure.requests.length).toBe(before); // the handshake failed: no request reached the server
    expect(await readdir(cwd)).toEqual([]);
  });
  it('--cacert FILE trusts that CA for the run', async () => {
    const cwd = await freshDir('tls-cacert');
    const result = await runCli([secure.url, '-o', 'f.bin', '--cacert', certFile, '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
    expect(result.stderr).toBe('');
  });
  it('--cacert with a missing or non-PEM file is a usage error before any request', async () => {
    const cwd = await freshDir('tls-cacert-bad');
    const before = secure.requests.length;
    const missing = await runCli([secure.url, '-o', 'f.bin', '--cacert', 'nope.pem'], { cwd });
    expect(missing.code).toBe(ExitCode.USAGE);
    expect(failureLines(missing.stderr).message).toBe('blockfetch: --cacert "nope.pem" cannot be read (ENOENT)');
    await writeFile(join(cwd, 'junk.pem'), 'not a certificate');
    const junk = await runCli([secure.url, '-o', 'f.bin', '--cacert', 'junk.pem'], { cwd });
    expect(junk.code).toBe(ExitCode.USAGE);
    expect(failureLines(junk.stderr).message).toMatch(/holds no PEM certificate/);
    expect(secure.requests.length).toBe(before);
  });
  it('-k downloads from a self-signed server, with a warning line on stderr', async () => {
    const cwd = await freshDir('tls-insecure');
    const result = await runCli([secure.url, '-o', 'f.bin', '-k', '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
    expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^warning: -k\/--insecure: TLS certificates are not checked in this run/)]);
  });
});

describe('curl, wget and aria2c spellings', () => {
  it('-A sets the User-Agent of every request; -C - and --continue are accepted', async () => {
    const cwd = await freshDir('ua');
    const before = plain.requests.length;
    const result = await runCli([plain.url, '-o', 'f.bin', '-A', 'fetcher/9', '-C', '-', '--continue', '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    const mine = plain.requests.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    for (const req of mine) expect(req.headers['user-agent']).toBe('fetcher/9');
  });
  it('-d DIR saves under the server name inside DIR, and -d DIR -o NAME as DIR/NAME', async () => {
    const cwd = await freshDir('dir');
    await mkdir(join(cwd, 'out'));
    const named = await runCli([plain.url, '-d', 'out', '--quiet'], { cwd });
    expect(named.code, named.stderr).toBe(ExitCode.SUCCESS);
    expect(await readdir(join(cwd, 'out'))).toEqual(['file']);
    const both = await runCli([plain.url, '--dir', 'out', '-o', 'b.bin', '--quiet'], { cwd });
    expect(both.code, both.stderr).toBe(ExitCode.SUCCESS);
    expect(firstMisplaced(await readFile(join(cwd, 'out', 'b.bin')))).toBe(-1);
  });
  it('-v prints the remote and the plan, and the error code on failure', async () => {
    const cwd = await freshDir('verbose');
    const ok = await runCli([plain.url, '-o', 'f.bin', '-v'], { cwd, env: { TERM: 'dumb' } });
    expect(ok.code, ok.stderr).toBe(ExitCode.SUCCESS);
    expect(ok.stderr).toMatch(/remote: 2\.00 MiB \(2097152 bytes\), ETag .*; 8 connections/);
    plain.script(() => ({ kind: 'status', status: 404 }));
    try {
      const failed = await runCli([plain.url, '-o', 'g.bin', '-v'], { cwd });
      expect(failed.code).toBe(ExitCode.FAILURE);
      expect(failed.stderr).toMatch(/^code: BLOCKFETCH_HTTP_STATUS, exit status 1$/m);
    } finally {
      plain.script(undefined);
    }
  });
  it('-c URL says -c takes a number, and asks the server nothing', async () => {
    const cwd = await freshDir('c-url');
    const before = plain.requests.length;
    const result = await runCli(['-c', plain.url], { cwd });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(failureLines(result.stderr).message).toBe(`blockfetch: -c/--concurrency takes a number (N), got the URL "${plain.url}"`);
    expect(plain.requests.length).toBe(before);
  });
  it('a misspelt option suggests the nearest one', async () => {
    const cwd = await freshDir('typo');
    const result = await runCli([plain.url, '--concurency', '4'], { cwd });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(failureLines(result.stderr).message).toBe("blockfetch: unknown option '--concurency'; did you mean --concurrency?");
  });
});

describe('permanent failures fail at once, with nothing left behind and no promise of a resume', () => {
  const cases: [number, RegExp][] = [
    [404, /no file at this URL \(404 Not Found\): check the URL/],
    [410, /gone for good \(410 Gone\)/],
    [401, /wants credentials \(401\).*-H 'Authorization/],
    [403, /refuses access \(403\).*signed one that expired/],
  ];
  it.each(cases)('HTTP %i: exit 1 after one request, its own hint', async (status, hint) => {
    const cwd = await freshDir(`status-${status}`);
    plain.script(() => ({ kind: 'status', status }));
    try {
      const before = plain.requests.length;
      const result = await runCli([plain.url, '-o', 'f.bin'], { cwd });
      expect(result.code).toBe(ExitCode.FAILURE);
      const lines = failureLines(result.stderr);
      expect(lines.message).toMatch(new RegExp(`HTTP ${status}`));
      expect(lines.hint).toMatch(hint);
      expect(lines.hint).not.toMatch(/5xx|429/);
      expect(result.stderr).not.toMatch(/resume|retrying/);
      expect(plain.requests.length - before).toBe(1);
      expect(await readdir(cwd)).toEqual([]);
    } finally {
      plain.script(undefined);
    }
  });
  it.each([404, 403])('HTTP %i after the first request was answered: no empty preallocated partial is left', async (status) => {
    const cwd = await freshDir(`later-${status}`);
    const first = plain.requests.length;
    plain.script((req) => (req.index > first ? { kind: 'status', status } : undefined));
    try {
      const result = await runCli([plain.url, '-o', 'f.bin', '--block-size', '256KiB', '-c', '2'], { cwd });
      expect(result.code).toBe(ExitCode.FAILURE);
      expect(result.stderr).toMatch(new RegExp(`HTTP ${status}`));
      expect(result.stderr).not.toMatch(/resume/);
      expect(await readdir(cwd)).toEqual([]);
    } finally {
      plain.script(undefined);
    }
  });
  it('a server that refuses the first request until retries run out: exit 3, no "resume with", no files', async () => {
    const cwd = await freshDir('first-503');
    plain.script(() => ({ kind: 'status', status: 503 }));
    try {
      const result = await runCli([plain.url, '-o', 'f.bin', '--retries', '1', '--json'], { cwd });
      expect(result.code).toBe(ExitCode.NETWORK);
      expect(result.stderr).not.toMatch(/resume/);
      const error = result.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['type'] === 'error');
      expect(error).toBeDefined();
      expect(error).not.toHaveProperty('resume');
      expect(String(error?.['hint'])).not.toMatch(/resume/);
      expect(existsSync(join(cwd, 'f.bin.blockfetch'))).toBe(false);
      expect(await readdir(cwd)).toEqual([]);
    } finally {
      plain.script(undefined);
    }
  });
});

describe('re-running a finished download', () => {
  it('says "already complete" and exits 0 when size and Last-Modified match; refuses a different file; --force downloads again', async () => {
    const cwd = await freshDir('rerun');
    const first = await runCli([plain.url, '-o', 'f.bin', '--quiet'], { cwd });
    expect(first.code, first.stderr).toBe(ExitCode.SUCCESS);
    const { mtimeMs } = await stat(join(cwd, 'f.bin'));
    expect(Math.floor(mtimeMs / 1000)).toBe(Math.floor(Date.parse(plain.lastModified as string) / 1000)); // as curl -R

    const again = await runCli([plain.url, '-o', 'f.bin', '-C', '-'], { cwd });
    expect(again.code, again.stderr).toBe(ExitCode.SUCCESS);
    expect(again.stderr).toMatch(/f\.bin is already complete/);
    const json = await runCli([plain.url, '-o', 'f.bin', '--json'], { cwd });
    expect(json.code).toBe(ExitCode.SUCCESS);
    expect(JSON.parse(json.stdout.toString('utf8').trim())).toMatchObject({ type: 'done', outcome: 'already-complete' });

    // Touched since: blockfetch cannot tell, so it keeps the refusal.
    await utimes(join(cwd, 'f.bin'), new Date(), new Date(2000, 0, 1));
    const refused = await runCli([plain.url, '-o', 'f.bin'], { cwd });
    expect(refused.code).toBe(ExitCode.USAGE);
    expect(refused.stderr).toMatch(/already exists/);
    // ...unless a digest given proves it.
    const sha = createHash('sha256').update(DATA).digest('hex');
    const proven = await runCli([plain.url, '-o', 'f.bin', '--sha256', sha], { cwd });
    expect(proven.code, proven.stderr).toBe(ExitCode.SUCCESS);
    expect(proven.stderr).toMatch(/already complete/);

    const before = plain.requests.length;
    const forced = await runCli([plain.url, '-o', 'f.bin', '--force', '--quiet'], { cwd });
    expect(forced.code, forced.stderr).toBe(ExitCode.SUCCESS);
    expect(plain.requests.length - before).toBeGreaterThan(1);
    expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
  });
});

describe('a remote that cannot be pinned says so, and how it is fetched', () => {
  const cases = [
    ['no validator', { etag: null, lastModified: null }, /^note: the server sends no ETag or Last-Modified: .* one connection, in order \(give --sha256 to use more\)$/m],
    ['a weak ETag only', { etag: 'W/"v1"', lastModified: null }, /^note: the server sends only a weak ETag, which cannot pin byte ranges, and no Last-Modified: .*one connection/m],
  ] as const;
  it.each(cases)('%s: a note, one connection, and the right file', async (_name, revision, note) => {
    const server = await startFaultServer({ content: DATA, ...revision });
    try {
      const cwd = await freshDir(`unpinned-${_name.replace(/ /g, '-')}`);
      const result = await runCli([server.url, '-o', 'f.bin', '-c', '4', '--block-size', '256KiB'], { cwd, env: { TERM: 'dumb' } });
      expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
      expect(result.stderr).toMatch(note);
      expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
    } finally {
      await server.close();
    }
  });
  it('with --sha256 the same remote uses every connection, checked by the digest', async () => {
    const server = await startFaultServer({ content: DATA, etag: null, lastModified: null });
    try {
      const cwd = await freshDir('unpinned-digest');
      const sha256 = createHash('sha256').update(DATA).digest('hex');
      const result = await runCli([server.url, '-o', 'f.bin', '-c', '4', '--block-size', '256KiB', '--sha256', sha256], { cwd, env: { TERM: 'dumb' } });
      expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
      expect(result.stderr).toMatch(/^note: the server sends no ETag or Last-Modified: the whole file is checked against the digest at the end$/m);
    } finally {
      await server.close();
    }
  });
});

describe("--checksum ALGO=HEX (aria2c's spelling)", () => {
  it('verifies the file with that algorithm: the right sha-1 completes, a wrong md5 is exit 5 with the partial kept', async () => {
    const cwd = await freshDir('checksum');
    const sha1 = createHash('sha1').update(DATA).digest('hex');
    const ok = await runCli([plain.url, '-o', 'f.bin', '--checksum', `sha-1=${sha1}`], { cwd, env: { TERM: 'dumb' } });
    expect(ok.code, ok.stderr).toBe(ExitCode.SUCCESS);
    expect(ok.stderr).toMatch(/sha1 verified/);
    const bad = await runCli([plain.url, '-o', 'g.bin', '--checksum', `md5=${'0'.repeat(32)}`], { cwd });
    expect(bad.code).toBe(ExitCode.INTEGRITY);
    expect(existsSync(join(cwd, 'g.bin'))).toBe(false);
    expect(existsSync(join(cwd, 'g.bin.blockfetch'))).toBe(true);
  });
});
