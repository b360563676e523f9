/**
 * `src/finished-file.ts`: the rules every "already complete" check shares.
 * A finished file is a regular file with no partial download beside it;
 * its mtime matches an HTTP date to the second; its digests are hashed in
 * one read and compared in order.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { checkDigests, digestsMatch, finishedFileStat, mtimeMatches, regularFileStat } from '../src/finished-file.js';

const hex = (algorithm: string, bytes: Buffer): string => createHash(algorithm).update(bytes).digest('hex');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-finished-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('finishedFileStat', () => {
  it('is the lstat of a regular file with no partial download beside it', async () => {
    const target = join(dir, 'big.iso');
    await writeFile(target, 'abc');
    const found = await finishedFileStat(target);
    expect(found?.isFile()).toBe(true);
    expect(found?.size).toBe(3);
  });

  it('counts an index alone beside the target as finished (a kill after the final rename leaves one)', async () => {
    const target = join(dir, 'big.iso');
    await writeFile(target, 'abc');
    await writeFile(`${target}.blockfetch.json`, '{}');
    expect(await finishedFileStat(target)).toBeDefined();
  });

  it('is undefined for a missing target', async () => {
    expect(await finishedFileStat(join(dir, 'missing'))).toBeUndefined();
  });

  it('is undefined for a symbolic link, even to a regular file', async () => {
    const real = join(dir, 'real');
    await writeFile(real, 'abc');
    const link = join(dir, 'link');
    await symlink(real, link);
    expect(await finishedFileStat(link)).toBeUndefined();
    expect(await regularFileStat(link)).toBeUndefined();
  });

  it('is undefined for a directory', async () => {
    const target = join(dir, 'folder');
    await mkdir(target);
    expect(await finishedFileStat(target)).toBeUndefined();
    expect(await regularFileStat(target)).toBeUndefined();
  });

  it('is undefined while a partial download is beside the target, even a dangling link at its name', async () => {
    const target = join(dir, 'big.iso');
    await writeFile(target, 'abc');
    await writeFile(`${target}.blockfetch`, 'ab');
    expect(await finishedFileStat(target)).toBeUndefined();
    // regularFileStat looks at the file alone.
    expect((await regularFileStat(target))?.size).toBe(3);
    await rm(`${target}.blockfetch`);
    await symlink(join(dir, 'nowhere'), `${target}.blockfetch`);
    expect(await finishedFileStat(target)).toBeUndefined();
  });
});

describe('mtimeMatches', () => {
  const date = 'Tue, 02 Jan 2024 03:04:05 GMT';
  const second = Date.UTC(2024, 0, 2, 3, 4, 5);

  it('is true within the same second, whatever the milliseconds', () => {
    expect(mtimeMatches({ mtimeMs: second }, date)).toBe(true);
    expect(mtimeMatches({ mtimeMs: second + 999.5 }, date)).toBe(true);
  });

  it('is false one second off either way', () => {
    expect(mtimeMatches({ mtimeMs: second + 1000 }, date)).toBe(false);
    expect(mtimeMatches({ mtimeMs: second - 1 }, date)).toBe(false);
  });

  it('is false without a date or with one that cannot be parsed', () => {
    expect(mtimeMatches({ mtimeMs: second }, undefined)).toBe(false);
    expect(mtimeMatches({ mtimeMs: second }, 'not a date')).toBe(false);
    expect(mtimeMatches({ mtimeMs: NaN }, date)).toBe(false);
  });
});

describe('checkDigests and digestsMatch', () => {
  const bytes = Buffer.from('the finished file\n');
  let path: string;
  beforeEach(async () => {
    path = join(dir, 'file');
    await writeFile(path, bytes);
  });

  it('match a file that has the digest', async () => {
    expect(await digestsMatch(path, [{ algorithm: 'sha256', hex: hex('sha256', bytes) }])).toBe(true);
  });

  it('do not match a file that has another', async () => {
    expect(await digestsMatch(path, [{ algorithm: 'sha256', hex: '0'.repeat(64) }])).toBe(false);
  });

  it('compare every algorithm, in the order given, and match only when all do', async () => {
    const sha256 = hex('sha256', bytes);
    const sha512 = hex('sha512', bytes);
    expect(await digestsMatch(path, [{ algorithm: 'sha256', hex: sha256 }, { algorithm: 'sha512', hex: sha512 }])).toBe(true);
    const wrong = [{ algorithm: 'sha512', hex: sha512 }, { algorithm: 'md5', hex: '0'.repeat(32) }, { algorithm: 'sha256', hex: sha256 }] as const;
    expect(await digestsMatch(path, wrong)).toBe(false);
    expect(await checkDigests(path, wrong)).toEqual([
      { algorithm: 'sha512', hex: sha512, expected: sha512, ok: true },
      { algorithm: 'md5', hex: hex('md5', bytes), expected: '0'.repeat(32), ok: false },
      { algorithm: 'sha256', hex: sha256, expected: sha256, ok: true },
    ]);
  });

  it('reject as reading the file does: a missing file is ENOENT', async () => {
    await expect(digestsMatch(join(dir, 'missing'), [{ algorithm: 'sha256', hex: '0'.repeat(64) }])).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
