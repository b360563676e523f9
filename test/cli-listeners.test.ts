/**
 * main.ts no longer raises Node's listener limit for every emitter and
 * signal (it set 1100, which would hide any real leak): a download at
 * high concurrency, with retries and an interrupt, must run without a
 * single MaxListenersExceededWarning at Node's default limit of 10.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { runCli, startCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const SIZE = 8 * 2 ** 20;
const DATA = payload(0, SIZE - 1);
const SMALL = ['--block-size', '64KiB', '--request-size', '64KiB'];
const LEAK = /MaxListenersExceededWarning|memory leak/;

let dir: string;
let server: FaultServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-listeners-'));
  server = await startFaultServer({ content: DATA });
  // Faults on a few requests in every 20: retries (with backoff sleeps, each
  // listening on the run's signal) while 64 requests are open.
  server.script((req) => {
    if (req.index === 0) return undefined;
    const k = req.index % 20;
    if (k === 1) return { kind: 'cut', after: 1000 };
    if (k === 7) return { kind: 'reset' };
    if (k === 13) return { kind: 'status', status: 503, headers: { 'retry-after': '0' } };
    return undefined;
  });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const env = { NODE_OPTIONS: '--trace-warnings' };

describe('listeners at -c 64 (no global setMaxListeners)', () => {
  it('a download to a file with retries warns of no leak', async () => {
    const out = join(dir, 'file.bin');
    const run = await runCli([server.url, '-o', out, '-c', '64', ...SMALL, '--retries', '50', '--json'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(ExitCode.SUCCESS);
    expect(run.stderr).not.toMatch(LEAK);
    expect(run.stdout.toString()).toMatch(/"type":"retry"/);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(createHash('sha256').update(DATA).digest('hex'));
  });

  it('a stream to stdout with retries warns of no leak', async () => {
    const run = await runCli([server.url, '--stdout', '-c', '64', ...SMALL, '--retries', '50'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(ExitCode.SUCCESS);
    expect(run.stderr).not.toMatch(LEAK);
    expect(run.stdout.equals(DATA)).toBe(true);
  });

  it('an interrupt with 64 requests open warns of no leak', async () => {
    const out = join(dir, 'interrupted.bin');
    // A rate limit keeps it running long enough to be interrupted mid-way;
    // SIGINT goes out on the first progress line, not after a fixed delay.
    let sent = false;
    const cli = startCli([server.url, '-o', out, '-c', '64', ...SMALL, '--rate', '2MiB/s', '--json'], {
      cwd: dir,
      env,
      onStdout: (chunk) => {
        if (!sent && chunk.toString().includes('"type":"progress"')) {
          sent = true;
          cli.child.kill('SIGINT');
        }
      },
    });
    const run = await cli.done;
    expect(sent, run.stderr).toBe(true);
    expect(run.code, run.stderr).toBe(ExitCode.INTERRUPTED);
    expect(run.stderr).not.toMatch(LEAK);
  });
});
