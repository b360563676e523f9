/**
 * One writer per cache across REAL processes: two children open the same
 * cache, one wins and the other is refused with BLOCKFETCH_LOCKED; after the
 * winner is killed with SIGKILL (no chance to release), the next open takes
 * over the stale lock once it is `staleMs` old.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';

const here = dirname(fileURLToPath(import.meta.url));
const holderScript = join(here, 'helpers', 'cache-holder.ts');
const children: ChildProcess[] = [];
let dir: string;
let dataPath: string;
let indexPath: string;

interface Message {
  readonly event: 'opened' | 'holding' | 'error';
  readonly code?: string;
  readonly blocks?: number;
  readonly ms: number;
}

/** Starts the holder; `next()` resolves with each JSON line it prints, in order. */
function startHolder(args: string[]): { child: ChildProcess; next: () => Promise<Message>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', holderScript, dataPath, indexPath, ...args], {
    cwd: join(here, '..'),
    // The stale takeover is the mkdir lock's; a flock needs none (test/cache-lock-processes.test.ts).
    env: { ...process.env, BLOCKFETCH_LOCK_BACKEND: 'mkdir' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    next: async () => {
      const { value, done } = await lines.next();
      if (done === true) throw new Error('the holder exited without saying anything more');
      return JSON.parse(value) as Message;
    },
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-process-'));
  dataPath = join(dir, 'file.bin');
  indexPath = join(dir, 'file.bin.bfindex');
  await createNewFilesForCache(dataPath, indexPath, 8192, 1024);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('the cache lock across processes', () => {
  it('one process wins, the other is refused; after kill -9 of the winner the lock is recovered once stale', async () => {
    // Staleness is judged by the process that finds the lock, with ITS staleMs;
    // the holder refreshes every second whatever its own. The holder and the
    // loser use 10 s so that a loaded machine cannot make the live lock look stale.
    const winner = startHolder(['fail', '10000', 'hold']);
    expect((await winner.next()).event).toBe('opened');
    expect((await winner.next()).event).toBe('holding');

    const loser = startHolder(['fail', '10000']);
    const refused = await loser.next();
    expect(refused).toMatchObject({ event: 'error', code: 'BLOCKFETCH_LOCKED' });
    expect(await loser.exited).toBe(2);

    winner.child.kill('SIGKILL');
    await winner.exited;
    const killedAt = Date.now();

    // Right after the kill the lock is still fresh (refreshed within the last
    // second): a process that considers locks stale only after 30 s is refused.
    const early = startHolder(['fail', '30000']);
    expect(await early.next()).toMatchObject({ event: 'error', code: 'BLOCKFETCH_LOCKED' });
    await early.exited;

    // A process that waits takes the lock over once it is 2 s stale, and sees
    // the block the killed process flushed.
    const next = startHolder(['wait', '2000']);
    const opened = await next.next();
    const recoveredAfter = Date.now() - killedAt;
    expect(opened).toMatchObject({ event: 'opened', blocks: 1 });
    expect(await next.exited).toBe(0);
    // staleMs (2 s) after the last refresh, plus one poll and process start-up:
    // a generous bound that still proves recovery did not wait for waitTimeoutMs (20 s).
    expect(recoveredAfter).toBeLessThan(10_000);
  });
});
