import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, statfs, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheFilesExist, createNewFilesForCache, openCacheFiles } from '../src/cache/cache-files.js';
import { IndexFile } from '../src/cache/index-file.js';
import { canonicalJson, decodeIndex, encodeIndex, INDEX_FORMAT, type IndexContents } from '../src/cache/index-format.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import type { RemoteIdentity } from '../src/cache/types.js';
import { BlockfetchError, IndexError, NotEnoughSpaceError, type ErrorCode } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { payload } from './helpers/payload.js';

let dir: string;
let dataPath: string;
let indexPath: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-index-'));
  dataPath = join(dir, 'file.bin');
  indexPath = join(dir, 'file.bin.bfindex');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const identity: RemoteIdentity = {
  url: 'http://127.0.0.1:8080/file.bin',
  size: 10_000,
  etag: '"v1-abc"',
  lastModified: 'Sat, 21 Nov 2026 10:00:00 GMT',
  digest: { algorithm: 'sha256', hex: 'ab'.repeat(32) },
};

function contents(over: Partial<IndexContents> = {}): IndexContents {
  const ranges = new ByteRanges(10_000, 4096);
  ranges.setBlock(0);
  ranges.setBlock(2);
  return {
    contentLength: 10_000,
    blockSize: 4096,
    numBlocks: 3,
    cachedBlocks: 2,
    cachedBytes: 4096 + 1808,
    remote: identity,
    bitmap: new Uint8Array(ranges.serialize()),
    updatedAt: '2026-11-21T13:00:00.000Z',
    ...over,
  };
}

/** Re-computes the checksum after a test edited fields, the way a careful forger would. */
function resign(json: Record<string, unknown>): string {
  const { checksum: _, ...rest } = json;
  const sum = `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
  return JSON.stringify({ ...rest, checksum: sum }, null, 2);
}

async function indexJson(): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(indexPath, 'utf8')) as Record<string, unknown>;
}

async function fileHash(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Opens the cache expecting `code`; checks the message, the hint, and that neither file changed. */
async function expectOpenFails(code: ErrorCode, message: RegExp, options = {}): Promise<BlockfetchError> {
  const before = { data: await fileHash(dataPath), index: await readFile(indexPath).catch(() => undefined) };
  const err = await LocalDownloadCache.open(dataPath, indexPath, options).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BlockfetchError);
  const e = err as BlockfetchError;
  expect(e.code).toBe(code);
  expect(e.message).toMatch(message);
  expect(e.hint).toBeTruthy();
  if (e instanceof IndexError) expect(e.path).toBe(indexPath);
  expect(await fileHash(dataPath)).toBe(before.data);
  expect(await readFile(indexPath).catch(() => undefined)).toEqual(before.index);
  // The failed open released the lock: a second try fails the same way, not with BLOCKFETCH_LOCKED.
  await expect(LocalDownloadCache.open(dataPath, indexPath, options)).rejects.toMatchObject({ code });
  return e;
}

describe('index format', () => {
  it('round-trips every field, with and without a remote identity', () => {
    const c = contents();
    expect(decodeIndex(encodeIndex(c), 'x')).toEqual(c);
    const bare = contents({ remote: undefined });
    expect(decodeIndex(encodeIndex(bare), 'x')).toEqual(bare);
    const minimal = contents({ remote: { url: '', size: 10_000 } });
    expect(decodeIndex(encodeIndex(minimal), 'x')).toEqual(minimal);
  });

  it('is readable JSON with a format marker, version 1 and a sha256 checksum', () => {
    const json = JSON.parse(new TextDecoder().decode(encodeIndex(contents()))) as Record<string, unknown>;
    expect(json['format']).toBe(INDEX_FORMAT);
    expect(json['version']).toBe(1);
    expect(json['checksum']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(json['remote']).toEqual(identity);
    expect(typeof json['bitmap']).toBe('string');
  });

  it('checksums canonical JSON: key order and whitespace do not matter', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[1,{"e":3,"f":2}]},"b":1}');
    const json = JSON.parse(new TextDecoder().decode(encodeIndex(contents()))) as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(json).reverse());
    expect(decodeIndex(new TextEncoder().encode(JSON.stringify(reordered)), 'x')).toEqual(contents());
  });

  it('the checksum is the SHA-256 of the canonical JSON, for a small index and for a bitmap larger than one hash update', () => {
    // encodeIndex hashes the canonical JSON in joined pieces: the digest
    // must stay that of the whole text, which every earlier index carries.
    const blocks = 8 * 65_536;
    const ranges = new ByteRanges(blocks * 4096, 4096);
    for (let b = 0; b < blocks; b += 2) ranges.setBlock(b);
    const large = contents({ contentLength: blocks * 4096, numBlocks: blocks, cachedBlocks: blocks / 2, cachedBytes: (blocks / 2) * 4096, bitmap: new Uint8Array(ranges.serialize()) });
    for (const c of [contents(), large]) {
      const json = JSON.parse(new TextDecoder().decode(encodeIndex(c))) as Record<string, unknown>;
      const { checksum, ...rest } = json;
      expect(checksum).toBe(`sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`);
    }
    expect(String((JSON.parse(new TextDecoder().decode(encodeIndex(large))) as Record<string, unknown>)['bitmap']).length).toBeGreaterThan(64 * 1024);
  });

  it('rejects each kind of damage with the right code', () => {
    const code = (bytes: string | Uint8Array): string => {
      try {
        decodeIndex(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, 'x');
        return 'ok';
      } catch (err) {
        expect(err).toBeInstanceOf(IndexError);
        return (err as IndexError).code;
      }
    };
    const good = new TextDecoder().decode(encodeIndex(contents()));
    const json = JSON.parse(good) as Record<string, unknown>;
    expect(code(good)).toBe('ok');
    expect(code('')).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(good.slice(0, good.length / 2))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(new Uint8Array([0xff, 0xfe, 0x00]))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code('{"name":"package","version":"1.0.0"}')).toBe('BLOCKFETCH_INDEX_FOREIGN');
    expect(code('[1,2,3]')).toBe('BLOCKFETCH_INDEX_FOREIGN');
    expect(code('"blockfetch-index"')).toBe('BLOCKFETCH_INDEX_FOREIGN');
    expect(code('null')).toBe('BLOCKFETCH_INDEX_FOREIGN');
    expect(code(resign({ ...json, version: 3 }))).toBe('BLOCKFETCH_INDEX_VERSION');
    expect(code(JSON.stringify({ ...json, version: 7, checksum: 'whatever a newer format does' }))).toBe('BLOCKFETCH_INDEX_VERSION');
    expect(code(resign({ ...json, version: '1' }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(JSON.stringify({ ...json, cachedBlocks: 3 }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    const { checksum: _, ...unsigned } = json;
    expect(code(JSON.stringify(unsigned))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, bitmap: 'not base64!' }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, blockSize: 0 }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, contentLength: -5 }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, numBlocks: 4 }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, remote: 'http://x' }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, remote: { ...identity, digest: { algorithm: 'crc32', hex: '00' } } }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
    expect(code(resign({ ...json, updatedAt: 5 }))).toBe('BLOCKFETCH_INDEX_CORRUPT');
  });

  it('calls a deeply nested value corrupt instead of overflowing the stack (issue 11 item 13)', () => {
    const json = JSON.parse(new TextDecoder().decode(encodeIndex(contents()))) as Record<string, unknown>;
    const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
    const corrupt = (text: string): void => {
      expect(() => decodeIndex(new TextEncoder().encode(text), '/p/i')).toThrow(
        expect.objectContaining({ code: 'BLOCKFETCH_INDEX_CORRUPT', message: expect.stringMatching(/levels deep/) }),
      );
    };
    // A million levels: the checksum writer recursed once per level. The
    // depth is refused before the checksum is even looked at.
    corrupt(JSON.stringify({ ...json, note: 'x' }).replace('"note":"x"', `"note":${nested(1_000_000)}`));
    // Just past the limit, checksum resealed, inside `remote` too.
    corrupt(resign({ ...json, note: JSON.parse(nested(33)) }));
    corrupt(resign({ ...json, remote: { ...identity, extra: JSON.parse(nested(40)) } }));
    // Brackets inside strings (escaped quotes included) are not nesting.
    const stringy = resign({ ...json, note: `\\"${'['.repeat(100)}"\\` });
    expect(() => decodeIndex(new TextEncoder().encode(stringy), '/p/i')).not.toThrow();
  });

  it('messages say what is wrong', () => {
    const good = JSON.parse(new TextDecoder().decode(encodeIndex(contents()))) as Record<string, unknown>;
    expect(() => decodeIndex(new TextEncoder().encode(JSON.stringify({ ...good, cachedBlocks: 3 })), '/p/i')).toThrow(
      /\/p\/i: index file is corrupt: checksum mismatch/,
    );
    expect(() => decodeIndex(new TextEncoder().encode(resign({ ...good, version: 3 })), '/p/i')).toThrow(/version 3 is newer/);
  });
});

describe('createNewFilesForCache / cacheFilesExist / openCacheFiles', () => {
  it('creates a data file of the full size and an empty index, identity included', async () => {
    expect(await cacheFilesExist(dataPath, indexPath)).toEqual({ data: false, index: false });
    await createNewFilesForCache(dataPath, indexPath, 10_000, 4096, { identity });
    expect(await cacheFilesExist(dataPath, indexPath)).toEqual({ data: true, index: true });
    expect((await readFile(dataPath)).length).toBe(10_000);
    const json = await indexJson();
    expect(json).toMatchObject({ contentLength: 10_000, blockSize: 4096, numBlocks: 3, cachedBlocks: 0, cachedBytes: 0, remote: identity });
    // No temp file is left behind, and no lock.
    expect((await readdir(dir)).sort()).toEqual(['file.bin', 'file.bin.bfindex']);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    expect(cache.remoteIdentity()).toEqual(identity);
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 0, blocks: 0 });
    await cache.close();
  });

  it('refuses to replace an existing cache unless told to, and changes nothing when refusing', async () => {
    await createNewFilesForCache(dataPath, indexPath, 10_000, 4096);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    await cache.writeAt(payload(0, 4095), 0);
    await cache.close();
    const before = { data: await fileHash(dataPath), index: await readFile(indexPath) };
    const err = await createNewFilesForCache(dataPath, indexPath, 20_000, 4096).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_TARGET_EXISTS');
    expect((err as BlockfetchError).hint).toMatch(/resume|overwrite/);
    expect(await fileHash(dataPath)).toBe(before.data);
    expect(await readFile(indexPath)).toEqual(before.index);
    // Only the data file left (an index lost): still refused.
    await unlink(indexPath);
    await expect(createNewFilesForCache(dataPath, indexPath, 20_000, 4096)).rejects.toMatchObject({ code: 'BLOCKFETCH_TARGET_EXISTS' });

    await createNewFilesForCache(dataPath, indexPath, 20_000, 4096, { overwrite: true });
    expect((await readFile(dataPath)).length).toBe(20_000);
    expect(await indexJson()).toMatchObject({ contentLength: 20_000, cachedBlocks: 0 });
  });

  it('an overwrite that does not fit is refused before the old cache is touched', async () => {
    await createNewFilesForCache(dataPath, indexPath, 10_000, 4096);
    const before = { data: await fileHash(dataPath), index: await readFile(indexPath) };
    const free = await statfs(dir);
    const tooBig = free.bavail * free.bsize + 1024 ** 4;
    const err = await createNewFilesForCache(dataPath, indexPath, tooBig, 1024 ** 2, { overwrite: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotEnoughSpaceError);
    expect(await fileHash(dataPath)).toBe(before.data);
    expect(await readFile(indexPath)).toEqual(before.index);
  });

  it('an empty file makes a valid, complete cache', async () => {
    await createNewFilesForCache(dataPath, indexPath, 0, 4096);
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    expect(cache.complete()).toBe(true);
    expect(cache.contentLengthAndBlockSize()).toEqual({ contentLength: 0, blockSize: 4096 });
    await cache.close();
  });

  it('rejects bad sizes before touching the disk', async () => {
    await expect(createNewFilesForCache(dataPath, indexPath, -1, 4096)).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
    await expect(createNewFilesForCache(dataPath, indexPath, 10, 0)).rejects.toThrow(/blockSize/);
    await expect(createNewFilesForCache(dataPath, indexPath, 10, 4, { identity: { url: 'u', size: 11 } })).rejects.toThrow(/identity.size 11/);
    await expect(createNewFilesForCache(dataPath, dataPath, 10, 4)).rejects.toThrow(/must be different paths/);
    expect(await cacheFilesExist(dataPath, indexPath)).toEqual({ data: false, index: false });
  });

  it('openCacheFiles and open() report missing files as BLOCKFETCH_CACHE_MISSING', async () => {
    await expect(openCacheFiles(dataPath, indexPath)).rejects.toMatchObject({ code: 'BLOCKFETCH_CACHE_MISSING' });
    await createNewFilesForCache(dataPath, indexPath, 100, 10);
    await unlink(indexPath);
    const err = await LocalDownloadCache.open(dataPath, indexPath).catch((e: unknown) => e);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_CACHE_MISSING');
    expect((err as BlockfetchError).message).toContain(indexPath);
    await writeFile(indexPath, '{}');
    await unlink(dataPath);
    await expect(LocalDownloadCache.open(dataPath, indexPath)).rejects.toThrow(/data file .* not found/);
    // IndexFile.load on its own says the same for a missing index.
    await expect(new IndexFile(join(dir, 'nope')).load()).rejects.toMatchObject({ code: 'BLOCKFETCH_CACHE_MISSING' });
  });
});

describe('opening a damaged cache: a typed error, nothing changed', () => {
  beforeEach(async () => {
    await createNewFilesForCache(dataPath, indexPath, 10_000, 4096, { identity });
    const cache = await LocalDownloadCache.open(dataPath, indexPath);
    await cache.writeAt(payload(0, 4095), 0);
    await cache.writeAt(payload(8192, 9999), 8192);
    await cache.close();
  });

  it('a good one opens with its blocks', async () => {
    const cache = await LocalDownloadCache.open(dataPath, indexPath, { expectedContentLength: 10_000, expectedBlockSize: 4096 });
    expect(cache.cachedBytesAndBlocks()).toEqual({ bytes: 4096 + 1808, blocks: 2 });
    await cache.close();
  });

  it('empty index (truncated to 0)', async () => {
    await truncate(indexPath, 0);
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /empty \(truncated\)/);
  });

  it('truncated index', async () => {
    const bytes = await readFile(indexPath);
    await writeFile(indexPath, bytes.subarray(0, bytes.length - 40));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /not valid JSON.*truncated/);
  });

  it('a file far larger than any index (the data file given as the index) is refused without reading it', async () => {
    await truncate(indexPath, 800 * 1024 * 1024); // sparse: costs no disk
    const data = await fileHash(dataPath);
    const err = await LocalDownloadCache.open(dataPath, indexPath).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IndexError);
    expect((err as IndexError).code).toBe('BLOCKFETCH_INDEX_FOREIGN');
    expect((err as IndexError).message).toMatch(/838860800 bytes, more than .* larger than any index can be/);
    expect((err as IndexError).hint).toMatch(/check the index path/);
    expect(await fileHash(dataPath)).toBe(data);
    expect((await stat(indexPath)).size).toBe(800 * 1024 * 1024);
  });

  it('bad JSON', async () => {
    await writeFile(indexPath, '{"format": "blockfetch-index", oops}');
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /not valid JSON/);
  });

  it('foreign JSON', async () => {
    await writeFile(indexPath, JSON.stringify({ name: 'some-package', version: '1.0.0' }));
    const err = await expectOpenFails('BLOCKFETCH_INDEX_FOREIGN', /not a blockfetch index/);
    expect(err).toBeInstanceOf(IndexError);
  });

  it('newer version', async () => {
    await writeFile(indexPath, resign({ ...(await indexJson()), version: 3 }));
    await expectOpenFails('BLOCKFETCH_INDEX_VERSION', /version 3 is newer than this blockfetch reads \(2\)/);
  });

  it('bad checksum (a field edited by hand)', async () => {
    await writeFile(indexPath, JSON.stringify({ ...(await indexJson()), cachedBlocks: 3 }));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /checksum mismatch/);
  });

  it('bad base64 bitmap', async () => {
    await writeFile(indexPath, resign({ ...(await indexJson()), bitmap: '@@@@' }));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /"bitmap" must be a base64 string/);
  });

  it('base64 that is not a roaring bitmap', async () => {
    await writeFile(indexPath, resign({ ...(await indexJson()), bitmap: Buffer.from('hello world!').toString('base64') }));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /"bitmap"/);
  });

  it('bitmap bits beyond numBlocks', async () => {
    const big = new ByteRanges(10 * 4096, 4096);
    big.setBlock(0);
    big.setBlock(7);
    const bitmap = Buffer.from(big.serialize()).toString('base64');
    await writeFile(indexPath, resign({ ...(await indexJson()), bitmap, cachedBlocks: 2, cachedBytes: 8192 }));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /sets block 7 .* only 3 blocks/);
  });

  it('counts that disagree with the bitmap', async () => {
    await writeFile(indexPath, resign({ ...(await indexJson()), cachedBlocks: 1, cachedBytes: 4096 }));
    await expectOpenFails('BLOCKFETCH_INDEX_CORRUPT', /bitmap holds 2 blocks/);
  });

  it('data file size differs from contentLength', async () => {
    await truncate(dataPath, 9_999);
    await expectOpenFails('BLOCKFETCH_INDEX_MISMATCH', /is 9999 bytes but the index describes 10000/);
  });

  it('a caller expecting another content length or block size', async () => {
    await expectOpenFails('BLOCKFETCH_INDEX_MISMATCH', /10000 bytes, not the 12345 expected/, { expectedContentLength: 12_345 });
    await expectOpenFails('BLOCKFETCH_INDEX_MISMATCH', /blocks of 4096 bytes, not the 1024 asked for/, { expectedBlockSize: 1024 });
  });

  it('a recorded remote size that differs from the cache', async () => {
    await writeFile(indexPath, resign({ ...(await indexJson()), remote: { ...identity, size: 5 } }));
    await expectOpenFails('BLOCKFETCH_INDEX_MISMATCH', /recorded remote is 5 bytes/);
  });

  it('the index of another cache (another content length)', async () => {
    const otherData = join(dir, 'other.bin');
    const otherIndex = join(dir, 'other.bfindex');
    await createNewFilesForCache(otherData, otherIndex, 20_000, 4096);
    await writeFile(indexPath, await readFile(otherIndex));
    await expectOpenFails('BLOCKFETCH_INDEX_MISMATCH', /is 10000 bytes but the index describes 20000/);
  });
});
