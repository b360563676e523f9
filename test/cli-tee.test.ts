/**
 * Stream while saving: `blockfetch URL -o FILE --stdout`, the real command
 * as a child process against the loopback fault server, through real
 * shell pipes (`| sha256sum`, `| tar -x`, `| head -c`). The stream is the
 * file in order from byte 0 on every run, the file on disk stays
 * resumable, and a consumer that stops reading does not stop the download.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { shellQuote } from '../src/cli/resume-command.js';
import { MAIN, TSX_LOADER, startCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer, type Script } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const execFileAsync = promisify(execFile);
const MiB = 2 ** 20;
const SIZE = 24 * MiB;
const DATA = payload(0, SIZE - 1);
const SHA256 = createHash('sha256').update(DATA).digest('hex');
/** The command, as a shell word list, for `bash -c`. */
const BLOCKFETCH = [process.execPath, '--import', TSX_LOADER, MAIN].map(shellQuote).join(' ');

let dir: string;
const servers: FaultServer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-tee-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function serve(content: Buffer): Promise<FaultServer> {
  const server = await startFaultServer({ content });
  servers.push(server);
  return server;
}

async function freshDir(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

/** No byte at or after `offset` is sent (a request across it stalls there): the download cannot pass it. */
function stallFrom(offset: number): Script {
  return (req) => {
    const m = /^bytes=(\d+)-(\d*)/.exec(String(req.headers.range ?? ''));
    if (m === null || (m[2] !== '' && Number(m[2]) < offset)) return undefined;
    // Nothing past `offset`, whatever the request sizes: a request that
    // starts before it stalls there, one that starts after it at once.
    return { kind: 'stall', after: Math.max(0, offset - Number(m[1])) };
  };
}

/** Runs `command` in bash with pipefail; resolves with its stdout, stderr and exit code (never rejects on a failing status). */
async function bash(command: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('bash', ['-o', 'pipefail', '-c', command], { cwd, maxBuffer: 64 * MiB });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function jsonLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('-o FILE --stdout', () => {
  it('streams the exact bytes through a real pipe into sha256sum and leaves the finished file', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('sha256sum');
    const { code, stdout, stderr } = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --stdout -c 4 --block-size 1MiB --quiet | sha256sum`, cwd);
    expect(code, stderr).toBe(0);
    expect(stdout.split(/\s+/)[0]).toBe(SHA256);
    expect((await readFile(join(cwd, 'snap.bin'))).equals(DATA)).toBe(true);
    expect(existsSync(join(cwd, 'snap.bin.blockfetch'))).toBe(false);
    expect(existsSync(join(cwd, 'snap.bin.blockfetch.json'))).toBe(false);
    // Requests are planned from block 0 upwards, so the stream can start with
    // the first one: the look (block 0, whose bytes it uses), then the rest of
    // the first request.
    const starts = server.requests.map((r) => Number(/^bytes=(\d+)-/.exec(String(r.headers.range))?.[1] ?? -1));
    expect(starts.slice(0, 2)).toEqual([0, MiB]);
  });

  it('extracts an archive through a real pipe into tar -x while keeping the archive', async () => {
    const cwd = await freshDir('tar');
    await mkdir(join(cwd, 'src/sub'), { recursive: true });
    await writeFile(join(cwd, 'src/a.bin'), payload(0, 5 * MiB - 1));
    await writeFile(join(cwd, 'src/sub/b.txt'), 'hello from inside the archive\n');
    await execFileAsync('tar', ['-cf', join(cwd, 'archive.tar'), '-C', join(cwd, 'src'), '.']);
    const archive = await readFile(join(cwd, 'archive.tar'));
    const server = await serve(archive);
    await mkdir(join(cwd, 'out'));
    const { code, stderr } = await bash(`${BLOCKFETCH} ${server.url} -o snap.tar --stdout -c 4 --block-size 1MiB --quiet | tar -x -C out`, cwd);
    expect(code, stderr).toBe(0);
    expect((await readFile(join(cwd, 'out/a.bin'))).equals(payload(0, 5 * MiB - 1))).toBe(true);
    expect(await readFile(join(cwd, 'out/sub/b.txt'), 'utf8')).toBe('hello from inside the archive\n');
    expect((await readFile(join(cwd, 'snap.tar'))).equals(archive)).toBe(true);
  });

  it('run again after it finished, streams the finished file again', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('again');
    const first = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --stdout --quiet | sha256sum`, cwd);
    expect(first.code, first.stderr).toBe(0);
    const requestsBefore = server.requests.length;
    const second = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --stdout | sha256sum`, cwd);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.split(/\s+/)[0]).toBe(SHA256);
    expect(second.stderr).toMatch(/already complete/);
    // One look at the remote to know it is the same; no data fetched again.
    expect(server.requests.length - requestsBefore).toBe(1);
  });
});

describe('-o FILE --stdout, interrupted and run again', () => {
  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    it(`after ${signal} mid-way, the same command streams the whole file from byte 0 and completes it`, async () => {
      const server = await serve(DATA);
      const cwd = await freshDir(`interrupted-${signal}`);
      // The first run can fetch only the first half.
      server.script(stallFrom(SIZE / 2));
      let streamed = 0;
      const first = startCli([server.url, '-o', 'snap.bin', '--stdout', '-c', '4', '--block-size', '1MiB', '--json'], {
        cwd,
        onStdout: (chunk) => {
          streamed += chunk.length;
          // The signal: the stream reached the end of what the server will send.
          if (streamed >= SIZE / 2) first.child.kill(signal);
        },
      });
      const result = await first.done;
      if (signal === 'SIGKILL') expect(result.signal).toBe('SIGKILL');
      else {
        expect(result.code).toBe(ExitCode.INTERRUPTED);
        expect(result.stderr).toMatch(/progress saved in .*snap\.bin\.blockfetch/);
        expect(result.stderr).not.toMatch(/^\s+at /m);
      }
      expect(streamed).toBe(SIZE / 2);
      expect(existsSync(join(cwd, 'snap.bin.blockfetch'))).toBe(true);

      server.script(undefined);
      const second = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --stdout -c 4 --block-size 1MiB --json | sha256sum`, cwd);
      expect(second.code, second.stderr).toBe(0);
      // The whole file again, from byte 0: the cached half from disk, then the rest.
      expect(second.stdout.split(/\s+/)[0]).toBe(SHA256);
      const start = jsonLines(second.stderr).find((l) => l.type === 'start');
      expect(start?.resumedBytes).toBeGreaterThanOrEqual(SIZE / 2 - 4 * MiB);
      expect((await readFile(join(cwd, 'snap.bin'))).equals(DATA)).toBe(true);
      expect(existsSync(join(cwd, 'snap.bin.blockfetch'))).toBe(false);
    });
  }
});

describe('-o FILE --stdout after a cut network', () => {
  it('exits 3 with a prefix streamed; the same command streams the whole file from byte 0 and completes it', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('cut');
    // Every response for the second half is cut after 1000 bytes, and no retry is allowed.
    server.script((req) => {
      const m = /^bytes=(\d+)-/.exec(String(req.headers.range ?? ''));
      return m !== null && Number(m[1]) >= SIZE / 2 ? { kind: 'cut', after: 1000 } : undefined;
    });
    let streamed = 0;
    const first = await startCli([server.url, '-o', 'snap.bin', '--stdout', '-c', '4', '--block-size', '1MiB', '--retries', '0'], {
      cwd,
      onStdout: (chunk) => (streamed += chunk.length),
    }).done;
    expect(first.code, first.stderr).toBe(ExitCode.NETWORK);
    expect(first.stderr).toMatch(/resume with: blockfetch .* -o snap\.bin --stdout/);
    expect(streamed).toBeGreaterThan(0);
    expect(streamed).toBeLessThan(SIZE);

    server.script(undefined);
    const second = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --stdout -c 4 --block-size 1MiB --quiet | sha256sum`, cwd);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.split(/\s+/)[0]).toBe(SHA256);
    expect((await readFile(join(cwd, 'snap.bin'))).equals(DATA)).toBe(true);
  });
});

describe('-o FILE --stdout | head -c', () => {
  it('stops the download with 141, keeps the partial resumable, prints where, never a stack trace', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('head');
    // The download cannot finish before head closes the pipe.
    server.script(stallFrom(SIZE / 2));
    const { code, stdout, stderr } = await bash(
      `${BLOCKFETCH} ${server.url} -o snap.bin --stdout -c 4 --block-size 1MiB | head -c 1000 | od -An -tx1 | wc -l; exit \${PIPESTATUS[0]}`,
      cwd,
    );
    expect(code, stderr).toBe(ExitCode.STDOUT_CLOSED);
    expect(Number(stdout.trim())).toBeGreaterThan(0);
    expect(stderr).toMatch(/stdout was closed by its reader; the download stopped, progress saved in .*snap\.bin\.blockfetch/);
    expect(stderr).toMatch(/resume with: blockfetch .* -o snap\.bin --stdout/);
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(join(cwd, 'snap.bin.blockfetch'))).toBe(true);

    // Resumable: the same download without --stdout finishes it from what is on disk.
    server.script(undefined);
    const rest = await bash(`${BLOCKFETCH} ${server.url} -o snap.bin --json`, cwd);
    expect(rest.code, rest.stderr).toBe(0);
    expect(jsonLines(rest.stdout).find((l) => l.type === 'start')?.resumedBytes).toBeGreaterThan(0);
    expect((await readFile(join(cwd, 'snap.bin'))).equals(DATA)).toBe(true);
  });
});

describe('-o FILE --stdout with a consumer that stops reading', () => {
  it('the download completes while the consumer has read only part; the rename waits for it', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('slow');
    const hash = createHash('sha256');
    let read = 0;
    const running = startCli([server.url, '-o', 'snap.bin', '--stdout', '-c', '4', '--block-size', '1MiB', '--json'], {
      cwd,
      onStdout: (chunk) => {
        hash.update(chunk);
        read += chunk.length;
      },
    });
    // The consumer takes nothing for now: only the pipe's buffer fills.
    running.child.stdout?.pause();
    // The signal: the downloader says the whole file is on disk and stdout is behind.
    let wait: Record<string, unknown> | undefined;
    await new Promise<void>((resolve, reject) => {
      const onData = (): void => {
        wait = jsonLines(running.stderr()).find((l) => l.type === 'note' && /stdout's reader has taken/.test(String(l.message)));
        if (wait !== undefined) {
          running.child.stderr?.off('data', onData);
          resolve();
        }
      };
      running.child.stderr?.on('data', onData);
      running.child.once('exit', () => reject(new Error(`exited before the note: ${running.stderr()}`)));
    });
    expect(read).toBeLessThan(SIZE / 4);
    // Every byte was served already: the server answered every range of the file.
    const served = new Set<number>();
    for (const r of server.requests) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range));
      if (m === null) continue;
      for (let b = Math.floor(Number(m[1]) / MiB); b <= Math.floor(Number(m[2]) / MiB); b++) served.add(b);
    }
    expect(served.size).toBe(SIZE / MiB);
    // The finished file is not renamed into place until the stream is done.
    expect(existsSync(join(cwd, 'snap.bin'))).toBe(false);
    running.child.stdout?.resume();
    const result = await running.done;
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(read).toBe(SIZE);
    expect(hash.digest('hex')).toBe(SHA256);
    expect((await readFile(join(cwd, 'snap.bin'))).equals(DATA)).toBe(true);
  });
});

describe('-o FILE --stdout with a wrong digest', () => {
  it('exits 5 after the bytes went out, says so, and keeps the partial file', async () => {
    const server = await serve(DATA);
    const cwd = await freshDir('digest');
    let streamed = 0;
    const result = await startCli([server.url, '-o', 'snap.bin', '--stdout', '--sha256', 'ab'.repeat(32)], {
      cwd,
      onStdout: (chunk) => (streamed += chunk.length),
    }).done;
    expect(result.code).toBe(ExitCode.INTEGRITY);
    expect(streamed).toBeGreaterThan(0);
    expect(result.stderr).toMatch(/already written to stdout failed the digest check/);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(join(cwd, 'snap.bin'))).toBe(false);
    expect(existsSync(join(cwd, 'snap.bin.blockfetch'))).toBe(true);
  });
});
