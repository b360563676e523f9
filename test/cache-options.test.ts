/**
 * Option and argument validation in the core (ranges and cache) goes through
 * src/validate.ts: every message names the owner, the option, the value with
 * its type, and what is allowed, and is thrown before anything touches the disk.
 * A digest the index reader would call corrupt is refused by its writers.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { resolveFlushPolicy } from '../src/cache/flush-scheduler.js';
import { decodeIndex, encodeIndex, indexFromRanges, isIndexDigest } from '../src/cache/index-format.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { checkFreeSpace, reserveSpace } from '../src/cache/reserve-space.js';
import { InvalidArgumentError } from '../src/errors.js';
import { blockSizeFor, numBlocks, ranges, validateSizes } from '../src/ranges/byte-range.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-options-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ranges: sizes', () => {
  it('name the argument, the value, its type and the allowed range', () => {
    expect(() => validateSizes(-1, 4)).toThrow(new InvalidArgumentError('contentLength must be a whole number of bytes >= 0, got -1 (number)'));
    expect(() => numBlocks(10, 0)).toThrow(new InvalidArgumentError('blockSize must be a whole number of bytes >= 1, got 0 (number)'));
    expect(() => validateSizes(10, '4' as unknown as number)).toThrow(/blockSize must be a whole number of bytes >= 1, got "4" \(string\)/);
    expect(() => [...ranges(0, 9, 1.5)]).toThrow(new InvalidArgumentError('blockSize must be a whole number of bytes >= 1, got 1.5 (number)'));
  });
});

describe('reserveSpace and checkFreeSpace', () => {
  it('reject a bad size or option before creating the file', async () => {
    const path = join(dir, 'f');
    await expect(reserveSpace(path, 1.5)).rejects.toThrow(
      new InvalidArgumentError('reserveSpace size must be a whole number of bytes >= 0, got 1.5 (number)'),
    );
    await expect(checkFreeSpace(path, -1)).rejects.toThrow(
      new InvalidArgumentError('checkFreeSpace size must be a whole number of bytes >= 0, got -1 (number)'),
    );
    await expect(reserveSpace(path, 10, { concurrency: 0 })).rejects.toThrow(
      new InvalidArgumentError('reserveSpace option concurrency must be a whole number >= 1, got 0 (number)'),
    );
    await expect(reserveSpace(path, 10, { chunkSize: 2 ** 30 })).rejects.toThrow(
      new InvalidArgumentError('reserveSpace option chunkSize must be a whole number of bytes from 1 to 268435456, got 1073741824 (number)'),
    );
    await expect(reserveSpace(path, 10, { method: 'thin' as 'auto' })).rejects.toThrow(
      new InvalidArgumentError('reserveSpace option method must be one of "auto", "fallocate", "zero-fill", "sparse", got "thin" (string)'),
    );
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('cache options', () => {
  it('flush policy: names the field, the value and its type', () => {
    expect(() => resolveFlushPolicy({ flushIntervalMs: -5 })).toThrow(
      new InvalidArgumentError('cache option flushIntervalMs must be a whole number of ms >= 0, got -5 (number)'),
    );
    expect(() => resolveFlushPolicy({ flushBytes: 0.5 })).toThrow(
      new InvalidArgumentError('cache option flushBytes must be a whole number of bytes >= 0, got 0.5 (number)'),
    );
    expect(() => resolveFlushPolicy({ flushTimeBudget: '1' as unknown as number })).toThrow(
      new InvalidArgumentError('cache option flushTimeBudget must be a number above 0 and at most 1, got "1" (string)'),
    );
  });

  it('open: expected sizes and markCached indexes are checked the same way', async () => {
    const dataPath = join(dir, 'd');
    const indexPath = join(dir, 'd.json');
    await expect(LocalDownloadCache.open(dataPath, indexPath, { expectedBlockSize: -1 })).rejects.toThrow(
      new InvalidArgumentError('cache option expectedBlockSize must be a whole number of bytes >= 0, got -1 (number)'),
    );
    await createNewFilesForCache(dataPath, indexPath, 10, 4);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    try {
      expect(() => cache.markCached(3)).toThrow(new InvalidArgumentError('markCached index must be a whole number from 0 to 2, got 3 (number)'));
      expect(() => cache.markCached(-1)).toThrow(/markCached index .* got -1 \(number\)/);
    } finally {
      await cache.close();
    }
  });
});

describe('digests in the index: DIGEST_HEX_LENGTH on both sides', () => {
  const url = 'http://127.0.0.1:1/f';
  const short = { algorithm: 'sha256', hex: 'ab'.repeat(31) } as const;

  it('the reader calls a digest of the wrong length corrupt', () => {
    const ranges = new ByteRanges(10, 4);
    const good = indexFromRanges(ranges, { url, size: 10, digest: { algorithm: 'md5', hex: '0f'.repeat(16) } });
    expect(decodeIndex(encodeIndex(good), 'x').remote?.digest).toEqual({ algorithm: 'md5', hex: '0f'.repeat(16) });
    const bad = indexFromRanges(ranges, { url, size: 10, digest: short });
    expect(() => decodeIndex(encodeIndex(bad), 'x')).toThrow(/"remote.digest" must be .*lower-case hex of its length/);
    expect(isIndexDigest({ algorithm: 'sha512', hex: 'ab'.repeat(64) })).toBe(true);
    expect(isIndexDigest({ algorithm: 'sha512', hex: 'ab'.repeat(32) })).toBe(false);
    expect(isIndexDigest({ algorithm: 'sha1', hex: 'AB'.repeat(20) })).toBe(false);
  });

  it('the writers refuse it up front, so an index blockfetch wrote is one it can read', async () => {
    const dataPath = join(dir, 'd');
    const indexPath = join(dir, 'd.json');
    await expect(createNewFilesForCache(dataPath, indexPath, 10, 4, { identity: { url, size: 10, digest: short } })).rejects.toThrow(
      /createNewFilesForCache identity.digest must be a known algorithm with lower-case hex of its length \(.*sha256: 64.*\), got algorithm "sha256", hex of 62 characters/,
    );
    expect(await readdir(dir)).toEqual([]);
    await createNewFilesForCache(dataPath, indexPath, 10, 4);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    try {
      await expect(cache.setRemoteIdentity({ url, size: 10, digest: short })).rejects.toThrow(/setRemoteIdentity identity.digest must be/);
      await cache.setRemoteIdentity({ url, size: 10, digest: { algorithm: 'sha256', hex: 'ab'.repeat(32) } });
    } finally {
      await cache.close();
    }
    const reopened = await LocalDownloadCache.open(dataPath, indexPath);
    await reopened.close();
  });
});

describe('blockSizeFor', () => {
  it('keeps the preferred size while the file fits the bitmap, and doubles it until it does', () => {
    expect(blockSizeFor(2 ** 30, 2 ** 21)).toBe(2 ** 21);
    expect(blockSizeFor(0, 2 ** 21)).toBe(2 ** 21);
    expect(blockSizeFor(0xffff_ffff * 2 ** 21, 2 ** 21)).toBe(2 ** 21);
    expect(blockSizeFor(0xffff_ffff * 2 ** 21 + 1, 2 ** 21)).toBe(2 ** 22);
    for (const size of [Number.MAX_SAFE_INTEGER, 2 ** 52 + 3, 0xffff_ffff + 1]) {
      expect(() => validateSizes(size, blockSizeFor(size, 1))).not.toThrow();
    }
  });
});
