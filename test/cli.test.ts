/**
 * The `blockfetch` command as a real child process against the scripted
 * loopback fault server: downloads, naming, --force, --stdout, --json,
 * inspect, and every exit code reached by its real cause.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { inspectDownload, type InspectReport } from '../src/cli/inspect.js';
import { MAIN, TSX_LOADER, runCli, startCli, waitFor } from './cli-helpers.js';
import { shellQuote } from '../src/cli/resume-command.js';
import { streamBlockSizeFor } from '../src/cli/stream-command.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const execFileAsync = promisify(execFile);
const MiB = 2 ** 20;
const SIZE = 8 * MiB;
const DATA = payload(0, SIZE - 1);
const SHA256 = createHash('sha256').update(DATA).digest('hex');

let dir: string;
const servers: FaultServer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-cli-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function serve(options: Parameters<typeof startFaultServer>[0]): Promise<FaultServer> {
  const server = await startFaultServer(options);
  servers.push(server);
  return server;
}

async function freshDir(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

/** The exit status line and hint a failure prints: one line each, never a stack trace. */
function expectOneLineError(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  const error = lines.findIndex((l) => l.startsWith('blockfetch: '));
  expect(error, stderr).toBeGreaterThanOrEqual(0);
  expect(lines[error]).toMatch(message);
  expect(lines[error + 1] ?? '', stderr).toMatch(/^hint: \S/);
  expect(stderr).not.toMatch(/^\s+at /m);
}

/** A second revision of the payload: every byte inverted. */
function inverted(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = ~(data[i] as number) & 0xff;
  return out;
}

describe('blockfetch <url> -o FILE', () => {
  it('downloads byte-identical, verifies --sha256, leaves no partial files, prints JSON lines with --json', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('plain');
    const result = await runCli(
      [server.url, '-o', 'out.bin', '--block-size', '1MiB', '-c', '4', '--sha256', SHA256, '--json', '-H', 'Authorization: Bearer s3cret', '-H', 'X-Trace: a'],
      { cwd },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(ExitCode.SUCCESS);
    const out = await readFile(join(cwd, 'out.bin'));
    expect(out.length).toBe(SIZE);
    expect(firstMisplaced(out)).toBe(-1);
    expect(await readdir(cwd)).toEqual(['out.bin']);
    // Every ranged request after the first was pinned to the revision.
    expect(server.requests.slice(1).every((r) => r.headers['if-match'] === server.etag)).toBe(true);
    // -H reaches every request; the secret never reaches the output.
    expect(server.requests.every((r) => r.headers['authorization'] === 'Bearer s3cret' && r.headers['x-trace'] === 'a')).toBe(true);
    expect(result.stdout.toString('utf8')).not.toContain('s3cret');

    const lines = result.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: 'start', totalBytes: SIZE, blockSize: MiB, concurrency: 4, resumedBytes: 0 });
    expect(lines.at(-1)).toMatchObject({
      type: 'done',
      totalBytes: SIZE,
      bytesThisRun: SIZE,
      digest: { algorithm: 'sha256', hex: SHA256 },
    });
  });

  it('refuses to overwrite an existing target without --force, and replaces it with --force', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('force');
    await writeFile(join(cwd, 'out.bin'), 'precious');
    const refused = await runCli([server.url, '-o', 'out.bin'], { cwd });
    expect(refused.code).toBe(ExitCode.USAGE);
    expectOneLineError(refused.stderr, /out\.bin already exists/);
    expect(refused.stderr).toMatch(/--force/);
    expect(await readFile(join(cwd, 'out.bin'), 'utf8')).toBe('precious');
    // One look at the remote (is the file already that remote?), then refused: not that size.
    expect(server.requests).toHaveLength(1);

    const forced = await runCli([server.url, '-o', 'out.bin', '--force', '--quiet', '--block-size', '1MiB'], { cwd });
    expect(forced.code).toBe(ExitCode.SUCCESS);
    expect(forced.stderr).toBe('');
    expect(firstMisplaced(await readFile(join(cwd, 'out.bin')))).toBe(-1);
  });
});

describe('naming the file without -o', () => {
  it('keeps a hostile Content-Disposition inside the working directory', async () => {
    const server = await serve({
      content: payload(0, MiB - 1),
      path: '/files/innocent.bin',
      headers: { 'content-disposition': 'attachment; filename="../../etc/passwd"' },
    });
    const cwd = await freshDir('cd/a/b');
    const result = await runCli([server.url, '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(await readdir(cwd)).toEqual(['passwd']);
    expect(await readdir(join(dir, 'cd'))).toEqual(['a']);
    expect(firstMisplaced(await readFile(join(cwd, 'passwd')))).toBe(-1);
  });

  it('strips control characters and path separators from filename*', async () => {
    const server = await serve({
      content: payload(0, MiB - 1),
      headers: { 'content-disposition': "attachment; filename=\"x.bin\"; filename*=UTF-8''..%2F..%2F.evil%1B%5B2J%07name.bin" },
    });
    const cwd = await freshDir('cd2');
    const result = await runCli([server.url, '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(await readdir(cwd)).toEqual(['evil[2Jname.bin']);
  });
});

describe('--stdout', () => {
  it('streams exactly the file, in order, to stdout, with progress only on stderr', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('stdout');
    const hash = createHash('sha256');
    let bytes = 0;
    const result = await startCli([server.url, '--stdout', '-c', '4', '--block-size', '1MiB', '--json'], {
      cwd,
      onStdout: (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      },
    }).done;
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(bytes).toBe(SIZE);
    expect(hash.digest('hex')).toBe(SHA256);
    const events = result.stderr.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events.at(-1)).toMatchObject({ type: 'done', target: '-', totalBytes: SIZE });
    expect(await readdir(cwd)).toEqual([]); // nothing written to disk
  });
});

describe('--stdout without a block or request size', () => {
  it('asks in blocks sized to keep the reorder window within 32 MiB: 2 MiB at -c 8, 1 MiB at -c 16', async () => {
    expect([1, 4, 8, 16, 64].map(streamBlockSizeFor)).toEqual([16 * MiB, 4 * MiB, 2 * MiB, MiB, 256 * 1024]);
    const server = await serve({ content: DATA });
    const cwd = await freshDir('stdout-window');
    let bytes = 0;
    const result = await startCli([server.url, '--stdout', '-c', '8', '--quiet'], { cwd, onStdout: (chunk) => (bytes += chunk.length) }).done;
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(bytes).toBe(SIZE);
    const lengths = server.requests
      .map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range)))
      .filter((m) => m !== null)
      .map((m) => Number(m[2]) - Number(m[1]) + 1);
    expect(Math.max(...lengths)).toBe(2 * MiB);
  });
});

describe('--stdout | tar -x', () => {
  it('extracts an archive streamed through a real pipe', async () => {
    const cwd = await freshDir('tar');
    await mkdir(join(cwd, 'src/sub'), { recursive: true });
    await writeFile(join(cwd, 'src/a.bin'), payload(0, 3 * MiB - 1));
    await writeFile(join(cwd, 'src/sub/b.txt'), 'hello from inside the archive\n');
    await execFileAsync('tar', ['-cf', join(cwd, 'archive.tar'), '-C', join(cwd, 'src'), '.']);
    const server = await serve({ content: await readFile(join(cwd, 'archive.tar')) });
    await mkdir(join(cwd, 'out'));
    const command = `${shellQuote(process.execPath)} --import ${shellQuote(TSX_LOADER)} ${shellQuote(MAIN)} ${server.url} --stdout -c 4 --block-size 1MiB --quiet | tar -x -C out`;
    await execFileAsync('bash', ['-o', 'pipefail', '-c', command], { cwd });
    expect((await readFile(join(cwd, 'out/a.bin'))).equals(payload(0, 3 * MiB - 1))).toBe(true);
    expect(await readFile(join(cwd, 'out/sub/b.txt'), 'utf8')).toBe('hello from inside the archive\n');
  });
});

describe('--stdout | sha256sum', () => {
  it('streams the exact bytes through a real pipe', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('sha256sum');
    const command = `${shellQuote(process.execPath)} --import ${shellQuote(TSX_LOADER)} ${shellQuote(MAIN)} ${server.url} --stdout -c 8 --block-size 1MiB --quiet | sha256sum`;
    const { stdout } = await execFileAsync('bash', ['-o', 'pipefail', '-c', command], { cwd });
    expect(stdout.split(/\s+/)[0]).toBe(SHA256);
    expect(await readdir(cwd)).toEqual([]); // nothing written to disk
  });
});

describe('--stdout | head', () => {
  it('stops quietly with 141 when the reader closes the pipe', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('epipe');
    let received = 0;
    const running = startCli([server.url, '--stdout', '--block-size', '1MiB'], {
      cwd,
      onStdout: (chunk) => {
        received += chunk.length;
        running.child.stdout?.destroy(); // like `head -c 100`: read a little, then close
      },
    });
    const result = await running.done;
    expect(received).toBeGreaterThan(0);
    expect(result.code).toBe(ExitCode.STDOUT_CLOSED);
    expect(result.stderr).not.toMatch(/blockfetch:/);
  });
});

describe('exit codes, each from its real cause', () => {
  it('2: a usage error is one line and a hint', async () => {
    const cwd = await freshDir('usage');
    const bad = await runCli(['http://127.0.0.1:1/x', '-c', '0'], { cwd });
    expect(bad.code).toBe(ExitCode.USAGE);
    expectOneLineError(bad.stderr, /^blockfetch: -c\/--concurrency must be a whole number from 1 to 256, got "0"$/);
    const unknown = await runCli(['--bogus'], { cwd });
    expect(unknown.code).toBe(ExitCode.USAGE);
    expectOneLineError(unknown.stderr, /unknown option '--bogus'/);
  });

  it('3: network failure after retries keeps what it has; 8: a corrupt index is refused; --restart starts over', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('network');
    const target = join(cwd, 'net.bin');
    // Discovery succeeds; every later request fails.
    server.script((req) => (req.index >= 1 ? { kind: 'status', status: 503 } : undefined));
    const args = [server.url, '-o', 'net.bin', '--block-size', '1MiB', '-c', '2', '--retries', '1'];
    const failed = await runCli(args, { cwd });
    expect(failed.code).toBe(ExitCode.NETWORK);
    expect(failed.stderr).toMatch(/^blockfetch: .*/m);
    expect(failed.stderr).toMatch(/^hint: /m);
    expect(failed.stderr).toMatch(/^resume with: blockfetch http:\/\/127\.0\.0\.1:\d+\/file -o net\.bin --block-size 1MiB -c 2 --retries 1$/m);
    expect(failed.stderr).not.toMatch(/^\s+at /m);
    const partial = await inspectDownload(target);
    expect(partial).toMatchObject({ state: 'partial', size: SIZE, blockSize: MiB });
    expect(existsSync(target)).toBe(false);

    // 8: a damaged index is refused with a hint, and left as it is.
    server.script(undefined);
    const indexPath = `${target}.blockfetch.json`;
    const damaged = (await readFile(indexPath, 'utf8')).replace('"cachedBlocks": ', '"cachedBlocks": 1');
    await writeFile(indexPath, damaged);
    const requestsBefore = server.requests.length;
    const corrupt = await runCli(args, { cwd });
    expect(corrupt.code).toBe(ExitCode.INDEX);
    expectOneLineError(corrupt.stderr, /index file is corrupt/);
    expect(corrupt.stderr).toMatch(/--restart/);
    expect(await readFile(indexPath, 'utf8')).toBe(damaged);
    expect(server.requests.length).toBe(requestsBefore); // refused before any request

    // --restart discards the unusable partial download and fetches it all.
    const restarted = await runCli([...args, '--restart', '--quiet'], { cwd });
    expect(restarted.code, restarted.stderr).toBe(ExitCode.SUCCESS);
    expect(firstMisplaced(await readFile(target))).toBe(-1);
    expect(await readdir(cwd)).toEqual(['net.bin']);
  });

  it('4 during a run: a remote that changes mid-download is never stitched; --restart fetches the new revision', async () => {
    const server = await serve({ content: DATA });
    const cwd = await freshDir('midrun');
    const second = inverted(DATA);
    // The file is replaced when the third request arrives: it and later ones carry the old
    // ETag in If-Match and get 412.
    server.script((req) => {
      if (req.index === 2) server.setContent(second);
    });
    const args = [server.url, '-o', 'm.bin', '--block-size', '1MiB', '-c', '2'];
    const refused = await runCli(args, { cwd });
    expect(refused.code).toBe(ExitCode.REMOTE_CHANGED);
    expectOneLineError(refused.stderr, /changed since the download started/);
    expect(existsSync(join(cwd, 'm.bin'))).toBe(false);
    // Whatever was recorded is the first revision only.
    const recorded = await inspectDownload(join(cwd, 'm.bin'));
    expect(recorded.remote?.etag).toBe('"r1-8388608"');

    // With --restart the same change mid-run discards what was fetched and
    // downloads the new revision from a new, freshly pinned start.
    const changeAt = server.requests.length + 2;
    server.script((req) => {
      if (req.index === changeAt) server.setContent(DATA); // revision 3
    });
    const restarted = await runCli([server.url, '-o', 'm2.bin', '--block-size', '1MiB', '-c', '2', '--restart'], { cwd });
    expect(restarted.code, restarted.stderr).toBe(ExitCode.SUCCESS);
    expect(restarted.stderr).toMatch(/discarded the partial download \(.*changed since the download started/);
    expect((await readFile(join(cwd, 'm2.bin'))).equals(DATA)).toBe(true);
    expect(server.requests.at(-1)?.headers['if-match']).toBe('"r3-8388608"');
  });

  it('3: a server that refuses the very first request is retried with backoff before giving up', async () => {
    const gone = await startFaultServer({ content: payload(0, 1023) });
    const url = gone.url;
    await gone.close(); // nothing listens on that port now
    const cwd = await freshDir('refused');
    const result = await runCli([url, '-o', 'r.bin', '--retries', '2', '--json'], { cwd });
    expect(result.code).toBe(ExitCode.NETWORK);
    const lines = result.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l['type'])).toEqual(['retry', 'retry', 'error']);
    expect(lines[0]).toMatchObject({ from: -1, to: -1, attempt: 1, code: 'BLOCKFETCH_NETWORK' });
    expect(lines[2]).toMatchObject({ code: 'BLOCKFETCH_RETRIES_EXHAUSTED', exitCode: 3, message: expect.stringMatching(/failed 3 times: .*ECONNREFUSED/) as unknown });
    expect(result.stderr).toMatch(/^blockfetch: the first request failed 3 times: /m);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('3: --timeout ends a request that stalls, and it is retried', async () => {
    const server = await serve({ content: payload(0, 4 * MiB - 1) });
    const cwd = await freshDir('timeout');
    // Headers, then not a byte: no progress, so each stall counts against --retries.
    server.script((req) => (req.index >= 1 ? { kind: 'stall', after: 0 } : undefined));
    const started = Date.now();
    const result = await runCli([server.url, '-o', 't.bin', '--block-size', '1MiB', '-c', '1', '--timeout', '300ms', '--retries', '1', '--json'], {
      cwd,
    });
    expect(result.code).toBe(ExitCode.NETWORK);
    const lines = result.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l['type'] === 'retry').map((l) => l['code'])).toContain('BLOCKFETCH_TIMEOUT');
    expect(lines.at(-1)).toMatchObject({ type: 'error', exitCode: 3 });
    // Two stalled attempts of 300 ms and a backoff, not the 30 s default.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('5: a digest mismatch keeps the partial file and never creates the target', async () => {
    const server = await serve({ content: payload(0, MiB - 1) });
    const cwd = await freshDir('digest');
    const wrong = 'ab'.repeat(32);
    const result = await runCli([server.url, '-o', 'd.bin', '--sha256', wrong], { cwd });
    expect(result.code).toBe(ExitCode.INTEGRITY);
    expectOneLineError(result.stderr, new RegExp(`^blockfetch: sha256 mismatch: expected ${wrong}, got [0-9a-f]{64}$`));
    expect(existsSync(join(cwd, 'd.bin'))).toBe(false);
    expect(existsSync(join(cwd, 'd.bin.blockfetch'))).toBe(true);
  });

  it('6: not enough space is found before a byte is written', async () => {
    const huge = 2 ** 46; // 64 TiB: more than this machine's disk
    const server = await serve({ content: { size: huge, bytes: (from, to) => payload(from, to) } });
    const cwd = await freshDir('space');
    const result = await runCli([server.url, '-o', 'huge.bin', '--block-size', '1MiB'], { cwd });
    expect(result.code).toBe(ExitCode.NO_SPACE);
    // The data plus the index at its largest, its temp file and the lock file.
    expectOneLineError(result.stderr, /not enough space for .*huge\.bin\.blockfetch: needs [\d.]+ [KMGTP]?i?B \(\d+ bytes\)/);
    expect(Number(/needs [^(]*\((\d+) bytes\)/.exec(result.stderr)?.[1])).toBeGreaterThan(huge);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('130, 7, 4: SIGINT saves and says how to resume; a second process is locked out; inspect works meanwhile; a changed remote needs --restart', async () => {
    const first = DATA;
    const server = await serve({ content: first });
    const cwd = await freshDir('interrupt');
    const target = join(cwd, 'big.bin');
    // Slow enough (8 MiB at 128 KiB/s: about a minute) that the download cannot
    // finish while a second process, started under load, waits for its lock.
    const args = [server.url, '-o', 'big.bin', '--block-size', '512KiB', '-c', '2', '--rate', '128KiB/s'];
    const running = startCli(args, { cwd });
    await waitFor(() => existsSync(`${target}.blockfetch.json`));

    // inspect while it downloads: read-only, no lock needed.
    const live = await runCli(['inspect', 'big.bin', '--json'], { cwd });
    expect(live.code, live.stderr).toBe(ExitCode.SUCCESS);
    const report = JSON.parse(live.stdout.toString('utf8')) as InspectReport;
    expect(report).toMatchObject({ state: 'partial', size: SIZE, blockSize: 512 * 1024, blocks: 16 });
    expect(report.remote?.etag).toBe(server.etag);

    // 7: the same target from a second process waits for the lock, then gives up.
    const locked = await runCli(args, { cwd });
    expect(locked.code).toBe(ExitCode.LOCKED);
    expectOneLineError(locked.stderr, /in use by another blockfetch process/);

    // Wait for the signal the assertions below rely on: a block recorded in the index.
    await waitFor(async () => (await inspectDownload(target)).doneBytes > 0, 60_000);

    // 130: SIGINT stops it (long before the minute the rest would take:
    // the saved index below is still partial), saves the index, prints the command.
    running.child.kill('SIGINT');
    const interrupted = await running.done;
    expect(interrupted.code).toBe(ExitCode.INTERRUPTED);
    expect(interrupted.stderr).toMatch(/^blockfetch: interrupted by SIGINT; progress saved in .*big\.bin\.blockfetch$/m);
    expect(interrupted.stderr).toMatch(/^resume with: blockfetch http:\/\/127\.0\.0\.1:\d+\/file -o big\.bin --block-size 512KiB -c 2 --rate 128KiB\/s$/m);
    const saved = await inspectDownload(target);
    expect(saved.doneBytes).toBeGreaterThan(0);
    expect(saved.doneBytes).toBeLessThan(SIZE);
    expect(saved.outstanding.length).toBeGreaterThan(0);

    const human = await runCli(['inspect', `big.bin.blockfetch`], { cwd });
    expect(human.code).toBe(ExitCode.SUCCESS);
    const text = human.stdout.toString('utf8');
    expect(text).toMatch(/^done: +\d+\.\d% \(\d+ of 16 blocks/m);
    expect(text).toMatch(/^outstanding: +.* in \d+ runs?$/m);
    expect(text).toMatch(/^ +bytes \d+-\d+ \(/m);
    expect(text).toContain(`etag:         ${server.etag}`);

    // 4: the remote changes; resuming is refused, nothing is touched.
    const second = inverted(first);
    server.setContent(second);
    const changed = await runCli([server.url, '-o', 'big.bin', '--quiet'], { cwd });
    expect(changed.code).toBe(ExitCode.REMOTE_CHANGED);
    expectOneLineError(changed.stderr, /changed since the download started \(.*etag/);
    expect(changed.stderr).toMatch(/--restart/);
    expect((await inspectDownload(target)).doneBytes).toBe(saved.doneBytes);

    // --restart discards the old revision's bytes and fetches the new one.
    const restarted = await runCli([server.url, '-o', 'big.bin', '--restart', '--quiet', '-c', '4'], { cwd });
    expect(restarted.code, restarted.stderr).toBe(ExitCode.SUCCESS);
    expect((await readFile(target)).equals(second)).toBe(true);
    expect((await stat(target)).size).toBe(SIZE);
  });
});
