/**
 * A slice of `npm run torture`'s index fuzzer (bench/torture.ts): valid
 * indexes mutated with fast-check, most of them RESEALED with the real
 * canonical form, parsed, and every accepted one resumed with downloadFile
 * from a loopback server.
 */
import { describe, expect, it } from 'vitest';
import { runIndexFuzz } from '../bench/torture.js';

const untyped = (counts: Readonly<Record<string, number>>): string[] => Object.keys(counts).filter((k) => k.startsWith('untyped'));

describe('index fuzz (slice)', () => {
  it('1,000 cases: the parser answers an index or an IndexError; with the SHA-256 given, a resume ends with the right file or a typed error', async () => {
    const r = await runIndexFuzz({ cases: 1_000, seed: 7, deep: false });
    expect(r.cases).toBe(1_000);
    expect(r.resealed).toBeGreaterThan(600);
    expect(untyped(r.parser), r.examples.join('\n')).toEqual([]);
    expect(r.parser['accepted'] ?? 0).toBeGreaterThan(0);
    expect(untyped(r.withDigestGiven), r.examples.join('\n')).toEqual([]);
    expect(r.withDigestGiven['wrong file'] ?? 0, r.examples.join('\n')).toBe(0);
    // Forged indexes were really resumed, and some were caught only by the digest.
    expect(r.withDigestGiven['right file'] ?? 0).toBeGreaterThan(0);
    expect(r.withDigestGiven['typed BLOCKFETCH_DIGEST_MISMATCH'] ?? 0).toBeGreaterThan(0);
  }, 120_000);

  // Issue 11 item 13: a deeply nested value in a resealed index used to
  // overflow the stack in canonicalJson (an untyped RangeError); the depth
  // pre-scan in index-format.ts makes it BLOCKFETCH_INDEX_CORRUPT.
  it('deeply nested values give an IndexError, never an untyped error (issue 11 item 13)', async () => {
    const r = await runIndexFuzz({ cases: 200, seed: 3, deep: true, rejectedSample: 0 });
    expect(untyped(r.parser), r.examples.join('\n')).toEqual([]);
  }, 120_000);

  // Issue 11 item 5: a digest stored in the index's remote.digest used not to
  // be checked on resume, so a resealed index claiming blocks whose bytes are
  // wrong gave a wrong file with success; every stored digest is now verified.
  it('with the right digest stored in the index and none given, a resume never gives a wrong file (issue 11 item 5)', async () => {
    const r = await runIndexFuzz({ cases: 300, seed: 5, deep: false, rejectedSample: 0 });
    expect(r.withDigestStored['wrong file'] ?? 0, r.examples.join('\n')).toBe(0);
  }, 120_000);
});
