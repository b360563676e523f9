/**
 * Hostile remotes (issue 11, items 7 and 8): headers the user added never
 * follow a redirect to another origin, and no secret the user gave (a header
 * value, a signed URL's query) is printed back or stored: not in the resume
 * command, the `interrupted` JSON line, the index, nor `inspect`.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { downloadFile } from '../src/download-file.js';
import { runCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 4 * MiB;
const DATA = payload(0, SIZE - 1);

let root: string;
const servers: FaultServer[] = [];
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'blockfetch-security-http-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(root, { recursive: true, force: true });
});

async function serve(options: Parameters<typeof startFaultServer>[0]): Promise<FaultServer> {
  const server = await startFaultServer(options);
  servers.push(server);
  return server;
}

async function sub(name: string): Promise<string> {
  const d = join(root, name);
  await mkdir(d, { recursive: true });
  return d;
}

/** Two loopback origins (another port is another origin): `front` redirects every request to `target`. */
async function twoOrigins(): Promise<{ front: FaultServer; target: FaultServer }> {
  const target = await serve({ content: DATA });
  const front = await serve({ content: DATA });
  front.script(() => ({ kind: 'redirect', location: target.url, status: 307 }));
  expect(new URL(front.url).origin).not.toBe(new URL(target.url).origin);
  return { front, target };
}

describe('user headers and cross-origin redirects (item 7)', () => {
  it('downloadFile: every added header stays with its origin; User-Agent and Accept may follow', async () => {
    const { front, target } = await twoOrigins();
    const dir = await sub('redirect-lib');
    await downloadFile(front.url, join(dir, 'f.bin'), {
      headers: { 'x-api-key': 'k3y', 'x-signature': 'sig', 'x-custom-session': 's', 'user-agent': 'me/1', accept: 'application/octet-stream' },
    });
    expect((await readFile(join(dir, 'f.bin'))).equals(DATA)).toBe(true);
    expect(front.requests.length).toBeGreaterThan(0);
    for (const req of front.requests) expect(req.headers['x-api-key']).toBe('k3y');
    expect(target.requests.length).toBeGreaterThan(0);
    for (const req of target.requests) {
      expect(req.headers['x-api-key']).toBeUndefined();
      expect(req.headers['x-signature']).toBeUndefined();
      expect(req.headers['x-custom-session']).toBeUndefined();
      expect(req.headers['user-agent']).toBe('me/1');
      expect(req.headers.accept).toBe('application/octet-stream');
      expect(req.headers['accept-encoding']).toBe('identity');
    }
  });

  it('the CLI: -H X-Api-Key never reaches the second origin', async () => {
    const { front, target } = await twoOrigins();
    const dir = await sub('redirect-cli');
    const result = await runCli([front.url, '-o', 'f.bin', '-H', 'X-Api-Key: k3y', '-HX-Other:v', '--quiet'], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(front.requests.some((r) => r.headers['x-api-key'] === 'k3y' && r.headers['x-other'] === 'v')).toBe(true);
    expect(target.requests.length).toBeGreaterThan(0);
    for (const req of target.requests) {
      expect(req.headers['x-api-key']).toBeUndefined();
      expect(req.headers['x-other']).toBeUndefined();
    }
  });
});
