/**
 * Hostile directories (issue 11, items 6, 9 and 14): links and special
 * files planted where blockfetch puts its own files are never followed,
 * written through or replaced, and a name too long for our files is refused
 * before anything is written. Each test plants the hostile thing in a temp
 * dir with a "victim" file OUTSIDE it whose bytes and mtime must not change.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { lstatSync, statSync, symlinkSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { IndexFile } from '../src/cache/index-file.js';
import { reserveSpace } from '../src/cache/reserve-space.js';
import { ExitCode } from '../src/cli/exit-codes.js';
import { downloadFile, downloadPaths, MAX_TARGET_NAME_BYTES } from '../src/download-file.js';
import { runCli } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 2 * MiB;
const DATA = payload(0, SIZE - 1);
const VICTIM_BYTES = Buffer.from('the victim: nobody may write here\n');
const OLD = new Date('2020-01-02T03:04:05Z');

let root: string;
let server: FaultServer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'blockfetch-security-'));
  server = await startFaultServer({ content: DATA });
});
afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

/** A fresh download dir, and a victim file outside it (content and an old mtime recorded). */
async function scene(name: string, victimBytes: Buffer = VICTIM_BYTES): Promise<{ dir: string; victim: string }> {
  const dir = join(root, name, 'downloads');
  await mkdir(dir, { recursive: true });
  const victim = join(root, name, 'victim');
  await writeFile(victim, victimBytes);
  await utimes(victim, OLD, OLD);
  return { dir, victim };
}

async function expectVictimUntouched(victim: string, bytes: Buffer = VICTIM_BYTES): Promise<void> {
  expect((await readFile(victim)).equals(bytes)).toBe(true);
  expect((await stat(victim)).mtime.getTime()).toBe(OLD.getTime());
}

async function failure(promise: Promise<unknown>): Promise<{ code?: string; message: string; hint?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { code?: string; message: string; hint?: string };
  }
  throw new Error('expected a failure');
}

describe('planted symbolic links are never followed (item 6)', () => {
  it('a dangling TARGET.blockfetch link: refused, nothing created outside the directory', async () => {
    const { dir, victim } = await scene('dangling');
    const outside = join(root, 'dangling', 'created-outside');
    const paths = downloadPaths(join(dir, 'big.bin'));
    await symlink(outside, paths.partial);
    const err = await failure(downloadFile(server.url, paths.target));
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    expect(err.message).toContain(`${paths.partial} is a symbolic link`);
    expect(err.hint).toMatch(/remove the link/);
    await expect(lstat(outside)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(paths.target)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await lstat(paths.partial)).isSymbolicLink()).toBe(true);
    await expectVictimUntouched(victim);
  });

  it('the cache layer alone creates its data file exclusively, never through a dangling link', async () => {
    const { dir } = await scene('dangling-cache');
    const outside = join(root, 'dangling-cache', 'created-outside');
    const data = join(dir, 'f.blockfetch');
    await symlink(outside, data);
    // overwrite: even told to replace the cache, a link is not replaced or followed.
    const err = await failure(createNewFilesForCache(data, `${data}.json`, 8192, 4096, { overwrite: true }));
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    await expect(lstat(outside)).rejects.toMatchObject({ code: 'ENOENT' });
    const reserve = await failure(reserveSpace(data, 8192));
    expect(reserve.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    await expect(lstat(outside)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a symlinked partial file next to a valid index: the victim is not written through', async () => {
    const victimBytes = Buffer.alloc(SIZE, 0x5a); // the same size, so only the link gives it away
    const { dir, victim } = await scene('linked-partial', victimBytes);
    const paths = downloadPaths(join(dir, 'big.bin'));
    await createNewFilesForCache(paths.partial, paths.index, SIZE, 512 * 1024);
    await rm(paths.partial);
    await symlink(victim, paths.partial);
    const err = await failure(downloadFile(server.url, paths.target, { restart: true, overwrite: true }));
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    expect(err.message).toContain(paths.partial);
    await expectVictimUntouched(victim, victimBytes);
    await expect(lstat(paths.target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('.TARGET.blockfetch.json.tmp linked to a victim: never truncated or filled with index JSON', async () => {
    const { dir, victim } = await scene('linked-temp');
    const paths = downloadPaths(join(dir, 'big.bin'));
    const temp = new IndexFile(paths.index).tempPath;
    expect(temp).toBe(join(dir, '.big.bin.blockfetch.json.tmp'));
    await symlink(victim, temp);
    const err = await failure(downloadFile(server.url, paths.target));
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    expect(err.message).toContain(temp);
    await expectVictimUntouched(victim);

    // The index layer on its own (a library caller, or a link planted after
    // downloadFile's check): the link is replaced by our file, never followed.
    await createNewFilesForCache(paths.partial, paths.index, SIZE, 512 * 1024);
    await expectVictimUntouched(victim);
    expect(lstatSync(paths.index).isFile()).toBe(true);
    await expect(lstat(temp)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a FIFO or a link at the index path is refused, never opened for reading (a FIFO would hang the open)', async () => {
    const { dir, victim } = await scene('index-fifo');
    const fifo = join(dir, 'f.blockfetch.json');
    execFileSync('mkfifo', [fifo]);
    expect(await failure(new IndexFile(fifo).load())).toMatchObject({ code: 'BLOCKFETCH_UNSAFE_PATH' });
    const link = join(dir, 'g.blockfetch.json');
    await symlink(victim, link);
    const err = await failure(new IndexFile(link).load());
    expect(err).toMatchObject({ code: 'BLOCKFETCH_UNSAFE_PATH' });
    expect(err.message).toContain(`${link} is a symbolic link`);
  });

  it('a link planted at TARGET during the download: refused before the final rename, the complete partial kept', async () => {
    const { dir, victim } = await scene('linked-target');
    const paths = downloadPaths(join(dir, 'big.bin'));
    const err = await failure(
      downloadFile(server.url, paths.target, {
        overwrite: true,
        // 'finish' comes right before the final rename: the attacker's moment.
        onEvent: (e) => {
          if (e.type === 'finish') symlinkSync(victim, paths.target);
        },
      }),
    );
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    expect(err.message).toContain(`${paths.target} is a symbolic link`);
    await expectVictimUntouched(victim);
    expect(lstatSync(paths.target).isSymbolicLink()).toBe(true);
    expect((await readFile(paths.partial)).equals(DATA)).toBe(true);
  });

  it('a link swapped in for the partial file before the final rename is never renamed into place', async () => {
    const { dir, victim } = await scene('swapped-partial');
    const paths = downloadPaths(join(dir, 'big.bin'));
    const err = await failure(
      downloadFile(server.url, paths.target, {
        onEvent: (e) => {
          if (e.type === 'finish') {
            execFileSync('mv', [paths.partial, join(dir, 'moved-away')]);
            symlinkSync(victim, paths.partial);
          }
        },
      }),
    );
    expect(err.code).toBe('BLOCKFETCH_UNSAFE_PATH');
    await expect(lstat(paths.target)).rejects.toMatchObject({ code: 'ENOENT' });
    await expectVictimUntouched(victim);
  });
});

describe('--force replaces only regular files (item 9)', () => {
  async function cliRefuses(cwd: string, target: string): Promise<string> {
    const result = await runCli([server.url, '-o', target, '--force', '--quiet'], { cwd });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toMatch(/^blockfetch: .* not a regular file|is a directory/m);
    return result.stderr;
  }

  it('a FIFO made by mkfifo: refused with exit 2, still a FIFO, nothing written next to it', async () => {
    const { dir } = await scene('fifo');
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const stderr = await cliRefuses(dir, 'pipe');
    expect(stderr).toContain('is a FIFO (named pipe), not a regular file');
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(['pipe']);
  });

  it('-o /dev/null --force: refused with exit 2, the character device stays what it was', async () => {
    // As root a regression would really replace /dev/null (it happened once
    // while checking that this test fails without the fix), so root points
    // at a twin of it made with mknod (the same device, 1:3) in the temp
    // dir; anyone else points at /dev/null itself, which they cannot replace.
    const { dir } = await scene('devnull');
    const asRoot = process.getuid?.() === 0;
    const device = asRoot ? join(dir, 'null') : '/dev/null';
    if (asRoot) execFileSync('mknod', ['-m', '666', device, 'c', '1', '3']);
    const before = statSync(device);
    expect(before.isCharacterDevice()).toBe(true);
    const stderr = await cliRefuses(dir, device);
    expect(stderr).toContain(`${device} is a character device, not a regular file`);
    const after = statSync(device);
    expect(after.isCharacterDevice()).toBe(true);
    expect(after.ino).toBe(before.ino);
    expect(after.rdev).toBe(before.rdev);
    await expect(lstat(`${device}.blockfetch`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(`${device}.blockfetch.flock`)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
  });

  it('a directory and a socket: refused with exit 2, left as they were', async () => {
    const { dir } = await scene('dir-and-socket');
    await mkdir(join(dir, 'adir'));
    // A directory target means "a file inside it" to the CLI; the library refuses it.
    const err = await failure(downloadFile(server.url, join(dir, 'adir'), { overwrite: true }));
    expect(err.code).toBe('BLOCKFETCH_INVALID_ARGUMENT');
    expect(err.message).toMatch(/is a directory/);
    const socketPath = join(dir, 'sock');
    const listener: Server = createServer();
    await new Promise<void>((resolve) => listener.listen(socketPath, resolve));
    try {
      const stderr = await cliRefuses(dir, 'sock');
      expect(stderr).toContain('is a socket, not a regular file');
      expect(lstatSync(socketPath).isSocket()).toBe(true);
    } finally {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
    expect((await stat(join(dir, 'adir'))).isDirectory()).toBe(true);
  });

  it('a symlink at the target, even with --force: refused, the victim untouched', async () => {
    const { dir, victim } = await scene('force-link');
    await symlink(victim, join(dir, 'big.bin'));
    const result = await runCli([server.url, '-o', 'big.bin', '--force', '--quiet'], { cwd: dir });
    expect(result.code, result.stderr).toBe(ExitCode.USAGE);
    expect(result.stderr).toContain('big.bin is a symbolic link');
    await expectVictimUntouched(victim);
    expect(lstatSync(join(dir, 'big.bin')).isSymbolicLink()).toBe(true);
  });
});

describe('names too long for our own files (item 14)', () => {
  it('a name of 235 to 239 bytes from Content-Disposition or the URL is cut to fit, keeping its extension, UTF-8-safe', async () => {
    for (const bytes of [235, 237, 239]) {
      // 'é' is 2 bytes: the cut falls inside one for some of these lengths.
      const long = `${'a'.repeat(bytes - 4 - 2 * 60)}${'é'.repeat(60)}.iso`;
      expect(Buffer.byteLength(long)).toBe(bytes);
      for (const via of ['content-disposition', 'url'] as const) {
        const { dir } = await scene(`long-${via}-${bytes}`);
        const named =
          via === 'url'
            ? await startFaultServer({ content: DATA, path: `/${encodeURIComponent(long)}` })
            : await startFaultServer({ content: DATA, headers: { 'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(long)}` } });
        try {
          const result = await runCli([named.url, '--quiet'], { cwd: dir });
          expect(result.code, result.stderr).toBe(ExitCode.SUCCESS);
          const files = await readdir(dir);
          expect(files).toHaveLength(1);
          const name = files[0] as string;
          expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_TARGET_NAME_BYTES);
          expect(name.endsWith('.iso')).toBe(true);
          expect(name).not.toContain('\ufffd');
          expect(long.startsWith(name.slice(0, -4))).toBe(true);
          expect((await readFile(join(dir, name))).equals(DATA)).toBe(true);
        } finally {
          await named.close();
        }
      }
    }
  });

  it('a -o name of 235 to 239 bytes is refused before anything is written; 234 works', async () => {
    const { dir } = await scene('long-o');
    expect(MAX_TARGET_NAME_BYTES).toBe(234);
    for (const bytes of [235, 239]) {
      // Multi-byte characters: the limit is in UTF-8 bytes, not characters.
      const exact = `${'é'.repeat(100)}${'a'.repeat(bytes - 204)}.bin`;
      expect(Buffer.byteLength(exact)).toBe(bytes);
      const result = await runCli([server.url, '-o', exact, '--quiet'], { cwd: dir });
      expect(result.code, result.stderr).toBe(ExitCode.USAGE);
      expect(result.stderr).toMatch(new RegExp(`target name is ${bytes} bytes long.*234`));
      expect(await readdir(dir)).toEqual([]);
    }
    const fits = `${'a'.repeat(230)}.bin`;
    const ok = await runCli([server.url, '-o', fits, '--quiet'], { cwd: dir });
    expect(ok.code, ok.stderr).toBe(ExitCode.SUCCESS);
    expect((await readFile(join(dir, fits))).equals(DATA)).toBe(true);
    expect(await readdir(dir)).toEqual([fits]);
  });
});
