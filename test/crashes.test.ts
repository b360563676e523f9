/**
 * Issue 11 "Crashes": inputs that used to kill the process with a stack
 * trace (exit 1) instead of a typed error with its exit code.
 */
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
