/**
 * The identity of a mirrored download: how two looks at a set of mirrors
 * are compared (order and subsets resume, a mirror's own validator change
 * is named, a new mirror needs proof), and `remote.mirrors` in the index.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, decodeIndex, encodeIndex, type IndexContents } from '../src/cache/index-format.js';
import type { RemoteIdentity } from '../src/cache/types.js';
import { compareIdentity, mirrorsOf } from '../src/download/identity.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';

const A = 'https://a.example/f.iso';
const B = 'https://b.example/pub/f.iso';
const C = 'https://c.example/f.iso';
const DIGEST = { algorithm: 'sha256', hex: 'ab'.repeat(32) } as const;

/** A two-mirror identity as a MirrorReader records it (different ETags, so a digest proves sameness). */
const recorded: RemoteIdentity = {
  url: A,
  size: 1000,
  digest: DIGEST,
  mirrors: [
    { url: A, etag: '"a-1"' },
    { url: B, etag: '"b-1"', lastModified: 'Sat, 21 Nov 2026 10:00:00 GMT' },
  ],
};

describe('compareIdentity for mirror sets', () => {
  it('the same mirrors in another order, or a subset, are the same remote', () => {
    const reordered: RemoteIdentity = { ...recorded, url: B, mirrors: [...(recorded.mirrors ?? [])].reverse() };
    expect(compareIdentity(recorded, reordered)).toEqual([]);
    expect(compareIdentity(recorded, { url: B, size: 1000, etag: '"b-1"', lastModified: 'Sat, 21 Nov 2026 10:00:00 GMT' })).toEqual([]);
    // A signed query that changed is still the same mirror (same origin and path).
    expect(compareIdentity(recorded, { url: `${A}?sig=2`, size: 1000, etag: '"a-1"' })).toEqual([]);
  });

  it("a mirror whose own validator changed is a change that names the mirror", () => {
    const changed = compareIdentity(recorded, { url: B, size: 1000, etag: '"b-2"', lastModified: 'Sat, 21 Nov 2026 10:00:00 GMT' });
    expect(changed).toEqual([{ field: 'etag', before: `"b-1" at ${B}`, after: '"b-2"' }]);
    expect(compareIdentity(recorded, { ...recorded, size: 1001 })).toContainEqual({ field: 'size', before: '1000', after: '1001' });
  });

  it('a new mirror joins with a recorded digest, or with the strong ETag all recorded mirrors share; else it is a url change', () => {
    expect(compareIdentity(recorded, { url: C, size: 1000, etag: '"c-1"' })).toEqual([]);
    const shared: RemoteIdentity = { url: A, size: 1000, etag: '"s"', mirrors: [{ url: A, etag: '"s"' }, { url: B, etag: '"s"' }] };
    expect(compareIdentity(shared, { url: C, size: 1000, etag: '"s"' })).toEqual([]);
    expect(compareIdentity(shared, { url: C, size: 1000, etag: '"c-1"' })).toEqual([{ field: 'url', before: `${A} ${B}`, after: C }]);
  });

  it('a single-URL partial can be continued with mirrors added (given proof), and a digest change is still seen', () => {
    const single: RemoteIdentity = { url: A, size: 1000, etag: '"a-1"', digest: DIGEST };
    expect(compareIdentity(single, recorded)).toEqual([]);
    expect(mirrorsOf(single)).toEqual([{ url: A, etag: '"a-1"' }]);
    const other = { algorithm: 'sha256', hex: 'cd'.repeat(32) } as const;
    expect(compareIdentity(recorded, { ...recorded, digest: other })).toEqual([{ field: 'digest', before: `sha256:${DIGEST.hex}`, after: `sha256:${other.hex}` }]);
  });
});

describe('remote.mirrors in the index', () => {
  function contents(remote: RemoteIdentity): IndexContents {
    const ranges = new ByteRanges(1000, 512);
    ranges.setBlock(0);
    return {
      contentLength: 1000,
      blockSize: 512,
      numBlocks: 2,
      cachedBlocks: 1,
      cachedBytes: 512,
      remote,
      bitmap: new Uint8Array(ranges.serialize()),
      updatedAt: '2026-12-07T03:00:00.000Z',
    };
  }

  it('round-trips every mirror with its own validators', () => {
    const decoded = decodeIndex(encodeIndex(contents(recorded)), 'x.json');
    expect(decoded.remote).toEqual(recorded);
    const json = JSON.parse(Buffer.from(encodeIndex(contents(recorded))).toString('utf8')) as { remote: Record<string, unknown> };
    expect(json.remote['mirrors']).toEqual(recorded.mirrors);
  });

  it('an index of one URL has no mirrors field, as before', () => {
    const json = JSON.parse(Buffer.from(encodeIndex(contents({ url: A, size: 1000, etag: '"a-1"' }))).toString('utf8')) as { remote: Record<string, unknown> };
    expect('mirrors' in json.remote).toBe(false);
  });

  it('a malformed remote.mirrors is a corrupt index', () => {
    const json = JSON.parse(Buffer.from(encodeIndex(contents(recorded))).toString('utf8')) as Record<string, unknown>;
    for (const mirrors of [[], [{ etag: '"x"' }], [{ url: A, etag: 5 }], 'A B']) {
      const edited: Record<string, unknown> = { ...json, remote: { ...(json['remote'] as object), mirrors } };
      const { checksum: _, ...rest } = edited;
      const sum = `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
      const bytes = Buffer.from(JSON.stringify({ ...rest, checksum: sum }));
      expect(() => decodeIndex(bytes, 'x.json')).toThrow(expect.objectContaining({ code: 'BLOCKFETCH_INDEX_CORRUPT' }));
    }
  });
});
