/**
 * The progress display on a real terminal (issue 14): the CLI runs on a
 * pseudo-terminal of a chosen width (test/helpers/pty-run.py, Python's
 * standard `pty` support: nothing native to build, unlike node-pty), and
 * what it printed is replayed on a small screen model to see what a person
 * would see at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MAIN, TSX_LOADER, waitFor } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const PTY_RUN = fileURLToPath(new URL('./helpers/pty-run.py', import.meta.url));
const CRASH = fileURLToPath(new URL('./helpers/crash-after-bar.mjs', import.meta.url));
const HIDE = '\u001b[?25l';
const SHOW = '\u001b[?25h';

/** The lines a terminal shows after `output`: CR, LF, erase-line, erase-to-end; other sequences ignored. */
function screen(output: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  for (let i = 0; i < output.length; i++) {
    const ch = output[i] ?? '';
    if (ch === '\u001b' && output[i + 1] === '[') {
      const m = /^\u001b\[([?0-9;]*)([A-Za-z])/.exec(output.slice(i));
      if (m === null) continue;
      i += m[0].length - 1;
      if (m[2] === 'K') lines[row] = (lines[row] ?? '').slice(0, m[1] === '2' ? 0 : col);
      continue;
    }
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      lines[row] ??= '';
    } else {
      const line = (lines[row] ?? '').padEnd(col);
      lines[row] = line.slice(0, col) + ch + line.slice(col + 1);
      col++;
    }
  }
  return lines.filter((l, i) => l !== '' || i < lines.length - 1);
}

interface PtyRun {
  readonly output: () => string;
  readonly done: Promise<number | null>;
  readonly kill: (signal: NodeJS.Signals) => void;
}

function runOnPty(columns: number, args: readonly string[], cwd: string, preload: readonly string[] = []): PtyRun {
  const imports = [TSX_LOADER, ...preload].flatMap((m) => ['--import', m]);
  const child = spawn('python3', [PTY_RUN, String(columns), '24', '--', process.execPath, ...imports, MAIN, ...args], {
    cwd,
    env: { ...process.env, NODE_DEBUG: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  const done = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  return { output: () => out, done, kill: (signal) => child.kill(signal) };
}

const SIZE = 4 * 2 ** 20;
const presignedQuery = `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${'A'.repeat(150)}&X-Amz-Signature=${'f'.repeat(64)}`;

describe('the display under a pseudo-terminal', () => {
  let server: FaultServer;
  let dir: string;
  beforeAll(async () => {
    server = await startFaultServer({ content: payload(0, SIZE - 1) });
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-pty-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('ends with a clean done line, a short header for a presigned URL, and the cursor shown', async () => {
    server.script(undefined);
    const run = runOnPty(70, [server.url + presignedQuery, '-o', 'done.bin', '-c', '1'], dir);
    expect(await run.done).toBe(0);
    const text = run.output();
    const lines = screen(text);
    const header = lines[0] ?? '';
    expect(header).toContain('-> ');
    expect(header).toContain('1 connection');
    expect(header).not.toContain('connections');
    expect(header).not.toContain('X-Amz');
    expect(header.length).toBeLessThanOrEqual(70);
    const last = lines.at(-1) ?? '';
    expect(last).toMatch(/^done: .*done\.bin \(4\.00 MiB; fetched 4\.00 MiB in .*\)$/);
    expect(last).not.toMatch(/ETA|conn/);
    expect(text.lastIndexOf(SHOW)).toBeGreaterThan(text.lastIndexOf(HIDE));
  });

  it('keeps the ETA and the connection count on a 70-column terminal, and gives the cursor back on Ctrl-C', async () => {
    // The second request stalls after a few bytes: the bar stays up until we interrupt.
    server.script((req) => (req.index >= 2 ? { kind: 'stall', after: 4096 } : undefined));
    const run = runOnPty(70, [server.url, '-o', 'stall.bin', '-c', '2', '--request-size', '1M', '--block-size', '1M'], dir);
    await waitFor(() => /ETA +\S+ \| \d+ conn/.test(screen(run.output()).at(-1) ?? ''));
    const bar = screen(run.output()).at(-1) ?? '';
    expect(bar.length).toBeLessThanOrEqual(69);
    expect(bar).toMatch(/%/);
    expect(bar).not.toMatch(/\d+ms/);
    run.kill('SIGINT');
    expect(await run.done).toBe(130);
    const text = run.output();
    expect(text.lastIndexOf(SHOW)).toBeGreaterThan(text.lastIndexOf(HIDE));
    expect(screen(text).join('\n')).toContain('interrupted by SIGINT');
  });

  it('gives the cursor back after an uncaught exception', async () => {
    server.script((req) => (req.index >= 2 ? { kind: 'stall', after: 4096 } : undefined));
    const run = runOnPty(80, [server.url, '-o', 'crash.bin', '-c', '1', '--block-size', '1M'], dir, [CRASH]);
    expect(await run.done).toBe(1);
    const text = run.output();
    expect(text).toContain('a scripted crash while the bar is up');
    expect(text).toContain(HIDE);
    expect(text.lastIndexOf(SHOW)).toBeGreaterThan(text.lastIndexOf(HIDE));
  });
});
