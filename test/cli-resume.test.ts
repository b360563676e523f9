/**
 * Resumption through the real command: kill -9 at random moments and run
 * the same command again until it finishes (what is recorded only grows,
 * and is always correct), against the fault server; and the same command
 * against a real nginx: download, SIGTERM + resume, and --stdout.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { inspectDownload } from '../src/cli/inspect.js';
import { runCli, startCli, waitFor } from './cli-helpers.js';
import { startFaultServer } from './helpers/fault-server.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 2 ** 20;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-cli-resume-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Checks that every block the index records as done holds the right bytes in the partial file. */
async function expectRecordedBlocksCorrect(target: string): Promise<number> {
  const report = await inspectDownload(target);
  const file = await open(`${target}.blockfetch`, 'r');
  try {
    let at = 0;
    const check = async (from: number, to: number): Promise<void> => {
      if (to < from) return;
      const buf = Buffer.alloc(to - from + 1);
      await file.read(buf, 0, buf.length, from);
      expect(firstMisplaced(buf, from), `bytes ${from}-${to} recorded as done`).toBe(-1);
    };
    for (const run of report.outstanding) {
      await check(at, run.from - 1);
      at = run.to + 1;
    }
    await check(at, report.size - 1);
  } finally {
    await file.close();
  }
  return report.doneBytes;
}

/**
 * Runs `blockfetch URL -o name` (rate-limited so kills land mid-way), kills
 * it with SIGKILL at random points up to three times, checks after each kill
 * that every block the index records holds the right bytes and that the
 * recorded bytes only grow, then runs it to the end: byte-identical.
 */
async function killAndResumeUntilDone(url: string, name: string, size: number): Promise<void> {
  const target = join(dir, name);
  // Not --quiet: a failure shows what the run said.
  const args = [url, '-o', target, '--block-size', '1MiB', '-c', '4', '--rate', '6MiB/s'];
  let recorded = 0;
  const kills: string[] = [];
  let finished = false;
  for (let round = 0; round < 3; round++) {
    const indexPath = `${target}.blockfetch.json`;
    const before = existsSync(indexPath) ? (await stat(indexPath)).mtimeMs : 0;
    const running = startCli(args, { cwd: dir });
    if (round === 0) {
      // Truly anywhere: during start-up, creating the files, or downloading.
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 2500));
    } else {
      // After a kill -9 the next run first waits for the dead run's lock
      // to go stale; kill it once it has saved progress of its own.
      let exited = false;
      void running.done.then(() => {
        exited = true;
      });
      await waitFor(async () => exited || (existsSync(indexPath) && (await stat(indexPath)).mtimeMs > before), 30_000).catch(
        (err: unknown) => {
          throw new Error(`round ${round}: ${String(err)}; its stderr so far: ${running.stderr()}`);
        },
      );
      if (exited) {
        const early = await running.done;
        // It may legitimately have finished; anything else is a failure to explain.
        expect(early.code, `round ${round} exited on its own: ${early.stderr}`).toBe(ExitCode.SUCCESS);
        finished = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 1500));
    }
    running.child.kill('SIGKILL');
    const result = await running.done;
    if (result.code === ExitCode.SUCCESS) {
      finished = true; // before the kill landed: nothing more to resume
      break;
    }
    expect(result.signal).toBe('SIGKILL');
    if (existsSync(indexPath) && existsSync(`${target}.blockfetch`)) {
      const now = await expectRecordedBlocksCorrect(target);
      expect(now).toBeGreaterThanOrEqual(recorded);
      kills.push(`${((now * 100) / size).toFixed(0)}%`);
      recorded = now;
    } else {
      kills.push('before the files existed');
    }
  }
  // The final run: no rate limit, must finish.
  if (!finished) {
    const last = await runCli(args.filter((a, i) => a !== '--rate' && args[i - 1] !== '--rate'), { cwd: dir });
    expect(last.code, `${last.stderr}\nkilled at: ${kills.join(', ')}`).toBe(ExitCode.SUCCESS);
  }
  const data = await readFile(target);
  expect(data.length).toBe(size);
  expect(firstMisplaced(data)).toBe(-1);
  expect((await readdir(dir)).filter((f) => f.startsWith(name))).toEqual([name]);
}

describe('kill -9 at random points', () => {
  it('resumes with the same command until done: recorded bytes only grow, and the result is byte-identical', async () => {
    const size = 24 * MiB;
    const server = await startFaultServer({ content: payload(0, size - 1) });
    try {
      await killAndResumeUntilDone(server.url, 'killed.bin', size);
    } finally {
      await server.close();
    }
  });

  it('the same against nginx (its own Range, ETag and If-Match handling)', async () => {
    const size = 24 * MiB;
    const nginx = await startNginx({ files: { 'killed.bin': payload(0, size - 1) } });
    try {
      await killAndResumeUntilDone(nginx.url('killed.bin'), 'killed-nginx.bin', size);
    } finally {
      await nginx.stop();
    }
  });
});

describe('against nginx', () => {
  const size = 16 * MiB;
  const data = payload(0, size - 1);
  const sha256 = createHash('sha256').update(data).digest('hex');
  let nginx: NginxServer;
  beforeAll(async () => {
    nginx = await startNginx({ files: { 'data.bin': data } });
  });
  afterAll(async () => {
    await nginx?.stop();
  });

  it('downloads, is stopped by SIGTERM, and the printed command resumes it', async () => {
    const target = join(dir, 'nginx.bin');
    const args = [nginx.url('data.bin'), '-o', target, '--block-size', '1MiB', '-c', '4', '--rate', '4MiB/s', '--sha256', sha256];
    const running = startCli(args, { cwd: dir });
    await waitFor(async () => existsSync(`${target}.blockfetch.json`) && (await inspectDownload(target)).doneBytes > 0);
    running.child.kill('SIGTERM');
    const interrupted = await running.done;
    expect(interrupted.code).toBe(ExitCode.TERMINATED);
    expect(interrupted.stderr).toMatch(/^blockfetch: interrupted by SIGTERM; progress saved in /m);
    const resume = /^resume with: (.*)$/m.exec(interrupted.stderr)?.[1];
    expect(resume).toBe(['blockfetch', ...args].join(' '));
    const saved = await expectRecordedBlocksCorrect(target);
    expect(saved).toBeLessThan(size);

    const resumed = await runCli([...args.slice(0, -4), '--sha256', sha256], { cwd: dir });
    expect(resumed.code, resumed.stderr).toBe(ExitCode.SUCCESS);
    expect(resumed.stderr).toMatch(/resuming: .* already on disk/);
    expect(resumed.stderr).toMatch(/sha256 verified/);
    expect((await readFile(target)).equals(data)).toBe(true);
  });

  it('--stdout streams it in order', async () => {
    const hash = createHash('sha256');
    let bytes = 0;
    const result = await startCli([nginx.url('data.bin'), '-o', '-', '-c', '8', '--block-size', '1MiB', '--quiet'], {
      cwd: dir,
      onStdout: (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      },
    }).done;
    expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
    expect(result.stderr).toBe('');
    expect(bytes).toBe(size);
    expect(hash.digest('hex')).toBe(sha256);
  });
});
