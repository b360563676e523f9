/**
 * Sets of files through the real command (a child process) against a real
 * HTTP server on 127.0.0.1: several URLs into -d, `-i FILE` and `-i -` in
 * aria2c's format, malformed input files and duplicate targets refused
 * before any request, one connection budget across files (the server
 * counts the requests open at once), kill -9 in the middle of a set and
 * the same command again, the exit status of a mixed outcome, and --json
 * lines that name their file.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MAIN, TSX_LOADER, runCli, startCli, waitFor, type CliResult } from './cli-helpers.js';
import { startSetServer, type SetServer } from './helpers/set-server.js';
import { payload } from './helpers/payload.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const KiB256 = ['--block-size', '256KiB', '--request-size', '256KiB'];

/** Runs the command with `input` on its stdin (cli-helpers' runner gives it none). */
function runWithStdin(args: readonly string[], cwd: string, input: string): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, ...args], { cwd, env: { ...process.env, NODE_DEBUG: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (err += c));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('blockfetch with several files', () => {
  let dir: string;
  let server: SetServer | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-sets-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('saves several URLs into -d, each named as one URL would be', async () => {
    const a = payload(0, 70_000);
    const b = payload(1, 130_000);
    const c = payload(2, 10_000);
    server = await startSetServer({ '/x/a.bin': a, '/b.bin': b, '/get': { content: c, headers: { 'content-disposition': 'attachment; filename="../../named.txt"' } } });
    await mkdir(join(dir, 'out'));
    const result = await runCli([server.url('/x/a.bin'), server.url('/b.bin'), server.url('/get'), '-d', 'out'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(await readFile(join(dir, 'out', 'a.bin')))).toBe(sha256(a));
    expect(sha256(await readFile(join(dir, 'out', 'b.bin')))).toBe(sha256(b));
    // The server's name, sanitized as for one URL: no way out of the directory.
    expect(sha256(await readFile(join(dir, 'out', 'named.txt')))).toBe(sha256(c));
    expect(result.stderr).toMatch(/summary: 3 files in .*: 3 done, 0 skipped, 0 failed \(exit status 0\)/);
    expect(result.stderr).toMatch(/^ {2}done {5}out\/a\.bin /m);
  });

  it('refuses hf:// and s3:// URLs in a set of URLs or an input file, in one line, before any request', async () => {
    server = await startSetServer({ '/a': payload(0, 9) });
    for (const other of ['hf://org/model', 's3://bucket/key']) {
      const r = await runCli([server.url('/a'), other, '-d', '.'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^blockfetch: URL 2: ${other.replace(/[/.]/g, '\\$&')} is not an http\\(s\\) URL.*\nhint: download an hf:// repository or an s3:// prefix in a command of its own`));
      expect(r.stderr).not.toMatch(/HttpReader|at .*\.ts:/);
    }
    await writeFile(join(dir, 'list.txt'), `${server.url('/a')}\ns3://bucket/key\n  out=k.bin\n`);
    const r = await runCli(['-i', 'list.txt'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^blockfetch: list\.txt:2: unsupported URL scheme "s3:"\nhint: blockfetch downloads http:\/\/ and https:\/\/ URLs\n$/);
    expect(server.total()).toBe(0);
  });

  it('refuses -o and --stdout with several URLs, before any request', async () => {
    server = await startSetServer({ '/a': payload(0, 9), '/b': payload(0, 9) });
    const o = await runCli([server.url('/a'), server.url('/b'), '-o', 'x'], { cwd: dir });
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(/^blockfetch: -o names one file, but 2 URLs ask for several\nhint: use -d DIR to choose the directory; to name each file, list the URLs in a file for -i with an out=NAME line under each\n$/);
    const out = await runCli([server.url('/a'), server.url('/b'), '--stdout'], { cwd: dir });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/--stdout streams one file/);
    expect(server.total()).toBe(0);
  });

  it('reads -i - (stdin) with every option kind, comments and blank lines', async () => {
    const a = payload(0, 50_000);
    const b = payload(3, 300_000);
    const c = payload(4, 1000);
    server = await startSetServer({ '/a': a, '/b': b, '/c.bin': c, '/mirror-b': b });
    await mkdir(join(dir, 'set', 'sub'), { recursive: true });
    const list = [
      '# a list in aria2c format',
      server.url('/a'),
      '  out=first.bin',
      '  header=X-Token: abc',
      '',
      `${server.url('/b')}\t${server.url('/mirror-b')}`,
      '\tdir=sub',
      '\tout=second.bin',
      `\tchecksum=sha-256=${sha256(b)}`,
      '   # an indented comment',
      server.url('/c.bin'),
      '',
    ].join('\n');
    const result = await runWithStdin(['-i', '-', '-d', 'set', '-H', 'X-Token: global', '-H', 'X-Other: o'], dir, list);
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(await readFile(join(dir, 'set', 'first.bin')))).toBe(sha256(a));
    expect(sha256(await readFile(join(dir, 'set', 'sub', 'second.bin')))).toBe(sha256(b));
    expect(sha256(await readFile(join(dir, 'set', 'c.bin')))).toBe(sha256(c));
    // header= wins over -H for its own entry; -H still applies to the others.
    expect(server.requests.get('/a')?.every((r) => r.headers['x-token'] === 'abc' && r.headers['x-other'] === 'o')).toBe(true);
    expect(server.requests.get('/c.bin')?.every((r) => r.headers['x-token'] === 'global')).toBe(true);
    // The second URL on the line is a mirror of the same file: it is read too (at least its first look), with the set's headers.
    expect(server.requests.get('/mirror-b')?.length).toBeGreaterThan(0);
    expect(server.requests.get('/mirror-b')?.every((r) => r.headers['x-token'] === 'global')).toBe(true);
    expect(result.stderr).not.toMatch(/not built yet/);
    expect(result.stderr).toMatch(/done {5}set\/sub\/second\.bin \(293 KiB, sha256 verified\)/);
  });

  const malformed: [string, string, RegExp][] = [
    ['an option before any URL', '# list\n  out=a\n', /^blockfetch: list\.txt:2: an option line before any URL\n/],
    ['an unknown option', 'URL/a\n  out=a\n\n  split=4\n', /^blockfetch: list\.txt:4: unknown option "split"\n/],
    ['a bad checksum', 'URL/a\nURL/b\n  checksum=sha-256=12\n', /^blockfetch: list\.txt:3: checksum=sha-256= must be 64 hexadecimal digits, got 2 characters\n/],
    ['out= leaving the directory', 'URL/a\n  out=../../etc/x\n', /^blockfetch: list\.txt:2: out=\.\.\/\.\.\/etc\/x goes up with "\.\.": out= must stay inside the download directory\n/],
    ['a line that is not a URL', 'URL/a\nhttp//nope\n', /^blockfetch: list\.txt:2: not a URL/],
  ];
  it.each(malformed)('refuses an input file with %s: FILE:LINE, exit 2, no request', async (_name, text, message) => {
    server = await startSetServer({ '/a': payload(0, 9), '/b': payload(0, 9) });
    await writeFile(join(dir, 'list.txt'), text.replace(/URL/g, server.url('')));
    const result = await runCli(['-i', 'list.txt'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(server.total()).toBe(0);
  });

  it('refuses two entries with one output path before any request', async () => {
    server = await startSetServer({ '/a': payload(0, 9), '/b': payload(0, 9) });
    const u = server.url('');
    await writeFile(join(dir, 'dup.txt'), `${u}/a\n  dir=sub\n  out=x\n${u}/b\n  out=sub//x\n`);
    const result = await runCli(['-i', 'dup.txt'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^blockfetch: dup\.txt:4: saves to sub\/x, as dup\.txt:1 already does\n/);
    expect(server.total()).toBe(0);
  });

  it('counts -c across files: the server never sees more requests at once, and small files finish while large ones run', async () => {
    const large = [payload(0, 4 * 2 ** 20 - 1), payload(9, 4 * 2 ** 20 + 8)];
    const small = Array.from({ length: 4 }, (_, i) => payload(i * 7, i * 7 + 30_000));
    server = await startSetServer({
      '/L0': { content: large[0] as Buffer, bytesPerSecond: 1_000_000 },
      '/L1': { content: large[1] as Buffer, bytesPerSecond: 1_000_000 },
      ...Object.fromEntries(small.map((b, i) => [`/s${i}`, b])),
    });
    const names = ['L0', 'L1', 's0', 's1', 's2', 's3'];
    await writeFile(join(dir, 'set.txt'), names.map((n) => `${server?.url(`/${n}`)}\n  out=${n}`).join('\n'));
    let out = '';
    const run = startCli(['-i', 'set.txt', '-c', '3', '-j', '3', ...KiB256, '--json'], { cwd: dir, onStdout: (c) => (out += c.toString('utf8')) });
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(server.maxOpen).toBeLessThanOrEqual(3);
    expect(server.maxOpen).toBeGreaterThan(1);
    for (const [i, b] of [...large, ...small].entries()) expect(sha256(await readFile(join(dir, names[i] as string)))).toBe(sha256(b));
    const doneOrder = jsonLines(out)
      .filter((l) => l['type'] === 'done')
      .map((l) => l['file']);
    expect(doneOrder.slice(-2).sort()).toEqual(['L0', 'L1']);
  });

  it('after kill -9 in the middle of a set, the same command skips finished files (no request) and resumes the rest', async () => {
    const big = payload(0, 6 * 2 ** 20 - 1);
    const smalls = [payload(1, 20_000), payload(2, 30_000)];
    server = await startSetServer({ '/big': { content: big, bytesPerSecond: 1_000_000 }, '/s0': smalls[0] as Buffer, '/s1': smalls[1] as Buffer });
    const list = `${server.url('/s0')}\n  out=s0\n${server.url('/big')}\n  out=big\n${server.url('/s1')}\n  out=s1\n`;
    await writeFile(join(dir, 'set.txt'), list);
    const args = ['-i', 'set.txt', '-c', '2', ...KiB256, '--json'];
    let out = '';
    const first = startCli(args, { cwd: dir, onStdout: (c) => (out += c.toString('utf8')) });
    // Kill once both small files are done and the big one has blocks on disk.
    await waitFor(() => {
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const done = lines.filter((l) => l['type'] === 'done').map((l) => l['file']);
      const bigProgress = lines.some((l) => l['type'] === 'progress' && l['file'] === 'big' && (l['bytesDone'] as number) >= 512 * 1024);
      return done.includes('s0') && done.includes('s1') && bigProgress;
    }, 60_000);
    first.child.kill('SIGKILL');
    await first.done;
    await stat(join(dir, 'big.blockfetch'));
    const before = { s0: server.requests.get('/s0')?.length, s1: server.requests.get('/s1')?.length };
    const second = await runCli(args, { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expect({ s0: server.requests.get('/s0')?.length, s1: server.requests.get('/s1')?.length }).toEqual(before);
    const lines = jsonLines(second.stdout.toString('utf8'));
    expect(lines.filter((l) => l['type'] === 'skipped').map((l) => l['file'])).toEqual(['s0', 's1']);
    const start = lines.find((l) => l['type'] === 'start' && l['file'] === 'big');
    expect(start?.['resumedBytes']).toBeGreaterThanOrEqual(512 * 1024);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', outcome: 'complete', exitCode: 0, files: [{ file: 's0', outcome: 'skipped' }, { file: 'big', outcome: 'done' }, { file: 's1', outcome: 'skipped' }] });
    expect(sha256(await readFile(join(dir, 'big')))).toBe(sha256(big));
    expect(sha256(await readFile(join(dir, 's0')))).toBe(sha256(smalls[0] as Buffer));
    expect(sha256(await readFile(join(dir, 's1')))).toBe(sha256(smalls[1] as Buffer));
    await expect(stat(join(dir, 'big.blockfetch.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('Ctrl-C stops every file of the set, saves every partial and exits 130', async () => {
    const one = payload(0, 4 * 2 ** 20 - 1);
    const two = payload(1, 4 * 2 ** 20);
    server = await startSetServer({ '/one': { content: one, bytesPerSecond: 500_000 }, '/two': { content: two, bytesPerSecond: 500_000 }, '/three': payload(2, 100) });
    await writeFile(join(dir, 'set.txt'), ['one', 'two', 'three'].map((n) => `${server?.url(`/${n}`)}\n  out=${n}`).join('\n'));
    let out = '';
    const run = startCli(['-i', 'set.txt', '-c', '2', '-j', '2', ...KiB256, '--json'], { cwd: dir, onStdout: (c) => (out += c.toString('utf8')) });
    // Both running files have blocks on disk.
    await waitFor(() => {
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      return ['one', 'two'].every((f) => lines.some((l) => l['type'] === 'progress' && l['file'] === f && (l['bytesDone'] as number) >= 256 * 1024));
    }, 60_000);
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code).toBe(130);
    const lines = jsonLines(out);
    expect(lines.at(-1)).toMatchObject({
      type: 'summary',
      outcome: 'interrupted',
      exitCode: 130,
      files: [
        { file: 'one', outcome: 'failed', code: 'BLOCKFETCH_ABORTED' },
        { file: 'two', outcome: 'failed', code: 'BLOCKFETCH_ABORTED' },
        { file: 'three', outcome: 'not-started' },
      ],
    });
    // Each partial is saved with the blocks it had: `inspect` reads them back.
    for (const name of ['one', 'two']) {
      const inspected = await runCli(['inspect', name, '--json'], { cwd: dir });
      expect(inspected.code, inspected.stderr).toBe(0);
      const report = jsonLines(inspected.stdout.toString('utf8'))[0];
      expect(report).toMatchObject({ type: 'inspect', state: 'partial' });
      expect(report?.['doneBytes']).toBeGreaterThanOrEqual(256 * 1024);
    }
    expect(server.requests.get('/three')).toBeUndefined();
  });

  it('a mixed outcome exits with the most severe failure, lists every file, and --json lines name their file', async () => {
    const a = payload(0, 40_000);
    const b = payload(1, 40_000);
    server = await startSetServer({ '/a.bin': a, '/b.bin': b });
    const result = await runCli([server.url('/a.bin'), server.url('/gone.bin'), server.url('/b.bin'), '--json'], { cwd: dir });
    // A 404 is exit 1 (running again will not fix it).
    expect(result.code).toBe(1);
    expect(sha256(await readFile(join(dir, 'a.bin')))).toBe(sha256(a));
    expect(sha256(await readFile(join(dir, 'b.bin')))).toBe(sha256(b));
    const lines = jsonLines(result.stdout.toString('utf8'));
    for (const line of lines) {
      if (['start', 'progress', 'retry', 'done', 'error', 'skipped'].includes(line['type'] as string)) expect(typeof line['file'], JSON.stringify(line)).toBe('string');
    }
    expect(lines.find((l) => l['type'] === 'error')).toMatchObject({ file: `${server.url('/gone.bin')}`, code: 'BLOCKFETCH_HTTP_STATUS', exitCode: 1 });
    expect(lines.at(-1)).toMatchObject({
      type: 'summary',
      outcome: 'failed',
      exitCode: 1,
      files: [
        { file: 'a.bin', outcome: 'done' },
        { file: server.url('/gone.bin'), outcome: 'failed', code: 'BLOCKFETCH_HTTP_STATUS', exitCode: 1 },
        { file: 'b.bin', outcome: 'done' },
      ],
    });
    // The same without --json: a summary for a person.
    const again = await runCli([server.url('/a.bin'), server.url('/gone.bin'), server.url('/b.bin')], { cwd: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/summary: 3 files in .*: 0 done, 2 skipped, 1 failed \(exit status 1\)/);
    expect(again.stderr).toMatch(/^ {2}failed {3}http:\/\/127\.0\.0\.1:\d+\/gone\.bin: exit 1 BLOCKFETCH_HTTP_STATUS: /m);
  });
});
