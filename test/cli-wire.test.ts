/**
 * The features built apart, used together, through the real command (a
 * child process) against real servers on 127.0.0.1: `--checksums` for a set
 * of files (a wrong listed digest fails that file with 5, the others
 * finish; an input file's `checksum=` the list contradicts is refused with
 * FILE:LINE before any request; `-H` goes to a list URL only when the whole
 * set is on its origin), `--checksums` with `-o FILE --stdout`, an input
 * file line of TAB-separated mirrors read from every mirror, `--mirror` told
 * the list's digest, and `--mirror` refused with several files.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { parseCommandLine } from '../src/cli/args.js';
import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli, startCli } from './cli-helpers.js';
import { startSetServer, type SetServer } from './helpers/set-server.js';
import { payload } from './helpers/payload.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const WRONG = 'ab'.repeat(32);
const SMALL_BLOCKS = ['--block-size', '256KiB', '--request-size', '256KiB'];

/** Requests that fetched file bytes: every one but a mirror's 1-byte first look. */
const byteRequests = (server: SetServer, path: string): number => (server.requests.get(path) ?? []).filter((r) => r.range !== 'bytes=0-0').length;

describe('checksum lists, stream while saving and mirrors, together', () => {
  let dir: string;
  const servers: SetServer[] = [];
  const serve = async (files: Parameters<typeof startSetServer>[0]): Promise<SetServer> => {
    const server = await startSetServer(files);
    servers.push(server);
    return server;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-wire-'));
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('a set with --checksums: the file the list gives a wrong digest for fails with 5, the others are done, an unlisted one is noted', async () => {
    const a = payload(0, 200_000);
    const b = payload(1, 300_000);
    const c = payload(2, 50_000);
    const d = payload(3, 10_000);
    const server = await serve({ '/a.bin': a, '/b.bin': b, '/c.bin': c, '/d.bin': d });
    await mkdir(join(dir, 'out'));
    await writeFile(join(dir, 'SHA256SUMS'), `${sha256(a)}  a.bin\n${WRONG}  b.bin\n${sha256(c)} *c.bin\n`);
    const urls = ['/a.bin', '/b.bin', '/c.bin', '/d.bin'].map((p) => server.url(p));
    const result = await runCli([...urls, '-d', 'out', '--checksums', 'SHA256SUMS', ...SMALL_BLOCKS], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.INTEGRITY);
    expect(result.stderr).toMatch(/summary: 4 files in .*: 3 done, 0 skipped, 1 failed \(exit status 5\)/);
    expect(result.stderr).toMatch(/^ {2}done {5}out\/a\.bin \(195 KiB, sha256 verified\)$/m);
    expect(result.stderr).toMatch(/^ {2}done {5}out\/c\.bin \(48\.8 KiB, sha256 verified\)$/m);
    expect(result.stderr).toMatch(/^ {2}failed {3}out\/b\.bin: exit 5 BLOCKFETCH_DIGEST_MISMATCH: /m);
    // The hint says the digest came from the list, as for one file.
    expect(result.stderr).toMatch(/hint: the file does not have the sha256 that SHA256SUMS gives for b\.bin/);
    expect(result.stderr).toMatch(/^note: SHA256SUMS does not list d\.bin; it is downloaded without a checksum from the list$/m);
    expect(sha256(await readFile(join(dir, 'out', 'a.bin')))).toBe(sha256(a));
    expect(sha256(await readFile(join(dir, 'out', 'c.bin')))).toBe(sha256(c));
    expect(sha256(await readFile(join(dir, 'out', 'd.bin')))).toBe(sha256(d));
    // The failed file is held back from its rename, its partial kept.
    expect(existsSync(join(dir, 'out', 'b.bin'))).toBe(false);
    expect(existsSync(join(dir, 'out', 'b.bin.blockfetch'))).toBe(true);
  });

  it("an input file's checksum= that the list contradicts is a usage error naming FILE:LINE, before any request", async () => {
    const a = payload(0, 20_000);
    const b = payload(1, 20_000);
    const server = await serve({ '/a.bin': a, '/b.bin': b });
    await writeFile(join(dir, 'SHA256SUMS'), `${sha256(a)}  a.bin\n${sha256(b)}  b.bin\n`);
    const list = [server.url('/a.bin'), `  checksum=sha-256=${sha256(a)}`, server.url('/b.bin'), '  out=b.bin', `  checksum=sha-256=${WRONG}`, ''].join('\n');
    await writeFile(join(dir, 'list.txt'), list);
    const result = await runCli(['-i', 'list.txt', '--checksums', 'SHA256SUMS'], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(
      new RegExp(`^blockfetch: list\\.txt:3: its checksum= sha256 \\(${WRONG}\\) is not the one SHA256SUMS gives for "b\\.bin" \\(${sha256(b)}\\)$`, 'm'),
    );
    expect(result.stderr).toMatch(/^hint: /m);
    expect(server.total()).toBe(0);
    expect(existsSync(join(dir, 'b.bin'))).toBe(false);
  });

  it('a list URL gets the -H headers only when every file of the set is on its origin', async () => {
    const a = payload(0, 30_000);
    const b = payload(1, 30_000);
    const sums = Buffer.from(`${sha256(a)}  a.bin\n${sha256(b)}  b.bin\n`);
    const home = await serve({ '/a.bin': a, '/b.bin': b, '/SHA256SUMS': sums });
    const elsewhere = await serve({ '/b.bin': b });
    const token = ['-H', 'Authorization: Bearer s3cret', '-A', 'tester/1'];
    await mkdir(join(dir, 'one'));
    const one = await runCli([home.url('/a.bin'), home.url('/b.bin'), '-d', 'one', '--checksums', home.url('/SHA256SUMS'), ...token], { cwd: dir });
    expect(one.code, one.stderr).toBe(ExitCode.SUCCESS);
    expect(home.requests.get('/SHA256SUMS')?.[0]?.headers['authorization']).toBe('Bearer s3cret');
    // A set spanning two origins: the token was also meant for the other host, so the list's host does not get it.
    await mkdir(join(dir, 'two'));
    const two = await runCli([home.url('/a.bin'), elsewhere.url('/b.bin'), '-d', 'two', '--checksums', home.url('/SHA256SUMS'), ...token], { cwd: dir });
    expect(two.code, two.stderr).toBe(ExitCode.SUCCESS);
    const second = home.requests.get('/SHA256SUMS')?.[1];
    expect(second).toBeDefined();
    expect(second?.headers['authorization']).toBeUndefined();
    expect(second?.headers['user-agent']).toBe('tester/1');
    // The files themselves still get it.
    expect(elsewhere.requests.get('/b.bin')?.every((r) => r.headers['authorization'] === 'Bearer s3cret')).toBe(true);
    expect(two.stderr).toMatch(/done {5}two\/b\.bin \(29\.3 KiB, sha256 verified\)/);
  });

  it('-o FILE --stdout --checksums streams while saving and checks the list before the rename; a wrong entry exits 5', async () => {
    const data = payload(0, 3 * 2 ** 20);
    const server = await serve({ '/snap.bin': data });
    await writeFile(join(dir, 'GOOD'), `${sha256(data)}  snap.bin\n`);
    await writeFile(join(dir, 'BAD'), `${WRONG}  snap.bin\n`);
    // --stdout alone still has no file to hold back.
    expect(() => parseCommandLine([server.url('/snap.bin'), '--stdout', '--checksums', 'GOOD'])).toThrow(/--stdout has no file/);
    expect(parseCommandLine([server.url('/snap.bin'), '-o', 'snap.bin', '--stdout', '--checksums', 'GOOD'])).toMatchObject({ toStdout: true, output: 'snap.bin', checksums: 'GOOD' });

    const good = await runCli([server.url('/snap.bin'), '-o', 'snap.bin', '--stdout', '--checksums', 'GOOD', ...SMALL_BLOCKS], { cwd: dir });
    expect(good.code, good.stderr).toBe(ExitCode.SUCCESS);
    expect(sha256(good.stdout)).toBe(sha256(data));
    expect(sha256(await readFile(join(dir, 'snap.bin')))).toBe(sha256(data));

    await mkdir(join(dir, 'bad'));
    let streamed = 0;
    const bad = await startCli([server.url('/snap.bin'), '-o', 'snap.bin', '--stdout', '--checksums', '../BAD', ...SMALL_BLOCKS], {
      cwd: join(dir, 'bad'),
      onStdout: (chunk) => (streamed += chunk.length),
    }).done;
    expect(bad.code, bad.stderr).toBe(ExitCode.INTEGRITY);
    expect(streamed).toBeGreaterThan(0);
    expect(bad.stderr).toMatch(/the file does not have the sha256 that \.\.\/BAD gives for snap\.bin/);
    expect(bad.stderr).toMatch(/already written to stdout failed the digest check/);
    expect(existsSync(join(dir, 'bad', 'snap.bin'))).toBe(false);
    expect(existsSync(join(dir, 'bad', 'snap.bin.blockfetch'))).toBe(true);
  });

  it('an input-file line of two TAB-separated mirrors is one file read from both, proven the same by the list', async () => {
    const data = payload(0, 8 * 2 ** 20);
    // Different paths: different ETags, so only the list's digest lets the two share the work.
    const first = await serve({ '/pub/model.bin': data });
    const second = await serve({ '/mirror/model.bin': data });
    await writeFile(join(dir, 'SHA256SUMS'), `${sha256(data)}  model.bin\n`);
    await writeFile(join(dir, 'list.txt'), `${first.url('/pub/model.bin')}\t${second.url('/mirror/model.bin')}\n  out=model.bin\n  header=X-Entry: e\n`);
    const result = await runCli(['-i', 'list.txt', '--checksums', 'SHA256SUMS', '-c', '4', ...SMALL_BLOCKS], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(sha256(await readFile(join(dir, 'model.bin')))).toBe(sha256(data));
    expect(result.stderr).toMatch(/done {5}model\.bin \(8\.00 MiB, sha256 verified\)/);
    expect(byteRequests(first, '/pub/model.bin')).toBeGreaterThan(1);
    expect(byteRequests(second, '/mirror/model.bin')).toBeGreaterThan(0);
    // The entry's header= goes to every mirror.
    expect(second.requests.get('/mirror/model.bin')?.every((r) => r.headers['x-entry'] === 'e')).toBe(true);
    expect(result.stderr).not.toMatch(/not built yet|unproven|nothing proves/);
  });

  it("every digest reaches the mirrors: one advertising a sha512 other than the list's is refused, though checksum= gave a sha256", async () => {
    const data = payload(7, 2 * 2 ** 20);
    const sha512 = createHash('sha512').update(data).digest('hex');
    const otherSha512 = createHash('sha512').update('another file').digest('base64');
    const first = await serve({ '/pub/w.bin': data });
    const second = await serve({ '/mirror/w.bin': { content: data, headers: { 'repr-digest': `sha-512=:${otherSha512}:` } } });
    await writeFile(join(dir, 'SHA512SUMS'), `${sha512}  w.bin\n`);
    await writeFile(join(dir, 'list.txt'), `${first.url('/pub/w.bin')}\t${second.url('/mirror/w.bin')}\n  out=w.bin\n  checksum=sha-256=${sha256(data)}\n`);
    const result = await runCli(['-i', 'list.txt', '--checksums', 'SHA512SUMS', ...SMALL_BLOCKS], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^ {2}failed {3}w\.bin: exit 2 BLOCKFETCH_MIRRORS_DISAGREE: the mirrors disagree on the sha512 digest: the digest given has /m);
    expect(existsSync(join(dir, 'w.bin'))).toBe(false);
  });

  it('--mirror for one URL is told the digests from --checksums, so both mirrors serve', async () => {
    const data = payload(5, 8 * 2 ** 20);
    const first = await serve({ '/a/f.iso': data });
    const second = await serve({ '/b/f.iso': data });
    await writeFile(join(dir, 'SHA256SUMS'), `${sha256(data)}  f.iso\n`);
    const result = await runCli([first.url('/a/f.iso'), '--mirror', second.url('/b/f.iso'), '-o', 'f.iso', '--checksums', 'SHA256SUMS', '-c', '4', ...SMALL_BLOCKS], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(sha256(await readFile(join(dir, 'f.iso')))).toBe(sha256(data));
    expect(byteRequests(first, '/a/f.iso')).toBeGreaterThan(1);
    expect(byteRequests(second, '/b/f.iso')).toBeGreaterThan(0);
  });

  it('--mirror with several URLs or -i is a usage error that says where mirrors go, before any request', async () => {
    const server = await serve({ '/a': payload(0, 9), '/b': payload(0, 9), '/m': payload(0, 9) });
    const result = await runCli([server.url('/a'), server.url('/b'), '--mirror', server.url('/m'), '-d', '.'], { cwd: dir });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^blockfetch: --mirror gives more URLs of one file, but 2 URLs ask for several files\nhint: put each file's mirrors on its line of an input file, separated by TAB characters/);
    expect(server.total()).toBe(0);
    expect(() => parseCommandLine(['-i', 'list.txt', '--mirror', server.url('/m')])).toThrow(/^--mirror gives more URLs of one file, but -i "list\.txt" asks for several files$/);
  });
});
