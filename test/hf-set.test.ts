/**
 * An hf:// repository is a set of files run by downloadFiles: `-c` counts
 * the connections of the whole repository (the stand-in counts the file
 * requests open at once), `-j` files run at once, and a run killed with
 * SIGKILL in the middle is completed by running it again, without fetching
 * the files that were finished.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { runCli, startCli, waitFor } from './cli-helpers.js';
import { commitSha, sha256Hex, startHubStandIn, type HubStandIn, type StandInFile } from './helpers/hub-server.js';
import { payload } from './helpers/payload.js';

const TOKEN = 'hf_set_test_SECRET_token';
const COMMIT = commitSha('set');
const MiB = 2 ** 20;

function file(path: string, offset: number, size: number, lfs = true): StandInFile {
  return { path, content: payload(offset, offset + size - 1), lfs };
}

let work: string;
let hub: HubStandIn | undefined;

type StandInOptions = Parameters<typeof startHubStandIn>[0];

async function start(files: StandInFile[], extra: Pick<StandInOptions, 'holdCdn' | 'beforeCdn'> = {}): Promise<HubStandIn> {
  hub = await startHubStandIn({
    token: TOKEN,
    repos: [{ type: 'model', id: 'org/set', commits: new Map([[COMMIT, files]]), refs: new Map([['main', COMMIT]]) }],
    ...extra,
  });
  return hub;
}

function env(h: HubStandIn): Record<string, string> {
  return { HF_ENDPOINT: h.endpoint, HF_TOKEN: TOKEN, HF_HOME: join(work, 'hf-home') };
}

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'bf-hf-set-'));
});
afterEach(async () => {
  await hub?.close();
  hub = undefined;
  await rm(work, { recursive: true, force: true });
});

describe('blockfetch hf:// as a set of files', () => {
  it('-c 4 -j 3: never more than 4 file requests open across the repository, and several files at once', async () => {
    const files = Array.from({ length: 6 }, (_, i) => file(`shard-${i}.bin`, i * 10 * MiB, 3 * MiB));
    files.push(file('config.json', 90 * MiB, 2000, false));
    // A barrier: the CDN answers nothing until two different files have asked, so a client that
    // ran the files one after another would never finish (the test would time out).
    const asked = new Set<string>();
    const waiting: (() => void)[] = [];
    const h = await start(files, {
      beforeCdn: (req) => {
        asked.add(new URL(req.url ?? '/', 'http://cdn').pathname);
        if (asked.size < 2) return new Promise<void>((resolve) => waiting.push(resolve));
        for (const release of waiting.splice(0)) release();
        return Promise.resolve();
      },
    });
    const result = await runCli(['hf://org/set', '-d', 'm', '-c', '4', '-j', '3', '--block-size', '1MiB'], { cwd: work, env: env(h) });
    expect(result.code, result.stderr).toBe(0);
    for (const f of files) expect((await readFile(join(work, 'm', f.path))).equals(f.content), f.path).toBe(true);
    expect(h.gauge.max, 'file requests open at once').toBeLessThanOrEqual(4);
    expect(h.gauge.maxFiles, 'files with a request open at once').toBeGreaterThan(1);
    expect(result.stderr).toMatch(/^summary: 7 files in .*: 7 done, 0 skipped, 0 failed \(exit status 0\)$/m);
  });

  it('killed with SIGKILL in the middle, the same command completes it; finished files are not fetched again', async () => {
    const small = file('config.json', 0, 3000, false);
    const medium = file('tokenizer.bin', 1 * MiB, 300_000);
    const large = file('model.safetensors', 5 * MiB, 4 * MiB);
    const largeSha = sha256Hex(large.content);
    let hold = true;
    let largeRequests = 0;
    let held = 0;
    // The large file's first range is served, the rest stall: it stays in the middle while the others finish.
    const h = await start([small, medium, large], { holdCdn: (req) => {
      if (!hold || !(req.url ?? '').includes(largeSha)) return false;
      largeRequests++;
      if (largeRequests === 1) return false;
      held++;
      return true;
    } });
    const args = ['hf://org/set', '-d', 'm', '-c', '8', '-j', '3', '--block-size', '1MiB'];
    const running = startCli(args, { cwd: work, env: env(h) });
    await waitFor(() => /^done: config\.json /m.test(running.stderr()) && /^done: tokenizer\.bin /m.test(running.stderr()) && held > 0);
    running.child.kill('SIGKILL');
    const killed = await running.done;
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(work, 'm', 'model.safetensors')), 'the large file is not finished').toBe(false);
    expect(existsSync(join(work, 'm', 'model.safetensors.blockfetch')), 'its partial download is kept').toBe(true);

    hold = false;
    const before = h.requests.length;
    const again = await runCli(args, { cwd: work, env: env(h) });
    expect(again.code, again.stderr).toBe(0);
    for (const f of [small, medium, large]) expect((await readFile(join(work, 'm', f.path))).equals(f.content), f.path).toBe(true);
    const fetched = h.requests.slice(before).filter((r) => r.origin === 'cdn' || r.url.includes('/resolve/'));
    expect(fetched.some((r) => r.url.includes('model.safetensors') || r.url.includes(largeSha))).toBe(true);
    for (const f of [small, medium]) {
      expect(fetched.filter((r) => r.url.includes(f.path) || r.url.includes(sha256Hex(f.content))), f.path).toEqual([]);
    }
    expect(again.stderr).toMatch(/^summary: 3 files in .*: 1 done, 2 skipped, 0 failed \(exit status 0\)$/m);
  });

  it('Ctrl-C in the middle: exit 130, the set summary says which file stopped, its partial saved', async () => {
    const small = file('config.json', 0, 3000, false);
    const large = file('model.safetensors', 5 * MiB, 4 * MiB);
    const largeSha = sha256Hex(large.content);
    let largeRequests = 0;
    let held = 0;
    const h = await start([small, large], {
      holdCdn: (req) => {
        if (!(req.url ?? '').includes(largeSha)) return false;
        if (++largeRequests === 1) return false;
        held++;
        return true;
      },
    });
    const running = startCli(['hf://org/set', '-d', 'm', '-c', '4', '--block-size', '1MiB'], { cwd: work, env: env(h) });
    await waitFor(() => /^done: config\.json /m.test(running.stderr()) && held > 0);
    running.child.kill('SIGINT');
    const result = await running.done;
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toMatch(/^ {2}stopped {2}model\.safetensors \(interrupted; its partial download is saved\)$/m);
    expect(result.stderr).toMatch(/^resume with: .*hf:\/\/org\/set/m);
    expect(existsSync(join(work, 'm', 'model.safetensors.blockfetch'))).toBe(true);
    expect(existsSync(join(work, 'm', 'model.safetensors.blockfetch.json'))).toBe(true);
  });
});
