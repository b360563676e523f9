/**
 * `--checksums FILE|URL` through the real command against loopback
 * servers: a listed file is verified before its final rename (every digest
 * the list gives), a wrong one exits 5 with the partial and index kept, an
 * unlisted name is a note, a conflict with --sha256 and a list that cannot
 * be had or read stop the run before anything is downloaded, and -H goes to
 * the list's host only when it is the download's origin.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseCommandLine } from '../src/cli/args.js';
import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer, type RecordedRequest } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const execFileAsync = promisify(execFile);
const MiB = 2 ** 20;
const DATA = payload(0, 3 * MiB - 1);
const SHA256 = createHash('sha256').update(DATA).digest('hex');
const SHA512 = createHash('sha512').update(DATA).digest('hex');
const MD5 = createHash('md5').update(DATA).digest('hex');
const OTHER_SHA256 = 'ab'.repeat(32);
const FAST = ['--block-size', '1MiB', '-c', '2'];

let dir: string;
const servers: FaultServer[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-cli-checksums-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

/** A fault server for DATA at /file that also serves `lists` (path → text) on the same origin. */
async function serve(lists: Readonly<Record<string, string>> = {}): Promise<FaultServer> {
  const server = await startFaultServer({ content: DATA });
  servers.push(server);
  server.script((req) => {
    const list = lists[req.url];
    return list === undefined ? undefined : { kind: 'status', status: 200, body: list };
  });
  return server;
}

async function freshDir(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

const fileRequests = (server: FaultServer): RecordedRequest[] => server.requests.filter((r) => r.url === '/file');

describe('--checksums FILE', () => {
  it('a listed file is verified with every digest the list gives, then finished', async () => {
    const server = await serve();
    const cwd = await freshDir('listed');
    await writeFile(join(cwd, 'SUMS'), `${SHA256}  other.iso\n${SHA256}  out.bin\nSHA512 (out.bin) = ${SHA512}\n${MD5} *out.bin\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', '-v', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toMatch(/^blockfetch: SUMS lists out\.bin: checking sha512 and sha256 and md5 before the final rename$/m);
    expect(result.stderr).toMatch(/sha512 verified/);
    expect((await readFile(join(cwd, 'out.bin'))).equals(DATA)).toBe(true);
    expect((await readdir(cwd)).sort()).toEqual(['SUMS', 'out.bin']);
    // Run again: the finished file has every listed digest, so it is already complete.
    const again = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', ...FAST], { cwd });
    expect(again.code, again.stderr).toBe(ExitCode.SUCCESS);
    expect(again.stderr).toMatch(/out\.bin is already complete/);
    // A list whose md5 the file does not have: not complete, and not overwritten without -f.
    await writeFile(join(cwd, 'SUMS'), `${SHA256}  out.bin\n${'0'.repeat(32)}  out.bin\n`);
    const other = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', ...FAST], { cwd });
    expect(other.code, other.stderr).toBe(ExitCode.USAGE);
    expect(other.stderr).toMatch(/out\.bin already exists/);
  });

  it('a wrong checksum exits 5 before the rename: the partial file and its index are kept, the target never appears', async () => {
    const server = await serve();
    const cwd = await freshDir('wrong');
    await writeFile(join(cwd, 'SHA256SUMS'), `${OTHER_SHA256}  out.bin\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SHA256SUMS', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.INTEGRITY);
    expect(result.stderr).toMatch(new RegExp(`^blockfetch: sha256 mismatch: expected ${OTHER_SHA256}, got ${SHA256}$`, 'm'));
    expect(result.stderr).toMatch(/^hint: the file does not have the sha256 that SHA256SUMS gives for out\.bin: check that the list is for this release; the partial file is kept/m);
    expect(existsSync(join(cwd, 'out.bin'))).toBe(false);
    expect(existsSync(join(cwd, 'out.bin.blockfetch'))).toBe(true);
    const index = JSON.parse(await readFile(join(cwd, 'out.bin.blockfetch.json'), 'utf8')) as { remote: { digest: unknown } };
    expect(index.remote.digest).toEqual({ algorithm: 'sha256', hex: OTHER_SHA256 });
  });

  it('two digests both checked: right by sha256 but wrong by sha512 fails with exit 5', async () => {
    const server = await serve();
    const cwd = await freshDir('half-right');
    await writeFile(join(cwd, 'SUMS'), `${SHA256}  out.bin\n${'0'.repeat(128)}  out.bin\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.INTEGRITY);
    expect(result.stderr).toMatch(new RegExp(`^blockfetch: sha512 mismatch: expected 0{128}, got ${SHA512}$`, 'm'));
    expect(existsSync(join(cwd, 'out.bin'))).toBe(false);
    const index = JSON.parse(await readFile(join(cwd, 'out.bin.blockfetch.json'), 'utf8')) as { remote: { digest: unknown; extraDigests: unknown } };
    expect(index.remote.digest).toEqual({ algorithm: 'sha512', hex: '0'.repeat(128) });
    expect(index.remote.extraDigests).toEqual([{ algorithm: 'sha256', hex: SHA256 }]);
  });

  it('a name the list does not give: a one-line note, and the download succeeds', async () => {
    const server = await serve();
    const cwd = await freshDir('unlisted');
    await writeFile(join(cwd, 'SHA256SUMS'), `${OTHER_SHA256}  something-else.iso\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SHA256SUMS', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toMatch(/^blockfetch: note: SHA256SUMS does not list out\.bin; it is downloaded without a checksum from the list$/m);
    expect((await readFile(join(cwd, 'out.bin'))).equals(DATA)).toBe(true);
    // With --json the note is a JSON line; with -q there is none.
    const json = await runCli([server.url, '-o', 'json.bin', '--checksums', 'SHA256SUMS', '--json', ...FAST], { cwd });
    expect(json.code, json.stderr).toBe(ExitCode.SUCCESS);
    const lines = json.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l['type'] === 'note')?.['message']).toBe('SHA256SUMS does not list json.bin; it is downloaded without a checksum from the list');
    const quiet = await runCli([server.url, '-o', 'quiet.bin', '--checksums', 'SHA256SUMS', '-q', ...FAST], { cwd });
    expect(quiet.code, quiet.stderr).toBe(ExitCode.SUCCESS);
    expect(quiet.stderr).toBe('');
  });

  it('the name is the saved file name: -d DIR without -o uses the URL\'s name and finds its line', async () => {
    const server = await serve();
    const cwd = await freshDir('by-url-name');
    await mkdir(join(cwd, 'dl'));
    await writeFile(join(cwd, 'SUMS'), `${OTHER_SHA256}  ./file\n`);
    const result = await runCli([server.url, '-d', 'dl', '--checksums', 'SUMS', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.INTEGRITY);
    expect(existsSync(join(cwd, 'dl', 'file.blockfetch'))).toBe(true);
  });

  it('--sha256 that disagrees with the list is a usage error before any request for the file', async () => {
    const server = await serve();
    const cwd = await freshDir('conflict');
    await writeFile(join(cwd, 'SUMS'), `${SHA256}  out.bin\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', '--sha256', OTHER_SHA256, ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(
      new RegExp(`^blockfetch: the sha256 given on the command line \\(${OTHER_SHA256}\\) is not the one SUMS gives for "out\\.bin" \\(${SHA256}\\)$`, 'm'),
    );
    expect(fileRequests(server)).toEqual([]);
    expect(await readdir(cwd)).toEqual(['SUMS']);
    // The same digest in both is no conflict; a --sha512 beside a listed sha256 adds a check.
    const agreed = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', '--sha512', SHA512, '-v', ...FAST], { cwd });
    expect(agreed.code, agreed.stderr).toBe(ExitCode.SUCCESS);
    expect(agreed.stderr).toMatch(/checking sha512 and sha256 before the final rename/);
  });

  it('a list that contradicts itself for the file is a usage error naming both lines', async () => {
    const server = await serve();
    const cwd = await freshDir('contradicts');
    await writeFile(join(cwd, 'SUMS'), `${SHA256}  a/out.bin\n${OTHER_SHA256}  b/out.bin\n`);
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SUMS', ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^blockfetch: SUMS:1 and SUMS:2 give two different sha256 digests for "out\.bin"$/m);
    expect(fileRequests(server)).toEqual([]);
  });

  it('a malformed line is a usage error naming the list and the line; a missing file says so; nothing is downloaded', async () => {
    const server = await serve();
    const cwd = await freshDir('malformed');
    await writeFile(join(cwd, 'SHA256SUMS'), `# list\n${SHA256}  out.bin\n${SHA256.slice(1)}  broken.bin\n`);
    const bad = await runCli([server.url, '-o', 'out.bin', '--checksums', 'SHA256SUMS'], { cwd });
    expect(bad.code, bad.stderr).toBe(ExitCode.USAGE);
    expect(bad.stderr).toMatch(/^blockfetch: SHA256SUMS:3: a digest of 63 hex digits is not one blockfetch can check/m);
    expect(bad.stderr).toMatch(/^hint: /m);
    const missing = await runCli([server.url, '-o', 'out.bin', '--checksums', 'NOPE'], { cwd });
    expect(missing.code, missing.stderr).toBe(ExitCode.USAGE);
    expect(missing.stderr).toMatch(/^blockfetch: --checksums "NOPE" cannot be read \(ENOENT\)$/m);
    expect(server.requests).toEqual([]);
    expect(await readdir(cwd)).toEqual(['SHA256SUMS']);
  });
});

describe('--checksums from a pipe or a large file', () => {
  it('a FIFO (as `--checksums <(curl -s URL)` gives) is read to its end', async () => {
    const server = await serve();
    const cwd = await freshDir('fifo');
    await execFileAsync('mkfifo', [join(cwd, 'sums.fifo')]);
    const running = runCli([server.url, '-o', 'out.bin', '--checksums', 'sums.fifo', '-v', ...FAST], { cwd });
    // Opening the FIFO for writing waits for the command to open it for reading.
    await writeFile(join(cwd, 'sums.fifo'), `${SHA256}  out.bin\n`);
    const result = await running;
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toMatch(/sums\.fifo lists out\.bin: checking sha256 before the final rename/);
  });

  it('a regular file over 16 MiB is refused from its size (exit 2), nothing downloaded', async () => {
    const server = await serve();
    const cwd = await freshDir('big-file');
    await writeFile(join(cwd, 'huge'), Buffer.alloc(17 * MiB, 0x20));
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', 'huge'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^blockfetch: --checksums "huge" is 17\.0 MiB, larger than the 16\.0 MiB a checksum list may be$/m);
    expect(server.requests).toEqual([]);
  });
});

describe('--checksums URL', () => {
  it('fetched from the download\'s origin with the -H headers, then checked', async () => {
    const server = await serve({ '/SHA256SUMS': `${SHA256}  out.bin\n` });
    const cwd = await freshDir('url-same-origin');
    const result = await runCli(
      [server.url, '-o', 'out.bin', '--checksums', `${server.origin}/SHA256SUMS`, '-H', 'Authorization: Bearer s3cret', ...FAST],
      { cwd },
    );
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toMatch(/sha256 verified/);
    const listRequest = server.requests.find((r) => r.url === '/SHA256SUMS');
    expect(listRequest?.headers['authorization']).toBe('Bearer s3cret');
    // Fetched before the file's first request.
    expect(server.requests[0]?.url).toBe('/SHA256SUMS');
  });

  it('on another origin: the -H headers are not sent there (User-Agent is), and a wrong digest still exits 5', async () => {
    const lists = await serve({ '/SHA256SUMS': `${OTHER_SHA256}  out.bin\n` });
    const server = await serve();
    const cwd = await freshDir('url-other-origin');
    const result = await runCli(
      [server.url, '-o', 'out.bin', '--checksums', `${lists.origin}/SHA256SUMS`, '-H', 'Authorization: Bearer s3cret', '-H', 'Cookie: c=1', '-A', 'tester/1', ...FAST],
      { cwd },
    );
    expect(result.code, result.stderr).toBe(ExitCode.INTEGRITY);
    const listRequest = lists.requests.find((r) => r.url === '/SHA256SUMS');
    expect(listRequest).toBeDefined();
    expect(listRequest?.headers['authorization']).toBeUndefined();
    expect(listRequest?.headers['cookie']).toBeUndefined();
    expect(listRequest?.headers['user-agent']).toBe('tester/1');
    expect(fileRequests(server)[0]?.headers['authorization']).toBe('Bearer s3cret');
    expect(existsSync(join(cwd, 'out.bin.blockfetch'))).toBe(true);
  });

  it('a 404 is a clear error before the download starts (exit 1, as any 404), and nothing is written', async () => {
    const server = await serve();
    const cwd = await freshDir('url-404');
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', `${server.origin}/missing/SHA256SUMS`, ...FAST], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.FAILURE);
    expect(result.stderr).toMatch(/^blockfetch: cannot fetch the checksum list: .*\/missing\/SHA256SUMS.*404/m);
    expect(result.stderr).not.toMatch(/resume with/);
    expect(fileRequests(server)).toEqual([]);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('a list larger than 16 MiB is refused from its size, before its body is read', async () => {
    const big = await startFaultServer({ content: { size: 64 * MiB, bytes: (from, to) => payload(from, to) }, path: '/SHA256SUMS' });
    servers.push(big);
    const server = await serve();
    const cwd = await freshDir('url-too-big');
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', big.url], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^blockfetch: --checksums http:\/\/127\.0\.0\.1:\d+\/SHA256SUMS is 64\.0 MiB, larger than the 16\.0 MiB a checksum list may be$/m);
    expect(fileRequests(server)).toEqual([]);
  });

  it('a signed URL\'s query is not printed in a message about the list', async () => {
    const server = await serve({ '/SUMS?X-Amz-Signature=topsecret': 'not a list\n' });
    const cwd = await freshDir('url-signed');
    const result = await runCli([server.url, '-o', 'out.bin', '--checksums', `${server.origin}/SUMS?X-Amz-Signature=topsecret`], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/SUMS\?X-Amz-Signature=REDACTED:1: not a checksum line/);
    expect(result.stderr).not.toContain('topsecret');
  });
});

describe('--checksums on the command line', () => {
  const url = 'https://example.com/a.iso';
  it('takes a file or an http(s) URL', () => {
    expect(parseCommandLine([url, '--checksums', 'SHA256SUMS'])).toMatchObject({ checksums: 'SHA256SUMS' });
    expect(parseCommandLine([url, '--checksums', 'https://example.com/SHA256SUMS'])).toMatchObject({ checksums: 'https://example.com/SHA256SUMS' });
  });
  it('refuses -, an empty value, another scheme, and --stdout (there is no file to check before a rename)', () => {
    expect(() => parseCommandLine([url, '--checksums', '-'])).toThrow(/^--checksums - \(standard input\) is not supported$/);
    expect(() => parseCommandLine([url, '--checksums='])).toThrow(/must be a file name or URL/);
    expect(() => parseCommandLine([url, '--checksums', 'ftp://example.com/SUMS'])).toThrow(/takes a file or an http\(s\) URL/);
    expect(() => parseCommandLine([url, '--stdout', '--checksums', 'SUMS'])).toThrow(/--stdout has no file/);
  });
});
