/**
 * Issue 11 "Hangs": servers that keep a download alive without letting it
 * finish. Against the scripted loopback fault server, with small timeouts
 * so each case runs in seconds; the assertions count attempts, never time.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../src/cli/args.js';
import { ExitCode } from '../src/cli/exit-codes.js';
import { AttemptEngine, blockKey } from '../src/download/attempts.js';
import { runCli } from './cli-helpers.js';
import { RetriesExhaustedError } from '../src/errors.js';
import { HttpReader } from '../src/http/http-reader.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 4 * MiB;
const DATA = payload(0, SIZE - 1);
const servers: FaultServer[] = [];
const readers: HttpReader[] = [];

afterAll(async () => {
  await Promise.all(readers.map((r) => r.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('a server that sends 1,000 bytes of each response and then stalls (issue 11 item 10)', () => {
  it('spends the attempts of the range instead of resetting them on every 1,000 bytes', async () => {
    const server = await startFaultServer({ content: DATA });
    servers.push(server);
    // The look is answered normally; every later response stalls after 1,000 bytes.
    server.script((req) => (req.index >= 1 ? { kind: 'stall', after: 1000 } : undefined));
    const reader = new HttpReader({ url: server.url, idleTimeoutMs: 150, requestTimeoutMs: 150 });
    readers.push(reader);
    const engine = new AttemptEngine({ reader, retry: { attemptsPerBlock: 3, totalRetries: 12, baseDelayMs: 1, maxDelayMs: 1 } });
    const signal = new AbortController().signal;
    const info = await engine.look(signal);
    // Use up the look's kept body (a read starting in it would get its
    // bytes first), so every attempt below is a request of its own.
    for await (const chunk of await reader.getReader(0, 0, signal)) expect(chunk.length).toBe(1);
    const received: number[] = [];
    const error = await engine
      .fetch(blockKey(0), { from: 0, to: info.contentLength - 1 }, { write: (chunk) => void received.push(chunk.byteLength), end: () => undefined }, signal)
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).message).toMatch(/gave up after 3 attempts/);
    // Three attempts of 1,000 bytes each: the 1,000 bytes never reset the count.
    expect(engine.errors).toBe(3);
    expect(received.reduce((a, b) => a + b, 0)).toBe(3000);
    const ranged = server.requests.filter((r) => r.headers.range !== undefined && r.index >= 1);
    expect(ranged.map((r) => r.headers.range)).toEqual([`bytes=0-${SIZE - 1}`, `bytes=1000-${SIZE - 1}`, `bytes=2000-${SIZE - 1}`]);
  });
});

/** A server whose bodies trickle: one byte per `everyMs`, for as long as the client listens. */
async function trickleServer(size: number, everyMs: number): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const timers = new Set<ReturnType<typeof setInterval>>();
  const server: Server = createServer((req, res: ServerResponse) => {
    requests++;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const to = m && m[2] !== '' ? Math.min(Number(m[2]), size - 1) : size - 1;
    const headers: Record<string, string> = { 'content-length': String(to - from + 1), 'accept-ranges': 'bytes', etag: '"t"' };
    if (m) headers['content-range'] = `bytes ${from}-${to}/${size}`;
    res.writeHead(m ? 206 : 200, headers);
    let at = from;
    const timer = setInterval(() => {
      if (res.destroyed || at > to) {
        clearInterval(timer);
        timers.delete(timer);
        return;
      }
      res.write(DATA.subarray(at, at + 1));
      at++;
    }, everyMs);
    timers.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      timers.delete(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/f`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('a body that trickles (issue 11 item 11)', () => {
  it('ends each attempt below the lowest speed as a retryable timeout, then gives up with the attempts spent', async () => {
    const server = await trickleServer(SIZE, 10); // about 100 bytes/s, never stalled long enough for the idle timeout
    try {
      const reader = new HttpReader({ url: server.url, idleTimeoutMs: 5_000, requestTimeoutMs: 5_000 });
      readers.push(reader);
      const engine = new AttemptEngine({
        reader,
        retry: { attemptsPerBlock: 2, baseDelayMs: 1, maxDelayMs: 1, lowestSpeedBytesPerSecond: 1000, lowestSpeedTimeMs: 300 },
      });
      const signal = new AbortController().signal;
      const info = await engine.look(signal);
      const error = await engine
        .fetch(blockKey(0), { from: 0, to: info.contentLength - 1 }, { write: () => undefined, end: () => undefined }, signal)
        .catch((err: unknown) => err);
      expect(error).toBeInstanceOf(RetriesExhaustedError);
      expect((error as RetriesExhaustedError).cause).toMatchObject({ code: 'BLOCKFETCH_TIMEOUT', message: expect.stringMatching(/below the lowest speed of 1000 bytes\/s/) });
      expect(engine.errors).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('is off with lowestSpeedBytesPerSecond 0, and a bad value is refused', () => {
    const reader = new HttpReader({ url: 'http://127.0.0.1:9/f' });
    readers.push(reader);
    expect(() => new AttemptEngine({ reader, retry: { lowestSpeedBytesPerSecond: 0 } })).not.toThrow();
    expect(() => new AttemptEngine({ reader, retry: { lowestSpeedBytesPerSecond: -1 } })).toThrow(/lowestSpeedBytesPerSecond/);
    expect(() => new AttemptEngine({ reader, retry: { lowestSpeedTimeMs: 0 } })).toThrow(/lowestSpeedTimeMs/);
  });
});

describe('--speed-limit / --speed-time', () => {
  it('parse, with 1 KiB/s over 60 s by default and 0 for off', () => {
    const url = 'http://127.0.0.1:9/f';
    expect(parseCommandLine([url])).toMatchObject({ speedLimitBytesPerSecond: 1024, speedTimeMs: 60_000 });
    expect(parseCommandLine([url, '--speed-limit', '10KiB/s', '--speed-time', '5s'])).toMatchObject({
      speedLimitBytesPerSecond: 10_240,
      speedTimeMs: 5_000,
    });
    expect(parseCommandLine([url, '--speed-limit', '0'])).toMatchObject({ speedLimitBytesPerSecond: 0 });
  });

  it('end a trickling download from the CLI with the network exit code and a one-line error', async () => {
    const server = await trickleServer(SIZE, 10);
    const cwd = await mkdtemp(join(tmpdir(), 'blockfetch-hangs-'));
    try {
      const run = await runCli([server.url, '-o', 't.bin', '--speed-limit', '1000', '--speed-time', '300ms', '--retries', '1', '-c', '1', '--quiet'], { cwd });
      expect(run.code, run.stderr).toBe(ExitCode.NETWORK);
      expect(run.stderr).toMatch(/below the lowest speed of 1000 bytes\/s/);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    } finally {
      await server.close();
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
