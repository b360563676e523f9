/**
 * Hostile remotes (issue 11, items 7 and 8): headers the user added never
 * follow a redirect to another origin, and no secret the user gave (a header
 * value, a signed URL's query) is printed back or stored: not in the resume
 * command, the `interrupted` JSON line, the index, nor `inspect`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { downloadFile } from '../src/download-file.js';
import { redactUrl } from '../src/errors.js';
import { runCli, startCli, waitFor } from './cli-helpers.js';
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

describe('redaction of everything secret the user gave (item 8)', () => {
  /**
   * Runs the real CLI on `url` with `args`, interrupts it with SIGINT once its
   * index exists, and returns everything it printed or stored: the resume
   * command and the `interrupted` JSON line, the raw index, and `inspect`
   * (human and --json) of it.
   */
  async function interruptAndCollect(name: string, url: string, args: readonly string[]): Promise<{ resume: string; everything: string }> {
    const cwd = await sub(name);
    const running = startCli([url, '-o', 'f.bin', ...args, '--json', '--rate', '256KiB/s', '--block-size', '256KiB', '-c', '1'], { cwd });
    await waitFor(() => existsSync(join(cwd, 'f.bin.blockfetch.json')));
    running.child.kill('SIGINT');
    const stopped = await running.done;
    expect(stopped.code, stopped.stderr).toBe(ExitCode.INTERRUPTED);
    const lines = stopped.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const interrupted = lines.find((l) => l.type === 'interrupted');
    expect(interrupted).toBeDefined();
    const resume = String(interrupted?.resume);
    expect(stopped.stderr).toContain(`resume with: ${resume}`);
    const index = await readFile(join(cwd, 'f.bin.blockfetch.json'), 'utf8');
    const human = await runCli(['inspect', 'f.bin'], { cwd });
    const json = await runCli(['inspect', 'f.bin', '--json'], { cwd });
    expect(human.code, human.stderr).toBe(ExitCode.SUCCESS);
    expect(json.code, json.stderr).toBe(ExitCode.SUCCESS);
    const everything = [stopped.stdout.toString('utf8'), stopped.stderr, index, human.stdout.toString('utf8'), json.stdout.toString('utf8')].join('\n');
    return { resume, everything };
  }

  it('-HCookie:SECRET (attached), X-Signature, any other -H, sessionid, code, pass: in the resume command, the JSON line, the index and inspect', async () => {
    const server = await serve({ content: DATA });
    const url = `${server.url}?sessionid=SESS1&code=CODE1&pass=PASS1&lang=en`;
    const { resume, everything } = await interruptAndCollect('redact-headers', url, [
      '-HCookie:SECRET1',
      '-H',
      'X-Signature: SIG1',
      '--header=X-Plain: PLAIN1',
      '--header',
      'X-Long-Form: LONG1',
      '-fHX-Grouped:GROUP1',
    ]);
    for (const secret of ['SECRET1', 'SIG1', 'PLAIN1', 'LONG1', 'GROUP1', 'SESS1', 'CODE1', 'PASS1']) expect(everything).not.toContain(secret);
    // The server did get them: redaction is of what is printed and stored only.
    expect(server.requests[0]?.headers.cookie).toBe('SECRET1');
    expect(server.requests[0]?.url).toContain('sessionid=SESS1');
    for (const header of ['Cookie', 'X-Signature', 'X-Plain', 'X-Long-Form', 'X-Grouped']) expect(resume).toContain(`-H '${header}: REDACTED'`);
    expect(resume).toContain(' -f ');
    expect(resume).toContain('sessionid=REDACTED&code=REDACTED&pass=REDACTED&lang=en');
  });

  it('a signed URL: every query value is redacted, whatever its name', async () => {
    const server = await serve({ content: DATA });
    const url = `${server.url}?file=FILE2&X-Amz-Credential=CRED2&X-Amz-Signature=SIGN2&v=VER2`;
    const { resume, everything } = await interruptAndCollect('redact-signed', url, []);
    for (const secret of ['FILE2', 'CRED2', 'SIGN2', 'VER2']) expect(everything).not.toContain(secret);
    expect(resume).toContain('file=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&v=REDACTED');
  });

  it('redactUrl: user info always, credential-like names in any URL, every value of a signed one', () => {
    expect(redactUrl('https://u:p@h/f?a=1')).toBe('https://h/f?a=1');
    expect(redactUrl('https://h/f?access_token=t&x=1')).toBe('https://h/f?access_token=REDACTED&x=1');
    expect(redactUrl('https://h/f?sig=s&x=1&x=2')).toBe('https://h/f?sig=REDACTED&x=REDACTED');
    expect(redactUrl('https://h/f?se=2030-01-01&sp=r&sv=2020')).toBe('https://h/f?se=REDACTED&sp=REDACTED&sv=REDACTED');
  });
});
