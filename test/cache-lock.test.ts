import { mkdir, mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { FlockFile, loadFlock } from '../src/cache/flock.js';
import { CacheLock } from '../src/cache/lock.js';
import { BlockfetchError, LockHeldError } from '../src/errors.js';
import { payload } from './helpers/payload.js';

let dir: string;
let path: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-lock-'));
  path = join(dir, 'data.bin');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CacheLock', () => {
  it('a second holder is refused at once with LockHeldError; after release it succeeds', async () => {
    const first = await CacheLock.acquire(path);
    const started = Date.now();
    const err = await CacheLock.acquire(path).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(LockHeldError);
    expect((err as LockHeldError).code).toBe('BLOCKFETCH_LOCKED');
    expect((err as LockHeldError).path).toBe(path);
    await first.release();
    await first.release(); // idempotent
    const second = await CacheLock.acquire(path);
    await second.release();
  });

  it("'wait' gets the lock when the holder releases it", async () => {
    const first = await CacheLock.acquire(path);
    const waiting = CacheLock.acquire(path, { mode: 'wait', pollMs: 20 });
    setTimeout(() => void first.release(), 150);
    const second = await waiting;
    expect(second.compromised).toBeUndefined();
    await second.release();
  });

  it("'wait' gives up after waitTimeoutMs, and stops at once on abort", async () => {
    const first = await CacheLock.acquire(path);
    try {
      await expect(CacheLock.acquire(path, { mode: 'wait', waitTimeoutMs: 200, pollMs: 50 })).rejects.toBeInstanceOf(LockHeldError);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      const err = await CacheLock.acquire(path, { mode: 'wait', signal: ac.signal, pollMs: 1000 }).catch((e: unknown) => e);
      expect((err as BlockfetchError).code).toBe('BLOCKFETCH_ABORTED');
    } finally {
      await first.release();
    }
  });

  it('takes over a stale lock left by a dead process', async () => {
    // What a process killed with -9 leaves behind: the lock directory, no longer refreshed.
    await mkdir(`${path}.lock`);
    const past = new Date(Date.now() - 10_000);
    await utimes(`${path}.lock`, past, past);
    const lock = await CacheLock.acquire(path, { staleMs: 5000 });
    await lock.release();
    // A fresh one is respected.
    await mkdir(`${path}.lock`);
    await expect(CacheLock.acquire(path, { staleMs: 5000 })).rejects.toBeInstanceOf(LockHeldError);
  });

  it('a compromised lock is recorded, reported once, and never thrown from a timer', async () => {
    const reported: BlockfetchError[] = [];
    // The mkdir lock (a flock cannot be lost while held).
    const lock = await CacheLock.acquire(path, { staleMs: 2000, updateMs: 1000, backend: 'mkdir', onCompromised: (e) => reported.push(e) });
    // Someone removes the lock while we hold it: the next refresh notices.
    await rm(`${path}.lock`, { recursive: true });
    const deadline = Date.now() + 5000;
    while (lock.compromised === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(lock.compromised?.code).toBe('BLOCKFETCH_LOCKED');
    expect(lock.compromised?.message).toMatch(/lost while held/);
    expect(reported).toHaveLength(1);
    await lock.release(); // does not throw for a lost lock
  });

  it('rejects bad options naming them', async () => {
    await expect(CacheLock.acquire(path, { staleMs: 100 })).rejects.toThrow(/staleMs .* >= 2000, got 100 \(number\)/);
    await expect(CacheLock.acquire(path, { staleMs: 4000, updateMs: 3000 })).rejects.toThrow(/updateMs \(3000\) must be at most half/);
    // @ts-expect-error not a mode
    await expect(CacheLock.acquire(path, { mode: 'maybe' })).rejects.toThrow(/lock option mode must be one of "fail", "wait", got "maybe" \(string\)/);
    // @ts-expect-error not a backend
    await expect(CacheLock.acquire(path, { backend: 'fcntl' })).rejects.toThrow(/lock option backend must be one of "auto", "flock", "mkdir", "both", got "fcntl" \(string\)/);
    await expect(stat(`${path}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(`${path}.flock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('LocalDownloadCache and the lock', () => {
  const indexPath = (): string => `${path}.bfindex`;

  it('one cache per files: a second open in the same process is refused, and allowed after close', async () => {
    await createNewFilesForCache(path, indexPath(), 100, 10);
    const a = await LocalDownloadCache.open(path, indexPath());
    await expect(LocalDownloadCache.open(path, indexPath())).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCKED' });
    // Creating over it is refused too, even with overwrite.
    await expect(createNewFilesForCache(path, indexPath(), 100, 10, { overwrite: true })).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCKED' });
    await a.close();
    const b = await LocalDownloadCache.open(path, indexPath());
    await b.close();
  });

  it("lock: 'wait' opens once the holder closes", async () => {
    await createNewFilesForCache(path, indexPath(), 100, 10);
    const a = await LocalDownloadCache.open(path, indexPath());
    const waiting = LocalDownloadCache.open(path, indexPath(), { lock: 'wait', lockOptions: { pollMs: 20 } });
    await a.writeAt(payload(0, 9), 0);
    setTimeout(() => void a.close(), 100);
    const b = await waiting;
    // It sees what the first holder wrote (close flushed it).
    expect(b.cachedBytesAndBlocks()).toEqual({ bytes: 10, blocks: 1 });
    await b.close();
  });

  it('a lock taken by the caller (around creating the files) can be handed to open()', async () => {
    const lock = await CacheLock.acquire(path);
    await createNewFilesForCache(path, indexPath(), 100, 10, { lock: false });
    // A failed open leaves the caller's lock held...
    await expect(LocalDownloadCache.open(path, indexPath(), { lock, expectedBlockSize: 20 })).rejects.toMatchObject({
      code: 'BLOCKFETCH_INDEX_MISMATCH',
    });
    await expect(CacheLock.acquire(path)).rejects.toBeInstanceOf(LockHeldError);
    // ...a successful one takes it over and releases it on close.
    const cache = await LocalDownloadCache.open(path, indexPath(), { lock });
    await expect(LocalDownloadCache.open(path, indexPath())).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCKED' });
    await cache.close();
    const again = await CacheLock.acquire(path);
    await again.release();
  });

  it('a background flush due after the lock was lost writes no index', async () => {
    await createNewFilesForCache(path, indexPath(), 100, 10);
    const lock = await CacheLock.acquire(path, { staleMs: 2000, updateMs: 1000, backend: 'mkdir' });
    const cache = await LocalDownloadCache.open(path, indexPath(), { lock, flushIntervalMs: 2500 });
    const writtenAt = Date.now();
    await cache.writeAt(payload(0, 9), 0); // a flush is now due 2.5 s later
    const indexBefore = await stat(indexPath());
    await rm(`${path}.lock`, { recursive: true });
    while (lock.compromised === undefined) await new Promise((r) => setTimeout(r, 50)); // noticed at the next refresh (~1 s)
    await new Promise((r) => setTimeout(r, Math.max(0, writtenAt + 2700 - Date.now())));
    expect((await stat(indexPath())).mtimeMs).toBe(indexBefore.mtimeMs);
    expect(await cache.writeAt(payload(10, 19), 10).catch((e: unknown) => (e as BlockfetchError).code)).toBe('BLOCKFETCH_LOCKED');
    await cache.close();
    expect((await stat(indexPath())).mtimeMs).toBe(indexBefore.mtimeMs);
  });

  it('a lost lock turns into BLOCKFETCH_LOCKED on the next write, and close writes no index', async () => {
    await createNewFilesForCache(path, indexPath(), 100, 10);
    // No background flush (60 s): the only index writes would come from close().
    const cache = await LocalDownloadCache.open(path, indexPath(), {
      lockOptions: { staleMs: 2000, updateMs: 1000, backend: 'mkdir' }, // a flock cannot be lost
      flushIntervalMs: 60_000,
    });
    await rm(`${path}.lock`, { recursive: true });
    const deadline = Date.now() + 5000;
    let err: unknown;
    while (err === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      err = await cache.writeAt(payload(0, 9), 0).then(() => undefined, (e: unknown) => e);
    }
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_LOCKED');
    expect(() => cache.markCached(1)).toThrow(/lost while held/);
    const indexBefore = await stat(indexPath());
    await cache.close();
    expect((await stat(indexPath())).mtimeMs).toBe(indexBefore.mtimeMs);
  });
});

describe('FlockFile', () => {
  type Flock = Parameters<typeof FlockFile.tryLock>[1];
  const failingFlock =
    (code: string): Flock =>
    (_fd, flags, callback) =>
      callback(flags === 'un' ? null : Object.assign(new Error(`${code}: refused`), { code }));

  it("a filesystem that refuses flock is 'unsupported' (and leaves no lock file); other flock errors are LOCK_FAILED", async () => {
    expect(await FlockFile.tryLock(`${path}.flock`, failingFlock('ENOLCK'))).toBe('unsupported');
    await expect(stat(`${path}.flock`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(FlockFile.tryLock(`${path}.flock`, failingFlock('EIO'))).rejects.toMatchObject({ code: 'BLOCKFETCH_LOCK_FAILED' });
  });

  it('many locks held at once add one exit listener to the process, not one each', async () => {
    const flock = loadFlock();
    if (flock instanceof Error) throw flock;
    const before = process.listenerCount('exit');
    const held = await Promise.all(Array.from({ length: 12 }, (_, i) => FlockFile.tryLock(`${path}.${i}.flock`, flock)));
    // At most the one shared hook (it may already be installed by an earlier test).
    expect(process.listenerCount('exit') - before).toBeLessThanOrEqual(1);
    for (const lock of held) await (lock as FlockFile).release();
  });

  it("the real flock: a second open file is 'held' until release, which removes the file", async () => {
    const flock = loadFlock();
    if (flock instanceof Error) throw flock;
    const first = await FlockFile.tryLock(`${path}.flock`, flock);
    expect(first).toBeInstanceOf(FlockFile);
    expect(await FlockFile.tryLock(`${path}.flock`, flock)).toBe('held');
    await (first as FlockFile).release();
    await expect(stat(`${path}.flock`)).rejects.toMatchObject({ code: 'ENOENT' });
    const second = await FlockFile.tryLock(`${path}.flock`, flock);
    expect(second).toBeInstanceOf(FlockFile);
    await (second as FlockFile).release();
  });
});
