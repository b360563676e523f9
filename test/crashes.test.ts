/**
 * Issue 11 "Crashes": inputs that used to kill the process with a stack
 * trace (exit 1) instead of a typed error with its exit code.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 4 * MiB;
const DATA = payload(0, SIZE - 1);

let dir: string;
const servers: FaultServer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-crashes-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('a deeply nested value in an index (issue 11 item 13)', () => {
  it('is a corrupt index (exit 8) for a download and for inspect, and --restart starts over', async () => {
    const server = await startFaultServer({ content: DATA });
    servers.push(server);
    const cwd = await mkdtemp(join(dir, 'deep-'));
    // A partial download: discovery succeeds, every later request fails.
    server.script((req) => (req.index >= 1 ? { kind: 'status', status: 503 } : undefined));
    const args = [server.url, '-o', 'deep.bin', '--block-size', '1MiB', '-c', '1', '--retries', '0', '--quiet'];
    const failed = await runCli(args, { cwd });
    expect(failed.code, failed.stderr).toBe(ExitCode.NETWORK);
    server.script(undefined);

    // A value nested a million levels deep: the checksum writer recursed
    // once per level and overflowed the stack before it compared anything.
    const indexPath = join(cwd, 'deep.bin.blockfetch.json');
    const index = await readFile(indexPath, 'utf8');
    const deep = index.replace('{', `{"note":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)},`);
    await writeFile(indexPath, deep);

    const resumed = await runCli(args, { cwd });
    expect(resumed.code, resumed.stderr).toBe(ExitCode.INDEX);
    expect(resumed.stderr).toMatch(/^blockfetch: .*index file is corrupt: it nests arrays or objects more than \d+ levels deep/m);
    expect(resumed.stderr).not.toMatch(/Maximum call stack|^\s+at /m);
    expect(await readFile(indexPath, 'utf8')).toBe(deep);

    const inspected = await runCli(['inspect', 'deep.bin'], { cwd });
    expect(inspected.code, inspected.stderr).toBe(ExitCode.INDEX);
    expect(inspected.stderr).toMatch(/index file is corrupt/);

    const restarted = await runCli([...args, '--restart'], { cwd });
    expect(restarted.code, restarted.stderr).toBe(ExitCode.SUCCESS);
    expect(firstMisplaced(await readFile(join(cwd, 'deep.bin')))).toBe(-1);
    expect(await readdir(cwd)).toEqual(['deep.bin']);
  });
});

/**
 * A server that answers every request with `Connection: close` and ends the
 * socket after the body, or, where `cutAt(n)` gives a fraction for the n-th
 * request, after that fraction of it.
 */
async function closingServer(data: Buffer, cutAt?: (request: number) => number | undefined): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const cut = cutAt?.(requests);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const to = m && m[2] !== '' ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
    const headers: Record<string, string> = {
      'content-length': String(to - from + 1),
      'accept-ranges': 'bytes',
      etag: '"one"',
      connection: 'close',
    };
    if (m) headers['content-range'] = `bytes ${from}-${to}/${data.length}`;
    res.writeHead(m ? 206 : 200, headers);
    const body = data.subarray(from, to + 1);
    // A cut: part of the body, then FIN, with the parser paused by the throttle.
    if (cut !== undefined && body.length > 1) res.socket?.end(body.subarray(0, Math.max(1, Math.floor(body.length * cut))));
    else res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/f`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('--rate against a server that closes the connection after each body (issue 11 item 12)', () => {
  it('downloads the file instead of dying on undici 7 assert(!this.paused)', async () => {
    const size = 16 * MiB;
    const data = payload(0, size - 1);
    const server = await closingServer(data);
    try {
      const cwd = await mkdtemp(join(dir, 'close-'));
      // Throttled, the body is read slower than it arrives: undici pauses its
      // parser, and the server's FIN then reached parser.finish() while paused.
      const run = await runCli([server.url, '-o', 'f.bin', '--rate', '16M', '--quiet'], { cwd });
      expect(run.stderr).not.toMatch(/AssertionError|^\s+at /m);
      expect(run.code, run.stderr).toBe(ExitCode.SUCCESS);
      expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
      expect(server.requests()).toBeGreaterThanOrEqual(2);
    } finally {
      await server.close();
    }
  });
});

describe('--rate and bodies cut part way by a FIN (issue 11 item 12, the cut case)', () => {
  it('every cut is a short body, retried; never the assert', async () => {
    const size = 16 * MiB;
    const data = payload(0, size - 1);
    // Every second response is cut at 20 % to 85 % of its body.
    const server = await closingServer(data, (n) => (n % 2 === 0 ? 0.2 + ((n * 0.13) % 0.65) : undefined));
    try {
      const cwd = await mkdtemp(join(dir, 'close-cut-'));
      const run = await runCli([server.url, '-o', 'f.bin', '--rate', '16M', '--block-size', '1MiB', '--quiet'], { cwd });
      expect(run.stderr).not.toMatch(/AssertionError|^\s+at /m);
      expect(run.code, run.stderr).toBe(ExitCode.SUCCESS);
      expect(firstMisplaced(await readFile(join(cwd, 'f.bin')))).toBe(-1);
      expect(server.requests()).toBeGreaterThan(4);
    } finally {
      await server.close();
    }
  });
});
