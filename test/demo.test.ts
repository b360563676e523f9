/**
 * `npm start` (src/cli/demo.ts) end to end at a small size: it must finish,
 * verify the file, and leave nothing behind, also when it is stopped.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../src/cli/demo.ts', import.meta.url));

/**
 * The temp dir this run of the demo used, from its "temp dir:" line. Not a
 * before/after listing of every blockfetch-demo-* dir in the temp dir: a
 * demo running at the same time (another checkout's suite) would show there.
 */
function tempDirOf(out: string): string {
  const match = /^ {2}temp dir: (\S+) \(removed at the end\)$/m.exec(out);
  expect(match, out).not.toBeNull();
  const dir = (match as RegExpExecArray)[1] as string;
  expect(dirname(dir)).toBe(tmpdir());
  expect(basename(dir)).toMatch(/^blockfetch-demo-/);
  return dir;
}

/**
 * Runs the demo; with `stopOn`, sends SIGTERM once a line of its stdout
 * matches it. A signal rather than a fixed delay: under load the demo may
 * not even have installed its handlers after a second and a half (the
 * process then dies of the signal, exit code null instead of 143).
 */
function runDemo(size: number, stopOn?: RegExp): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', DEMO], {
      env: { ...process.env, BLOCKFETCH_DEMO_SIZE: String(size) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stdout = '';
    let stopped = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      stdout += d.toString();
      if (stopOn !== undefined && !stopped && stdout.split('\n').some((line) => stopOn.test(line))) {
        stopped = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('npm start (the demo)', () => {
  it('downloads, interrupts, resumes, verifies, and removes its temp dir', async () => {
    const { code, out } = await runDemo(32 * 2 ** 20);
    expect(code, out).toBe(0);
    expect(out).toContain('sha256 OK');
    expect(out).toMatch(/sha256 verified/);
    expect(existsSync(tempDirOf(out)), out).toBe(false);
  });

  it('cleans up when stopped with SIGTERM', async () => {
    // The demo prints "step 1:" just before it spawns the first download:
    // its signal handlers are installed and a child is about to be running.
    const { code, out } = await runDemo(512 * 2 ** 20, /^step 1: /);
    expect(out).toMatch(/^step 1: /m);
    expect(code, out).toBe(143);
    expect(existsSync(tempDirOf(out)), out).toBe(false);
  });
});
