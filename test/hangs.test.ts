/**
 * Issue 11 "Hangs": servers that keep a download alive without letting it
 * finish. Against the scripted loopback fault server, with small timeouts
 * so each case runs in seconds; the assertions count attempts, never time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AttemptEngine, blockKey } from '../src/download/attempts.js';
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
