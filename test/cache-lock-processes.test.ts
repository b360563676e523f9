/**
 * The cross-process lock against real second processes
 * (test/helpers/lock-holder.ts): flock's promise that a killed holder's lock
 * is free at once, the mkdir fallback, and the two side by side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheLock, type CacheLockBackend } from '../src/cache/lock.js';
import { untrustedFlockReason } from '../src/cache/flock.js';
import { BlockfetchError, LockHeldError } from '../src/errors.js';
import { TSX_LOADER } from './cli-helpers.js';

const HOLDER = fileURLToPath(new URL('./helpers/lock-holder.ts', import.meta.url));
/** Longer than any test: a lock that is free promptly can only have been freed by the kernel. */
const STALE_MS = 60_000;

interface Holder {
  readonly child: ChildProcess;
  /** Resolves with the first line the holder printed. */
  readonly firstLine: Promise<string>;
  readonly exited: Promise<void>;
  send(line: string): void;
}

function startHolder(path: string, backend: 'auto' | 'default' | CacheLockBackend, env: Readonly<Record<string, string>> = {}): Holder {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, HOLDER, path, backend], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, BLOCKFETCH_LOCK_BACKEND: '', ...env },
  });
  child.stdout.setEncoding('utf8');
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    // 'close': stderr has been read to its end.
    child.once('close', (code) => reject(new Error(`the lock holder exited (${code}) before saying anything: ${stderr}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, firstLine, exited, send: (line) => child.stdin.write(`${line}\n`) };
}

let dir: string;
let path: string;
const holders: Holder[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-lock-proc-'));
  path = join(dir, 'data.bin');
});
afterEach(async () => {
  for (const h of holders.splice(0)) {
    h.child.kill('SIGKILL');
    await h.exited;
  }
  await rm(dir, { recursive: true, force: true });
});

async function holding(backend: 'auto' | 'default' | CacheLockBackend, env: Readonly<Record<string, string>> = {}): Promise<Holder> {
  const holder = startHolder(path, backend, env);
  holders.push(holder);
  expect(await holder.firstLine).toMatch(/^locked /);
  return holder;
}

describe('CacheLock across processes', () => {
  it("'auto' uses flock on a local filesystem", async () => {
    expect(await untrustedFlockReason(dir)).toBeUndefined(); // else this machine's tmpdir is not local
    const holder = await holding('auto');
    expect(await holder.firstLine).toBe('locked flock');
  });

  it('BLOCKFETCH_LOCK_BACKEND chooses the backend when the option does not (the command has no flag for it)', async () => {
    const holder = await holding('default', { BLOCKFETCH_LOCK_BACKEND: 'mkdir' });
    expect(await holder.firstLine).toBe('locked mkdir');
    expect(existsSync(`${path}.lock`)).toBe(true);
    const bad = startHolder(join(dir, 'other.bin'), 'default', { BLOCKFETCH_LOCK_BACKEND: 'fcntl' });
    holders.push(bad);
    await expect(bad.firstLine).rejects.toThrow(/lock option backend \(from BLOCKFETCH_LOCK_BACKEND\) must be one of .* got "fcntl"/);
  });

  it('a second process is refused at once while the holder lives', async () => {
    await holding('flock');
    const err = await CacheLock.acquire(path, { backend: 'flock', staleMs: STALE_MS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    expect((err as LockHeldError).code).toBe('BLOCKFETCH_LOCKED');
  });

  it('after kill -9 of the holder the lock is free at once (no stale timeout)', async () => {
    const holder = await holding('flock');
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(existsSync(`${path}.flock`)).toBe(true); // a killed holder cannot clean up...
    const started = performance.now();
    const lock = await CacheLock.acquire(path, { staleMs: STALE_MS }); // ...and that does not matter
    const tookMs = performance.now() - started;
    console.log(`lock after kill -9 of its holder: ${tookMs.toFixed(1)} ms (flock; the stale timeout was ${STALE_MS} ms)`);
    expect(lock.backend).toBe('flock');
    await lock.release();
    expect(existsSync(`${path}.flock`)).toBe(false); // a release removes the lock file
  });

  it("'wait' gets the lock once the holder exits, and stops at once on abort", async () => {
    const holder = await holding('flock');
    const ac = new AbortController();
    const aborted = CacheLock.acquire(path, { mode: 'wait', pollMs: 20, signal: ac.signal }).catch((e: unknown) => e);
    ac.abort();
    expect(((await aborted) as BlockfetchError).code).toBe('BLOCKFETCH_ABORTED');

    const waiting = CacheLock.acquire(path, { mode: 'wait', pollMs: 20, staleMs: STALE_MS, waitTimeoutMs: STALE_MS });
    holder.send('exit'); // exits without releasing: the kernel drops the flock
    await holder.exited;
    const lock = await waiting;
    expect(lock.backend).toBe('flock');
    await lock.release();
  });

  it('a symlink planted at the lock file is refused, and its target is not touched', async () => {
    const victim = join(dir, 'victim');
    await writeFile(victim, 'keep me');
    const before = await stat(victim);
    await symlink(victim, `${path}.flock`);
    const err = await CacheLock.acquire(path, { backend: 'flock' }).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_LOCK_FAILED');
    expect((err as BlockfetchError).message).toMatch(/symbolic link/);
    expect(await readFile(victim, 'utf8')).toBe('keep me');
    expect((await stat(victim)).mtimeMs).toBe(before.mtimeMs);
    expect((await lstat(`${path}.flock`)).isSymbolicLink()).toBe(true); // left as it was

    // A dangling one must not create its target either.
    await rm(`${path}.flock`);
    await symlink(join(dir, 'nowhere'), `${path}.flock`);
    await expect(CacheLock.acquire(path, { backend: 'flock' })).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCK_FAILED' });
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  });

  it('a directory where the lock file belongs is LOCK_FAILED, not LOCKED', async () => {
    await mkdir(`${path}.flock`);
    await expect(CacheLock.acquire(path, { backend: 'flock' })).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCK_FAILED' });
    expect((await lstat(`${path}.flock`)).isDirectory()).toBe(true);
  });

  it('an existing lock file keeps its bytes', async () => {
    await writeFile(`${path}.flock`, 'left by someone');
    const lock = await CacheLock.acquire(path, { backend: 'flock' });
    expect(await readFile(`${path}.flock`, 'utf8')).toBe('left by someone');
    await lock.release();
  });

  it('a stale <path>.lock directory (an older version killed) does not block the flock path; a live one does', async () => {
    await mkdir(`${path}.lock`);
    const past = new Date(Date.now() - 10 * 60_000);
    await utimes(`${path}.lock`, past, past);
    const lock = await CacheLock.acquire(path, { backend: 'flock' });
    await lock.release();
    expect(existsSync(`${path}.lock`)).toBe(false); // removed, as a stale mkdir lock is

    await holding('mkdir'); // a live mkdir-only holder, refreshing its directory
    await expect(CacheLock.acquire(path, { backend: 'flock' })).rejects.toBeInstanceOf(LockHeldError);
  });

  it('the mkdir fallback still excludes a second process, and respects a live flock holder', async () => {
    await holding('mkdir');
    await expect(CacheLock.acquire(path, { backend: 'mkdir', staleMs: STALE_MS })).rejects.toBeInstanceOf(LockHeldError);
    for (const h of holders.splice(0)) {
      h.send('release');
      await h.exited;
    }
    const lock = await CacheLock.acquire(path, { backend: 'mkdir', staleMs: STALE_MS });
    expect(lock.backend).toBe('mkdir');
    await lock.release();

    // A process without flock (fs-ext missing) next to one with it: the flock
    // holder's lock file, refreshed every updateMs, tells it the lock is taken.
    await holding('flock');
    await expect(CacheLock.acquire(path, { backend: 'mkdir', staleMs: STALE_MS })).rejects.toBeInstanceOf(LockHeldError);
    expect(existsSync(`${path}.lock`)).toBe(false); // it backed off and removed its directory
  });

  it("'both' takes the flock and the directory, and a flock-only process respects it", async () => {
    const holder = await holding('both');
    expect(existsSync(`${path}.lock`)).toBe(true);
    await expect(CacheLock.acquire(path, { backend: 'flock', staleMs: STALE_MS })).rejects.toBeInstanceOf(LockHeldError);
    await expect(CacheLock.acquire(path, { backend: 'mkdir', staleMs: STALE_MS })).rejects.toBeInstanceOf(LockHeldError);
    holder.send('release');
    expect(await new Promise((resolve) => holder.child.stdout?.once('data', (c: Buffer | string) => resolve(String(c).trim())))).toBe('released');
    const lock = await CacheLock.acquire(path, { backend: 'both', staleMs: STALE_MS });
    await lock.release();
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(existsSync(`${path}.flock`)).toBe(false);
  });
});
