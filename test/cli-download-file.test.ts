import { createHash } from 'node:crypto';
/**
 * `downloadFile()`, the library entry the command is built on, in-process
 * against the fault server: events, abort and resume, the files it leaves
 * at each step, and the recovery from a crash at each step of finishing.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_BLOCK_SIZE } from '../src/defaults.js';
import { FileReader } from '../src/download/file-reader.js';
import { downloadFile, downloadPaths, pathsFromAnyName, type DownloadFileEvent, type DownloadFileOptions } from '../src/download-file.js';
import { AbortedError, BlockfetchError, DigestMismatchError, InvalidArgumentError } from '../src/errors.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 6 * MiB;
const DATA = payload(0, SIZE - 1);

let dir: string;
let server: FaultServer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-download-file-'));
  server = await startFaultServer({ content: DATA });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function sub(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

describe('downloadFile', () => {
  it('downloads, reports typed events in order, and leaves only the target', async () => {
    const d = await sub('events');
    const events: DownloadFileEvent[] = [];
    const result = await downloadFile(server.url, join(d, 'a.bin'), { blockSize: MiB, concurrency: 3, onEvent: (e) => events.push(e) });
    // No digest was given or advertised, so none was computed (nothing to verify).
    expect(result).toMatchObject({ target: join(d, 'a.bin'), size: SIZE, resumedBytes: 0, digest: undefined });
    expect(result.stats.downloadedBytes).toBe(SIZE);
    const types = events.map((e) => e.type).filter((t) => t !== 'progress');
    expect(types).toEqual(['open', 'start', 'done', 'finish']);
    expect(firstMisplaced(await readFile(join(d, 'a.bin')))).toBe(-1);
    expect(await readdir(d)).toEqual(['a.bin']);
  });

  it('stops on abort with the index saved, and the same call resumes', async () => {
    const d = await sub('abort');
    const target = join(d, 'b.bin');
    // bytesPerSecond slows the download so the abort lands mid-way.
    const controller = new AbortController();
    const first = downloadFile(server.url, target, {
      blockSize: MiB,
      concurrency: 2,
      bytesPerSecond: 4 * MiB,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.stats.doneBytes >= 2 * MiB) controller.abort();
      },
    });
    await expect(first).rejects.toBeInstanceOf(AbortedError);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.blockfetch`) && existsSync(`${target}.blockfetch.json`)).toBe(true);
    expect(existsSync(`${target}.blockfetch.lock`)).toBe(false); // the lock was released

    const again = await downloadFile(server.url, target, { blockSize: 4 * MiB });
    expect(again.resumedBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(again.resumedBytes + again.stats.downloadedBytes).toBe(SIZE);
    expect((await readFile(target)).equals(DATA)).toBe(true);
  });

  it('fetches several blocks per request, up to maxRequestBytes, and records each block', async () => {
    const d = await sub('request-size');
    const before = server.requests.length;
    const result = await downloadFile(server.url, join(d, 'r.bin'), { blockSize: 512 * 1024, maxRequestBytes: 2 * MiB, concurrency: 2 });
    expect(result.stats.blocks).toBe(SIZE / (512 * 1024));
    const lengths = server.requests.slice(before).map((r) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range));
      return m ? Number(m[2]) - Number(m[1]) + 1 : 0;
    });
    // The first request is the look at the remote (one block); the rest coalesce up to 2 MiB.
    expect(Math.max(...lengths)).toBe(2 * MiB);
    expect(lengths.every((n) => n > 0 && n <= 2 * MiB)).toBe(true);
    expect((await readFile(join(d, 'r.bin'))).equals(DATA)).toBe(true);
  });

  it('verifies an expected digest before the rename', async () => {
    const d = await sub('digest');
    const target = join(d, 'c.bin');
    const wrong = { algorithm: 'sha256' as const, hex: '0'.repeat(64) };
    await expect(downloadFile(server.url, target, { blockSize: MiB, expectedDigest: wrong })).rejects.toMatchObject({
      code: 'BLOCKFETCH_DIGEST_MISMATCH',
    });
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.blockfetch`)).toBe(true);

    // The right digest: the kept partial file is complete, so nothing is
    // fetched again; the digest catches up by reading it from disk.
    const right = { algorithm: 'sha256' as const, hex: createHash('sha256').update(DATA).digest('hex') };
    const ok = await downloadFile(server.url, target, { blockSize: MiB, expectedDigest: right });
    expect(ok.digest).toMatchObject({ algorithm: 'sha256', hex: right.hex, verified: true });
    expect(ok.resumedBytes).toBe(SIZE);
    expect((await readFile(target)).equals(DATA)).toBe(true);
  });

  it('verifies a digest the server advertises, over real HTTP (x-goog-hash md5, Repr-Digest sha-256)', async () => {
    const d = await sub('server-digest');
    const md5 = createHash('md5').update(DATA).digest('base64');
    const wrongMd5 = createHash('md5').update('not the file').digest('base64');
    const sha = createHash('sha256').update(DATA).digest('base64');

    const lying = await startFaultServer({ content: DATA, headers: { 'x-goog-hash': `crc32c=AAAAAA==,md5=${wrongMd5}` } });
    try {
      await expect(downloadFile(lying.url, join(d, 'bad.bin'), { blockSize: MiB })).rejects.toMatchObject({
        code: 'BLOCKFETCH_DIGEST_MISMATCH',
        algorithm: 'md5',
      });
      expect(existsSync(join(d, 'bad.bin'))).toBe(false); // the partial file is kept, the target never written
      expect(existsSync(join(d, 'bad.bin.blockfetch'))).toBe(true);
    } finally {
      await lying.close();
    }

    const honest = await startFaultServer({ content: DATA, headers: { 'repr-digest': `sha-256=:${sha}:`, 'x-goog-hash': `md5=${md5}` } });
    try {
      const ok = await downloadFile(honest.url, join(d, 'good.bin'), { blockSize: MiB });
      expect(ok.digest).toMatchObject({ verified: true });
      expect((await readFile(join(d, 'good.bin'))).equals(DATA)).toBe(true);
    } finally {
      await honest.close();
    }
  });

  it('recovers from a crash at every step of finishing', async () => {
    const d = await sub('finish');
    const target = join(d, 'd.bin');
    const paths = downloadPaths(target);

    // Killed after the rename, before the index was removed: a finished
    // target and a stale index. The stale index is removed; the target is
    // kept (and refused without overwrite).
    await writeFile(target, 'finished earlier');
    await writeFile(paths.index, '{}');
    await expect(downloadFile(server.url, target)).rejects.toMatchObject({ code: 'BLOCKFETCH_TARGET_EXISTS' });
    expect(existsSync(paths.index)).toBe(false);
    expect(await readFile(target, 'utf8')).toBe('finished earlier');

    // Killed while creating the cache: a data file without an index holds
    // nothing known to be complete; it is started over.
    await rm(target);
    await writeFile(paths.partial, 'garbage that no index vouches for');
    const result = await downloadFile(server.url, target, { blockSize: MiB });
    expect(result.resumedBytes).toBe(0);
    expect((await readFile(target)).equals(DATA)).toBe(true);
    expect(await readdir(d)).toEqual(['d.bin']);
  });

  it('refuses what it cannot do before any request', async () => {
    const before = server.requests.length;
    await expect(downloadFile(server.url, join(dir, 'no/such/dir/e.bin'))).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: expect.stringMatching(/no such directory/) as unknown,
    });
    await expect(downloadFile(server.url, join(dir, 'f.bin'), { concurrency: 0 })).rejects.toThrow(
      new InvalidArgumentError('downloadFile option concurrency must be a whole number >= 1, got 0 (number)'),
    );
    await expect(downloadFile(server.url, join(dir, 'f.bin'), { blockSize: '16MiB' as unknown as number })).rejects.toThrow(
      /downloadFile option blockSize must be a whole number >= 1, got "16MiB" \(string\)/,
    );
    await expect(downloadFile(server.url, dir, { overwrite: true })).rejects.toThrow(/is a directory, not a file to download into/);
    expect(server.requests.length).toBe(before);
  });

  it('names a restart or overwrite option that is not a boolean, before any request', async () => {
    const before = server.requests.length;
    await expect(downloadFile(server.url, join(dir, 'h.bin'), { restart: 'yes' as unknown as boolean })).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: 'downloadFile option restart must be true or false, got "yes" (string)',
    });
    await expect(downloadFile(server.url, join(dir, 'h.bin'), { overwrite: 1 as unknown as boolean })).rejects.toMatchObject({
      message: 'downloadFile option overwrite must be true or false, got 1 (number)',
    });
    expect(server.requests.length).toBe(before);
  });

  it('honours a Retry-After up to retry.maxRetryAfterMs, also above the reader\'s own 2 min default', async () => {
    const d = await sub('retry-after-cap');
    // The first request of this download (the look) is refused; the index counts every request the server ever saw.
    const first = server.requests.length;
    server.script((r) => (r.index === first ? { kind: 'status', status: 503, headers: { 'retry-after': '130' } } : undefined));
    const controller = new AbortController();
    const delays: number[] = [];
    try {
      await expect(
        downloadFile(server.url, join(d, 'c.bin'), {
          retry: { maxRetryAfterMs: 200_000 },
          signal: controller.signal,
          onEvent: (e) => {
            if (e.type === 'look-retry') {
              delays.push(e.delayMs);
              controller.abort();
            }
          },
        }),
      ).rejects.toMatchObject({ code: 'BLOCKFETCH_ABORTED' });
    } finally {
      server.script(undefined);
    }
    // One option governs: the 130 s the server asked for, not the reader's 120 s cap.
    expect(delays).toEqual([130_000]);
  });

  it('reads the paths of a download from any of its three names', () => {
    const p = downloadPaths('/x/y.iso');
    expect(p).toEqual({ target: '/x/y.iso', partial: '/x/y.iso.blockfetch', index: '/x/y.iso.blockfetch.json', liveIndex: '/x/y.iso.blockfetch.live', directory: '/x' });
    expect(pathsFromAnyName('/x/y.iso.blockfetch')).toEqual(p);
    expect(pathsFromAnyName('/x/y.iso.blockfetch.json')).toEqual(p);
  });

  it('never throws anything but a BlockfetchError for a download that fails', async () => {
    const d = await sub('fail');
    server.script(() => ({ kind: 'status', status: 404 }));
    try {
      await downloadFile(server.url, join(d, 'g.bin'), { retry: { attemptsPerBlock: 1 } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(BlockfetchError);
      expect((err as BlockfetchError).code).toBe('BLOCKFETCH_HTTP_STATUS');
    } finally {
      server.script(undefined);
    }
    expect(await readdir(d)).toEqual([]);
  });
});

describe('downloadFile with any Reader', () => {
  let source: string;
  beforeAll(async () => {
    source = join(dir, 'source.bin');
    await writeFile(source, DATA);
  });

  it('copies a FileReader source to the target, in the reader\'s own block size, leaving only the target', async () => {
    const d = await sub('reader-copy');
    const events: DownloadFileEvent[] = [];
    const result = await downloadFile(new FileReader(source), join(d, 'copy.bin'), { onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ target: join(d, 'copy.bin'), size: SIZE, resumedBytes: 0 });
    expect(events.find((e) => e.type === 'open')).toMatchObject({ blockSize: DEFAULT_BLOCK_SIZE, size: SIZE });
    expect((await readFile(join(d, 'copy.bin'))).equals(DATA)).toBe(true);
    expect(await readdir(d)).toEqual(['copy.bin']);

    // An explicit blockSize still decides a new download's blocks.
    const sized: DownloadFileEvent[] = [];
    await downloadFile(new FileReader(source), join(d, 'sized.bin'), { blockSize: MiB, onEvent: (e) => sized.push(e) });
    expect(sized.find((e) => e.type === 'open')).toMatchObject({ blockSize: MiB });
  });

  it('resumes a FileReader copy after an abort: fewer bytes the second time, the same file', async () => {
    const d = await sub('reader-abort');
    const target = join(d, 'r.bin');
    const controller = new AbortController();
    const first = downloadFile(new FileReader(source), target, {
      blockSize: 256 * 1024,
      concurrency: 1,
      bytesPerSecond: 8 * MiB,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.stats.doneBytes >= 2 * MiB) controller.abort();
      },
    });
    await expect(first).rejects.toBeInstanceOf(AbortedError);
    expect(existsSync(`${target}.blockfetch.json`)).toBe(true);

    const again = await downloadFile(new FileReader(source), target);
    expect(again.resumedBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(again.stats.downloadedBytes).toBeLessThan(SIZE);
    expect(again.resumedBytes + again.stats.downloadedBytes).toBe(SIZE);
    expect((await readFile(target)).equals(DATA)).toBe(true);
  });

  it('verifies a digest for a Reader source, and keeps the partial file on a mismatch', async () => {
    const d = await sub('reader-digest');
    const hex = createHash('sha256').update(DATA).digest('hex');
    const wrong = { algorithm: 'sha256' as const, hex: hex.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
    await expect(downloadFile(new FileReader(source), join(d, 'bad.bin'), { expectedDigest: wrong })).rejects.toBeInstanceOf(
      DigestMismatchError,
    );
    expect(existsSync(join(d, 'bad.bin'))).toBe(false);
    expect(existsSync(join(d, 'bad.bin.blockfetch'))).toBe(true);
    // A digest the Reader itself knows is checked too.
    const ok = await downloadFile(new FileReader(source, { digest: { algorithm: 'sha256', hex } }), join(d, 'good.bin'));
    expect(ok.digest).toMatchObject({ algorithm: 'sha256', hex, verified: true });
  });

  it('reads a URL through createReader: called with the URL, its reader closed at the end', async () => {
    const d = await sub('reader-factory');
    const urls: string[] = [];
    let closed = 0;
    class ClosingFileReader extends FileReader {
      async close(): Promise<void> {
        closed++;
      }
    }
    const result = await downloadFile('nas://share/source.bin', join(d, 'f.bin'), {
      createReader: (url) => {
        urls.push(url);
        return new ClosingFileReader(source);
      },
    });
    expect(urls).toEqual(['nas://share/source.bin']);
    expect(closed).toBe(1);
    expect(result.size).toBe(SIZE);
    expect((await readFile(join(d, 'f.bin'))).equals(DATA)).toBe(true);
  });

  it('restart starts over when a Reader source changed since the partial download began; createReader makes a fresh reader for it', async () => {
    const d = await sub('reader-restart');
    const changing = join(d, 'changing.src');
    await writeFile(changing, DATA);
    const target = join(d, 't.bin');
    const partialRun = async (): Promise<void> => {
      const controller = new AbortController();
      await expect(
        downloadFile(new FileReader(changing), target, {
          blockSize: 256 * 1024,
          concurrency: 1,
          bytesPerSecond: 8 * MiB,
          signal: controller.signal,
          onEvent: (e) => {
            if (e.type === 'progress' && e.stats.doneBytes > 0) controller.abort();
          },
        }),
      ).rejects.toBeInstanceOf(AbortedError);
    };
    const other = payload(SIZE, 2 * SIZE - 1);
    // A new revision is a new mtime: set it, so two writes within one clock tick still differ.
    let day = 0;
    const rewrite = async (data: Buffer): Promise<void> => {
      await writeFile(changing, data);
      const at = new Date(Date.UTC(2026, 0, ++day));
      await utimes(changing, at, at);
    };

    // A Reader instance: it looks at the new revision, so the discard is followed by a whole new download.
    await partialRun();
    await rewrite(other);
    await expect(downloadFile(new FileReader(changing), target)).rejects.toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
    const events: DownloadFileEvent[] = [];
    const result = await downloadFile(new FileReader(changing), target, { restart: true, onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'discard')).toHaveLength(1);
    expect(result.resumedBytes).toBe(0);
    expect((await readFile(target)).equals(other)).toBe(true);

    // createReader: called once per attempt, so the attempt after the discard reads through a fresh reader.
    await rm(target);
    await rewrite(DATA);
    await partialRun();
    await rewrite(other);
    const urls: string[] = [];
    const again = await downloadFile('nas://changing', target, {
      restart: true,
      createReader: (url) => {
        urls.push(url);
        return new FileReader(changing);
      },
    });
    expect(urls).toEqual(['nas://changing', 'nas://changing']);
    expect(again.resumedBytes).toBe(0);
    expect((await readFile(target)).equals(other)).toBe(true);
  });

  it('refuses HTTP-only options with a Reader or createReader, and a source that is no Reader, before touching anything', async () => {
    const d = await sub('reader-refused');
    await expect(downloadFile(new FileReader(source), join(d, 'x.bin'), { headers: { a: 'b' }, timeoutMs: 5 })).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: `downloadFile options headers, timeoutMs only apply to a URL read over HTTP, not to a Reader source (${source})`,
    });
    // An option left undefined (as a JavaScript caller may) was not given: only timeoutMs is named.
    const loose = { createReader: () => new FileReader(source), headers: undefined, timeoutMs: 5 } as unknown as DownloadFileOptions;
    await expect(
      downloadFile('nas://x', join(d, 'x.bin'), loose),
    ).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: 'downloadFile option timeoutMs only applies to a URL read over HTTP, not to the createReader option',
    });
    await expect(downloadFile({ name: 'x' } as unknown as FileReader, join(d, 'x.bin'))).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: expect.stringMatching(/downloadFile source must be a URL string or a Reader/) as unknown,
    });
    expect(await readdir(d)).toEqual([]);
  });
});
