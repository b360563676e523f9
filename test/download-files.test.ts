/**
 * `downloadFiles`: a set against a real HTTP server on 127.0.0.1. One
 * connection budget for the whole set (the server counts the requests open
 * at once), small files not queued behind large ones, finished files
 * skipped without a request, one failure not stopping the others, events
 * keyed by entry, and a set that is wrong refused before any request.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { downloadFile } from '../src/download-file.js';
import { downloadFiles, type DownloadFilesEvent } from '../src/download-files.js';
import { RateLimiter } from '../src/download/rate-limiter.js';
import { startSetServer, type SetServer } from './helpers/set-server.js';
import { payload } from './helpers/payload.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('downloadFiles', () => {
  let dir: string;
  let server: SetServer | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-files-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('bounds the requests of the whole set by `concurrency`, and small files finish while large ones run', async () => {
    const large = [payload(0, 4 * 2 ** 20 - 1), payload(7, 4 * 2 ** 20 + 6)];
    const small = Array.from({ length: 6 }, (_, i) => payload(i * 1000, i * 1000 + 40_000));
    // The large files take seconds (at most 3 requests of 1 MB/s each for 8 MiB), the small ones milliseconds.
    server = await startSetServer({
      '/large0': { content: large[0] as Buffer, bytesPerSecond: 1_000_000 },
      '/large1': { content: large[1] as Buffer, bytesPerSecond: 1_000_000 },
      ...Object.fromEntries(small.map((b, i) => [`/small${i}`, b])),
    });
    const s = server;
    const entries = [
      { source: s.url('/large0'), target: join(dir, 'large0') },
      { source: s.url('/large1'), target: join(dir, 'large1') },
      ...small.map((_, i) => ({ source: s.url(`/small${i}`), target: join(dir, `small${i}`) })),
    ];
    const events: DownloadFilesEvent[] = [];
    const result = await downloadFiles(entries, {
      concurrency: 3,
      maxConcurrentFiles: 3,
      blockSize: 256 * 1024,
      maxRequestBytes: 256 * 1024,
      onEvent: (e) => events.push(e),
    });
    expect(result.ok).toBe(true);
    expect(result.files.map((f) => f.outcome)).toEqual(Array(8).fill('done'));
    // Never more than 3 requests open at once across all eight files, and more than one at a time.
    expect(s.maxOpen).toBeLessThanOrEqual(3);
    expect(s.maxOpen).toBeGreaterThan(1);
    // The small files, listed after the large ones, were all done before either large one: none waited for them.
    const doneOrder = events.filter((e) => e.type === 'file-done').map((e) => (e as { key: string }).key);
    expect(doneOrder.slice(-2).sort()).toEqual([join(dir, 'large0'), join(dir, 'large1')]);
    for (const [i, b] of [...large, ...small].entries()) expect(sha256(await readFile(entries[i]?.target as string))).toBe(sha256(b));
    // Events are keyed by entry (the target as given), and the totals end at all files done.
    const keys = new Set(events.filter((e) => e.type === 'file').map((e) => (e as { key: string }).key));
    expect(keys).toEqual(new Set(entries.map((e) => e.target)));
    const last = events.filter((e) => e.type === 'set-progress').at(-1);
    expect(last).toMatchObject({ files: 8, done: 8, failed: 0, active: 0 });
  });

  it('skips finished files without a request, resumes the rest, and one failure does not stop the others', async () => {
    const a = payload(0, 99_999);
    const b = payload(5, 200_004);
    server = await startSetServer({ '/a': a, '/b': b });
    const s = server;
    await writeFile(join(dir, 'a'), a); // finished by an earlier run: no partial beside it
    const events: DownloadFilesEvent[] = [];
    const result = await downloadFiles(
      [
        { source: s.url('/a'), target: join(dir, 'a'), key: 'A' },
        { source: s.url('/missing'), target: join(dir, 'missing'), key: 'M' },
        { source: s.url('/b'), target: join(dir, 'b'), key: 'B', options: { expectedDigest: { algorithm: 'sha256', hex: sha256(b) } } },
      ],
      { onEvent: (e) => events.push(e) },
    );
    expect(result.ok).toBe(false);
    expect(result.files.map((f) => [f.key, f.outcome])).toEqual([
      ['A', 'skipped'],
      ['M', 'failed'],
      ['B', 'done'],
    ]);
    expect(result.files[1]).toMatchObject({ error: { code: 'BLOCKFETCH_HTTP_STATUS' } });
    expect(result.files[2]).toMatchObject({ result: { digest: { verified: true } } });
    expect(s.requests.get('/a')).toBeUndefined();
    expect(events).toContainEqual({ type: 'file-skipped', key: 'A', target: join(dir, 'a') });
    expect(events.some((e) => e.type === 'file-failed' && e.key === 'M')).toBe(true);
  });

  it('as many files at once as connections: every file completes (a connection budget that parked every slot hung here)', async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => payload(i * 7, i * 7 + 700_000));
    server = await startSetServer(Object.fromEntries(bodies.map((b, i) => [`/f${i}`, b])));
    const s = server;
    for (const concurrency of [2, 4]) {
      const entries = bodies.slice(0, concurrency).map((_, i) => ({ source: s.url(`/f${i}`), target: join(dir, `c${concurrency}-f${i}`) }));
      const result = await downloadFiles(entries, { concurrency, maxConcurrentFiles: concurrency, blockSize: 64 * 1024, maxRequestBytes: 64 * 1024 });
      expect(result.files.map((f) => f.outcome)).toEqual(entries.map(() => 'done'));
      for (const [i, e] of entries.entries()) expect(sha256(await readFile(e.target))).toBe(sha256(bodies[i] as Buffer));
      expect(s.maxOpen).toBeLessThanOrEqual(concurrency);
    }
  });

  it('skips a finished file only when it has the digest its entry gives; another file of that name fails, untouched', async () => {
    const body = payload(3, 50_000);
    server = await startSetServer({ '/a': body, '/b': body });
    const s = server;
    const digest = { algorithm: 'sha256' as const, hex: sha256(body) };
    await writeFile(join(dir, 'right'), body);
    await writeFile(join(dir, 'wrong'), 'another file of that name');
    const result = await downloadFiles([
      { source: s.url('/a'), target: join(dir, 'right'), options: { expectedDigest: digest } },
      { source: s.url('/b'), target: join(dir, 'wrong'), options: { expectedDigest: digest } },
    ]);
    expect(result.files.map((f) => f.outcome)).toEqual(['skipped', 'failed']);
    expect(result.files[1]).toMatchObject({ error: { code: 'BLOCKFETCH_DIGEST_MISMATCH' } });
    expect(await readFile(join(dir, 'wrong'), 'utf8')).toBe('another file of that name');
    expect(s.total()).toBe(0);
  });

  it("refuses, before any request, a target named like another download's own files", async () => {
    server = await startSetServer({ '/a': payload(0, 9), '/b': payload(1, 9) });
    const s = server;
    for (const name of ['m.bin.blockfetch', 'm.bin.blockfetch.json', 'm.bin.blockfetch.live', 'm.bin.blockfetch.flock', join('m.bin.blockfetch', 'x')]) {
      await expect(
        downloadFiles([
          { source: s.url('/a'), target: join(dir, 'm.bin') },
          { source: s.url('/b'), target: join(dir, name) },
        ]),
      ).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT', message: expect.stringContaining("blockfetch gives its own files") });
    }
    // downloadFile itself refuses such a name too, with nothing written.
    await expect(downloadFile(s.url('/a'), join(dir, 'x.blockfetch'))).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
    expect(s.total()).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('bytesPerSecond limits the set as a whole: every file takes its bytes from one shared limiter', async () => {
    const bodies = [payload(0, 300_000), payload(1, 300_000)];
    server = await startSetServer({ '/a': bodies[0] as Buffer, '/b': bodies[1] as Buffer });
    const s = server;
    const takers = new Set<RateLimiter>();
    let taken = 0;
    const spy = vi.spyOn(RateLimiter.prototype, 'takeBytes').mockImplementation(async function (this: RateLimiter, bytes: number) {
      takers.add(this);
      taken += bytes;
    });
    try {
      const result = await downloadFiles(
        [
          { source: s.url('/a'), target: join(dir, 'a') },
          { source: s.url('/b'), target: join(dir, 'b') },
        ],
        { bytesPerSecond: 10_000_000, concurrency: 4 },
      );
      expect(result.files.map((f) => f.outcome)).toEqual(['done', 'done']);
    } finally {
      spy.mockRestore();
    }
    expect(takers.size).toBe(1);
    expect(taken).toBe((bodies[0] as Buffer).length + (bodies[1] as Buffer).length);
  });

  it('refuses two entries with one target before any request', async () => {
    server = await startSetServer({ '/a': payload(0, 9) });
    const s = server;
    await expect(
      downloadFiles([
        { source: s.url('/a'), target: join(dir, 'x') },
        { source: s.url('/a'), target: join(dir, 'sub', '..', 'x') },
      ]),
    ).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT', message: expect.stringMatching(/would both be saved as/) });
    await expect(downloadFiles([{ source: s.url('/a'), target: join(dir, 'y') }], { maxConcurrentFiles: 0 })).rejects.toThrow(/maxConcurrentFiles/);
    expect(s.total()).toBe(0);
  });

  it('an aborted set saves its partial files; the same call resumes them', async () => {
    const big = payload(0, 4 * 2 ** 20 - 1);
    server = await startSetServer({ '/big': { content: big, bytesPerSecond: 1_000_000 }, '/later': payload(1, 1000) });
    const s = server;
    const controller = new AbortController();
    const entries = [
      { source: s.url('/big'), target: join(dir, 'big') },
      { source: s.url('/later'), target: join(dir, 'later') },
    ];
    const first = await downloadFiles(entries, {
      maxConcurrentFiles: 1,
      concurrency: 2,
      blockSize: 256 * 1024,
      maxRequestBytes: 256 * 1024,
      signal: controller.signal,
      onEvent: (e) => {
        // Stop once some blocks of the big file are on disk.
        if (e.type === 'file' && e.event.type === 'progress' && e.event.stats.doneBytes >= 512 * 1024) controller.abort();
      },
    });
    expect(first.files.map((f) => f.outcome)).toEqual(['failed', 'not-started']);
    expect(first.files[0]).toMatchObject({ error: { code: 'BLOCKFETCH_ABORTED' } });
    expect(s.requests.get('/later')).toBeUndefined();
    const resumed: number[] = [];
    const second = await downloadFiles(entries, {
      onEvent: (e) => {
        if (e.type === 'file' && e.event.type === 'open') resumed.push(e.event.resumedBytes);
      },
    });
    expect(second.ok).toBe(true);
    expect(resumed[0]).toBeGreaterThanOrEqual(512 * 1024);
    expect(sha256(await readFile(join(dir, 'big')))).toBe(sha256(big));
  });
});
