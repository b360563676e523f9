/**
 * The `git-sha1` digest (git's blob id, the Hugging Face Hub's `oid` of a
 * small file) in the core digest machinery and the index: computed as git
 * computes it, checked before the final rename like any digest, and stored
 * in an index whose format version an older blockfetch refuses.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, decodeIndex, encodeIndex, indexVersionFor, type IndexContents } from '../src/cache/index-format.js';
import type { RemoteIdentity } from '../src/cache/types.js';
import { createDigestHash, InOrderDigest, parseExpectedDigest } from '../src/download/digest.js';
import { FileReader } from '../src/download/file-reader.js';
import { downloadFile } from '../src/download-file.js';
import { verifyFile } from '../src/cli/verify.js';
import { BlockfetchError } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { payload } from './helpers/payload.js';

/** What `git hash-object` says: the reference the digest must agree with. */
function gitHashObject(bytes: Buffer): string {
  return execFileSync('git', ['hash-object', '--stdin'], { input: bytes }).toString().trim();
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-gitsha1-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('git-sha1', () => {
  it('is what git hash-object computes, for empty, small and multi-chunk bytes', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from('abc'), payload(0, 300_000)]) {
      const hash = createDigestHash('git-sha1', bytes.length);
      // Fed in several chunks, as the downloaders do.
      for (let at = 0; at < bytes.length; at += 65_536) hash.update(bytes.subarray(at, at + 65_536));
      expect(hash.digest('hex')).toBe(gitHashObject(bytes));
    }
  });

  it('needs the size up front, and InOrderDigest verifies with it', () => {
    expect(() => createDigestHash('git-sha1')).toThrow(/needs the file's size/);
    const bytes = payload(0, 1000);
    const digest = new InOrderDigest('git-sha1', bytes.length);
    digest.update(bytes);
    expect(digest.finish({ algorithm: 'git-sha1', hex: gitHashObject(bytes) }).verified).toBe(true);
    expect(parseExpectedDigest(`git-sha1:${'A'.repeat(40)}`)).toEqual({ algorithm: 'git-sha1', hex: 'a'.repeat(40) });
  });

  it('is checked before the final rename: a wrong blob id keeps the partial and no target', async () => {
    const bytes = payload(0, 200_000);
    const source = join(dir, 'source.bin');
    await writeFile(source, bytes);
    const good = await downloadFile(new FileReader(source), join(dir, 'good.bin'), {
      expectedDigest: { algorithm: 'git-sha1', hex: gitHashObject(bytes) },
    });
    expect(good.digest).toMatchObject({ algorithm: 'git-sha1', verified: true });
    expect((await readFile(join(dir, 'good.bin'))).equals(bytes)).toBe(true);

    const wrong = { algorithm: 'git-sha1', hex: gitHashObject(Buffer.concat([bytes, Buffer.from('x')])) } as const;
    const err = await downloadFile(new FileReader(source), join(dir, 'bad.bin'), { expectedDigest: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockfetchError);
    expect((err as BlockfetchError).code).toBe('BLOCKFETCH_DIGEST_MISMATCH');
    await expect(readFile(join(dir, 'bad.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
    // The index records the blob id, in a version-2 index.
    const index = JSON.parse(await readFile(join(dir, 'bad.bin.blockfetch.json'), 'utf8')) as { version: number; remote: RemoteIdentity };
    expect(index.version).toBe(2);
    expect(index.remote.digest).toEqual(wrong);
  });

  it('verify checks a finished file against it', async () => {
    const bytes = payload(0, 5000);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    const [result] = await verifyFile(path, [{ algorithm: 'git-sha1', hex: gitHashObject(bytes) }]);
    expect(result?.ok).toBe(true);
    await expect(verifyFile(path, [{ algorithm: 'git-sha1', hex: '0'.repeat(40) }])).rejects.toMatchObject({ code: 'BLOCKFETCH_DIGEST_MISMATCH' });
  });
});

describe('the index format version', () => {
  const contents = (remote: RemoteIdentity): IndexContents => ({
    contentLength: 10,
    blockSize: 4,
    numBlocks: 3,
    cachedBlocks: 0,
    cachedBytes: 0,
    remote,
    bitmap: new ByteRanges(10, 4).serialize(),
    updatedAt: '2026-12-07T00:00:00.000Z',
  });
  const sha256 = { algorithm: 'sha256', hex: 'ab'.repeat(32) } as const;
  const blobId = { algorithm: 'git-sha1', hex: 'cd'.repeat(20) } as const;

  it('stays 1 without a git-sha1, so a version-1 reader still reads it', () => {
    const remote = { url: 'https://example.com/f', size: 10, digest: sha256 };
    expect(indexVersionFor(remote)).toBe(1);
    const json = JSON.parse(new TextDecoder().decode(encodeIndex(contents(remote)))) as { version: number };
    expect(json.version).toBe(1);
  });

  it('is 2 with a git-sha1 (digest or extra), which a version-1 reader refuses as newer instead of misreading', () => {
    for (const remote of [
      { url: 'https://example.com/f', size: 10, digest: blobId },
      { url: 'https://example.com/f', size: 10, digest: sha256, extraDigests: [blobId] },
    ]) {
      const bytes = encodeIndex(contents(remote));
      expect((JSON.parse(new TextDecoder().decode(bytes)) as { version: number }).version).toBe(2);
      expect(decodeIndex(bytes, 'x.json').remote).toEqual(remote);
    }
  });

  it('a version-1 index that claims a git-sha1 is corrupt: no version-1 writer ever wrote one', () => {
    const json = JSON.parse(new TextDecoder().decode(encodeIndex(contents({ url: 'u', size: 10, digest: blobId })))) as Record<string, unknown>;
    const { checksum: _, ...body } = { ...json, version: 1 } as Record<string, unknown>;
    const resigned = { ...body, checksum: `sha256:${sha256Hex(canonicalJson(body))}` };
    expect(() => decodeIndex(Buffer.from(JSON.stringify(resigned)), 'x.json')).toThrow(/remote.digest/);
  });
});

function sha256Hex(text: string): string {
  const hash = createDigestHash('sha256');
  hash.update(text);
  return hash.digest('hex');
}
