import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RateLimiter, type RateClock } from '../src/download/rate-limiter.js';
import {
  InOrderDigest,
  checkDigest,
  chooseDigest,
  expectedDigestFromBase64,
  normalizeExpectedDigest,
  parseExpectedDigest,
} from '../src/download/digest.js';
import { StatsRecorder } from '../src/download/stats.js';
import { compareIdentity } from '../src/download/identity.js';
import { blocksPerRequest, planRequests, shrinkingBlocksPerRequest } from '../src/download/request-planner.js';
import { HEAD_WAIT_MULTIPLE, REMOTE_ANSWER_MS, RequestSizer } from '../src/download/request-sizer.js';
import { keepLast, median, upperQuartile } from '../src/download/samples.js';
import { DigestMismatchError, InvalidArgumentError } from '../src/errors.js';
import { MemoryCache } from './helpers/memory-cache.js';

/** A clock whose sleeps advance time instantly: rate tests count bytes, not wall time. */
function steppedClock(): RateClock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      slept.push(ms);
      now += ms;
      await Promise.resolve();
    },
  };
}

describe('RateLimiter', () => {
  it('never grants more than burst + rate x elapsed, whatever the chunk sizes', async () => {
    const clock = steppedClock();
    const limiter = new RateLimiter({ bytesPerSecond: 1000, burstBytes: 100, clock });
    const sizes = [1, 50, 99, 100, 101, 250, 7, 1000, 3, 64];
    for (const size of sizes) {
      await limiter.takeBytes(size);
      expect(limiter.grantedBytes).toBeLessThanOrEqual(100 + clock.now() + 1e-9);
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(limiter.grantedBytes).toBe(total);
    // ...and it did not wait much longer than the rate requires either.
    expect(clock.now()).toBeGreaterThanOrEqual(total - 100);
    expect(clock.now()).toBeLessThanOrEqual(total - 100 + sizes.length * 2 + 10);
  });

  it('keeps the bound with several concurrent takers, served in order', async () => {
    const clock = steppedClock();
    const limiter = new RateLimiter({ bytesPerSecond: 10_000, burstBytes: 500, clock });
    const order: number[] = [];
    const violations: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; i < 5; i++) {
          await limiter.takeBytes(300 + worker * 10);
          order.push(worker);
          const allowed = 500 + (clock.now() * 10_000) / 1000;
          if (limiter.grantedBytes > allowed + 1e-6) violations.push(limiter.grantedBytes - allowed);
        }
      }),
    );
    expect(violations).toEqual([]);
    expect(order).toHaveLength(40);
    // FIFO: every worker got its first grant before any got its third.
    expect(new Set(order.slice(0, 8)).size).toBe(8);
  });

  it('limits requests per second', async () => {
    const clock = steppedClock();
    const limiter = new RateLimiter({ requestsPerSecond: 4, clock });
    for (let i = 0; i < 9; i++) await limiter.takeRequest();
    // burst of 1, then one every 250 ms
    expect(clock.now()).toBe(2000);
  });

  it('is unlimited without rates and validates options', async () => {
    const limiter = new RateLimiter();
    expect(limiter.unlimited).toBe(true);
    await limiter.takeBytes(1 << 30);
    expect(limiter.grantedBytes).toBe(1 << 30);
    expect(() => new RateLimiter({ bytesPerSecond: -1 })).toThrow(/bytesPerSecond must be a finite number > 0, got -1 \(number\)/);
    expect(() => new RateLimiter({ bytesPerSecond: 10, burstBytes: 0 })).toThrow(InvalidArgumentError);
    await expect(limiter.takeBytes(1.5)).rejects.toThrow(/takeBytes: bytes/);
  });

  it('ends a wait at once when the signal aborts (real clock)', async () => {
    const limiter = new RateLimiter({ bytesPerSecond: 10, burstBytes: 10 });
    await limiter.takeBytes(10); // empties the bucket
    const ac = new AbortController();
    const started = performance.now();
    const waiting = limiter.takeBytes(10, ac.signal); // would take ~1 s
    const queued = limiter.takeBytes(1, ac.signal); // waits behind it
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await expect(waiting).rejects.toThrow('stop');
    await expect(queued).rejects.toThrow('stop');
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('digest helpers', () => {
  const abc = new TextEncoder().encode('abc');
  const sha256abc = createHash('sha256').update(abc).digest('hex');

  it('hashes in order and verifies', () => {
    const d = new InOrderDigest();
    d.update(abc.subarray(0, 1));
    d.update(abc.subarray(1));
    expect(d.bytes).toBe(3);
    expect(d.finish({ algorithm: 'sha256', hex: sha256abc.toUpperCase() })).toEqual({
      algorithm: 'sha256',
      hex: sha256abc,
      expected: sha256abc,
      verified: true,
    });
    expect(d.finish()).toMatchObject({ verified: false, hex: sha256abc });
  });

  it('throws DigestMismatchError on a mismatch', () => {
    const d = new InOrderDigest('sha256');
    d.update(abc);
    const wrong = { algorithm: 'sha256' as const, hex: '0'.repeat(64) };
    expect(() => d.finish(wrong)).toThrow(DigestMismatchError);
    expect(() => checkDigest('sha256', sha256abc, wrong)).toThrow(/sha256 mismatch: expected 0{64}, got/);
  });

  it('parses and validates expected digests, naming the bad value', () => {
    expect(parseExpectedDigest(`SHA-256:${sha256abc}`)).toEqual({ algorithm: 'sha256', hex: sha256abc });
    expect(() => parseExpectedDigest('sha256:abc')).toThrow(/digest.hex must be 64 hex digits for sha256, got "abc"/);
    expect(() => normalizeExpectedDigest({ algorithm: 'crc32' as 'md5', hex: '00' })).toThrow(/expectedDigest.algorithm must be one of/);
    const b64 = createHash('sha256').update(abc).digest('base64');
    expect(expectedDigestFromBase64('sha256', `:${b64}:`)).toEqual({ algorithm: 'sha256', hex: sha256abc });
  });

  it('prefers the caller, then the remote, else plain sha256', () => {
    const remote = { algorithm: 'md5' as const, hex: 'a'.repeat(32) };
    const caller = { algorithm: 'sha1' as const, hex: 'b'.repeat(40) };
    expect(chooseDigest(caller, remote)).toEqual({ algorithm: 'sha1', expected: caller });
    expect(chooseDigest(undefined, remote)).toEqual({ algorithm: 'md5', expected: remote });
    expect(chooseDigest(undefined, undefined)).toEqual({ algorithm: 'sha256', expected: undefined });
  });
});

describe('StatsRecorder', () => {
  it('keeps done = at start + downloaded, and freezes snapshots', () => {
    let t = 0;
    const rec = new StatsRecorder({ size: 25, blockSize: 10, doneBytes: 10, doneBlocks: 1 }, () => t);
    rec.passStarted();
    rec.requestStarted();
    rec.received(7);
    rec.error();
    rec.retry();
    rec.requestEnded();
    rec.requestStarted();
    rec.received(10);
    rec.blockDone(10);
    t = 42;
    const s = rec.snapshot();
    expect(s).toMatchObject({
      size: 25,
      blocks: 3,
      doneBytesAtStart: 10,
      doneBytes: 20,
      doneBlocks: 2,
      downloadedBytes: 10,
      downloadedBlocks: 1,
      receivedBytes: 17,
      requests: 2,
      inFlight: 1,
      retries: 1,
      errors: 1,
      passes: 1,
      elapsedMs: 42,
    });
    expect(Object.isFrozen(s)).toBe(true);
  });
});

describe('compareIdentity', () => {
  const base = { url: 'https://a/f', size: 10, etag: '"a"', lastModified: 'Mon, 01 Jan 2026 00:00:00 GMT' };
  it('agrees with itself, ignores the URL, and names each change', () => {
    expect(compareIdentity(base, { ...base, url: 'https://mirror/f' })).toEqual([]);
    expect(compareIdentity(base, { ...base, size: 11, etag: '"b"' })).toEqual([
      { field: 'size', before: '10', after: '11' },
      { field: 'etag', before: '"a"', after: '"b"' },
    ]);
  });
  it('treats a recorded field that vanished as a change, a new field as none', () => {
    const { etag: _, ...noEtag } = base;
    expect(compareIdentity(base, noEtag)).toEqual([{ field: 'etag', before: '"a"', after: '' }]);
    expect(compareIdentity(noEtag, base)).toEqual([]);
  });
  it('compares digests of the same algorithm only', () => {
    const d1 = { ...base, digest: { algorithm: 'sha256' as const, hex: 'AA' } };
    expect(compareIdentity(d1, { ...base, digest: { algorithm: 'sha256', hex: 'aa' } })).toEqual([]);
    expect(compareIdentity(d1, { ...base, digest: { algorithm: 'md5', hex: 'bb' } })).toEqual([]);
    expect(compareIdentity(d1, { ...base, digest: { algorithm: 'sha256', hex: 'bb' } })).toEqual([
      { field: 'digest', before: 'sha256:AA', after: 'sha256:bb' },
    ]);
  });
});

describe('request planning', () => {
  it('coalesces up to the byte cap, but never into fewer requests than workers', () => {
    const MiB = 1 << 20;
    expect(blocksPerRequest({ blockSize: MiB, maxRequestBytes: 8 * MiB, outstandingBytes: 1024 * MiB, concurrency: 8 })).toBe(8);
    expect(blocksPerRequest({ blockSize: MiB, maxRequestBytes: 8 * MiB, outstandingBytes: 16 * MiB, concurrency: 8 })).toBe(2);
    expect(blocksPerRequest({ blockSize: MiB, maxRequestBytes: 8 * MiB, outstandingBytes: 3 * MiB, concurrency: 8 })).toBe(1);
    expect(blocksPerRequest({ blockSize: 64 * MiB, maxRequestBytes: 8 * MiB, outstandingBytes: 1e12, concurrency: 8 })).toBe(1);
    expect(blocksPerRequest({ blockSize: MiB, maxRequestBytes: 0, outstandingBytes: 1e12, concurrency: 1 })).toBe(1);
  });

  it('shrinks requests to a share of what is not yet planned, down to 4 MiB (or the first share)', () => {
    const MiB = 1 << 20;
    const sizes = (outstandingMiB: number, concurrency: number): number[] => {
      const next = shrinkingBlocksPerRequest({ blockSize: MiB, maxRequestBytes: 64 * MiB, outstandingBytes: outstandingMiB * MiB, concurrency });
      const out: number[] = [];
      for (let planned = 0; planned < outstandingMiB; ) {
        const blocks = Math.min(next(planned * MiB), outstandingMiB - planned);
        out.push(blocks);
        planned += blocks;
      }
      return out;
    };
    const gib = sizes(1024, 8);
    expect(gib.slice(0, 10)).toEqual([64, 64, 64, 64, 64, 64, 64, 64, 64, 56]); // full requests while 8 shares of 64 MiB remain
    expect(gib.every((blocks, i) => i === 0 || blocks <= (gib[i - 1] as number))).toBe(true);
    expect(gib.slice(-4)).toEqual([4, 4, 4, 2]); // never below 4 MiB but for what is left
    expect(gib.length).toBeLessThan(40); // about as many as equal 64 MiB requests and their tail splits made
    // A small download keeps every worker busy from the start: its first share is its floor.
    expect(sizes(16, 8)).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
  });

  it('lowers each request to the cap it is given when it is planned', () => {
    const MiB = 1 << 20;
    let cap = 4 * MiB;
    const next = shrinkingBlocksPerRequest({ blockSize: MiB, maxRequestBytes: 64 * MiB, outstandingBytes: 1024 * MiB, concurrency: 8, capBytes: () => cap });
    expect(next(0)).toBe(4);
    cap = 40 * MiB;
    expect(next(4 * MiB)).toBe(40);
    cap = 200 * MiB; // never above maxRequestBytes
    expect(next(44 * MiB)).toBe(64);
  });

  it('plans runs of adjacent outstanding blocks, skipping cached ones, lazily', async () => {
    const cache = MemoryCache.create(10 * 100 + 7, 100); // 11 blocks, the last 7 bytes
    for (const b of [2, 3, 7]) await cache.writeAt(new Uint8Array(100), b * 100);
    const plan = planRequests(cache, 3);
    expect(plan.next().value).toEqual({ firstBlock: 0, lastBlock: 1, from: 0, to: 199 });
    // Marking block 5 meanwhile is seen by the rest of the plan.
    await cache.writeAt(new Uint8Array(100), 500);
    expect([...plan]).toEqual([
      { firstBlock: 4, lastBlock: 4, from: 400, to: 499 },
      { firstBlock: 6, lastBlock: 6, from: 600, to: 699 },
      { firstBlock: 8, lastBlock: 10, from: 800, to: 1006 },
    ]);
  });
});

describe('sample windows', () => {
  it('keeps the last few values, and takes their median and upper quartile', () => {
    const values: number[] = [];
    for (const v of [5, 1, 9, 3]) keepLast(values, v, 3);
    expect(values).toEqual([1, 9, 3]);
    expect(median(values)).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(upperQuartile(values)).toBe(9);
    expect(median([])).toBeUndefined();
    expect(upperQuartile([])).toBeUndefined();
  });
});

describe('RequestSizer', () => {
  const MiB = 1 << 20;

  it('asks for the 4 MiB floor until a request has ended', () => {
    expect(new RequestSizer(64 * MiB).capBytes()).toBe(4 * MiB);
    expect(new RequestSizer(MiB).capBytes()).toBe(MiB); // a cap below the floor wins
  });

  it('before any request ended, a first look that idled REMOTE_ANSWER_MS or more asks for the cap', () => {
    const sizer = new RequestSizer(64 * MiB);
    sizer.firstLooked(REMOTE_ANSWER_MS);
    expect(sizer.capBytes()).toBe(64 * MiB);
    sizer.firstLooked(REMOTE_ANSWER_MS - 0.1); // a quicker answer (loopback: under 1 ms)
    expect(sizer.capBytes()).toBe(4 * MiB);
    sizer.firstLooked(undefined); // a reader that did not measure it
    expect(sizer.capBytes()).toBe(4 * MiB);
    const small = new RequestSizer(MiB);
    small.firstLooked(50);
    expect(small.capBytes()).toBe(MiB); // never above the caller's cap
  });

  it('once requests have ended, what they showed wins over the first look', () => {
    const sizer = new RequestSizer(64 * MiB);
    sizer.firstLooked(50);
    for (let i = 0; i < 16; i++) sizer.requestEnded({ idleHeadWaitMs: 0, bytes: 4 * MiB, bodyMs: 40 });
    expect(sizer.capBytes()).toBe(4 * MiB);
  });

  it('sizes requests from the idle head wait and the body rate: 64 times what a connection receives while idle', () => {
    const sizer = new RequestSizer(64 * MiB);
    // A server that waits 20 ms before each head while the process idles 15 ms of it, then sends 40 KB per ms.
    sizer.requestEnded({ idleHeadWaitMs: 15, bytes: 4_000_000, bodyMs: 100 });
    expect(sizer.capBytes()).toBe(Math.floor(HEAD_WAIT_MULTIPLE * 15 * 40_000));
    // A WAN: 100 ms idle before each head, so requests grow to the cap.
    sizer.requestEnded({ idleHeadWaitMs: 100, bytes: 4_000_000, bodyMs: 100 });
    sizer.requestEnded({ idleHeadWaitMs: 100, bytes: 4_000_000, bodyMs: 100 });
    expect(sizer.capBytes()).toBe(64 * MiB);
  });

  it('keeps requests at the floor while the process is busy during head waits (loopback)', () => {
    const sizer = new RequestSizer(64 * MiB);
    for (let i = 0; i < 16; i++) sizer.requestEnded({ idleHeadWaitMs: 0, bytes: 4 * MiB, bodyMs: 40 });
    expect(sizer.capBytes()).toBe(4 * MiB);
    // Idle outliers among many busy waits change nothing: 3 of the last 16.
    for (let i = 0; i < 3; i++) sizer.requestEnded({ idleHeadWaitMs: 500, bytes: 4 * MiB, bodyMs: 600 });
    expect(sizer.capBytes()).toBe(4 * MiB);
  });

  it('takes the upper quartile of the idle waits: waits overlapped by the other connections\' bodies do not shrink requests', () => {
    // A server with 20 ms before each head, 16 connections: a quarter of the
    // waits were idle, the rest overlapped the other requests' bodies.
    const sizer = new RequestSizer(64 * MiB);
    for (let i = 0; i < 12; i++) sizer.requestEnded({ idleHeadWaitMs: 0.5, bytes: 4_000_000, bodyMs: 80 });
    for (let i = 0; i < 4; i++) sizer.requestEnded({ idleHeadWaitMs: 17, bytes: 4_000_000, bodyMs: 80 });
    expect(sizer.capBytes()).toBe(Math.floor(HEAD_WAIT_MULTIPLE * 17 * 50_000));
  });

  it('follows the recent requests: older samples drop out', () => {
    const sizer = new RequestSizer(64 * MiB);
    for (let i = 0; i < 16; i++) sizer.requestEnded({ idleHeadWaitMs: 100, bytes: 4 * MiB, bodyMs: 100 });
    expect(sizer.capBytes()).toBe(64 * MiB);
    for (let i = 0; i < 16; i++) sizer.requestEnded({ idleHeadWaitMs: 0, bytes: 4 * MiB, bodyMs: 40 });
    expect(sizer.capBytes()).toBe(4 * MiB);
  });

  it('ignores requests that tell nothing (no bytes, no time)', () => {
    const sizer = new RequestSizer(64 * MiB);
    sizer.requestEnded({ idleHeadWaitMs: 100, bytes: 0, bodyMs: 100 });
    sizer.requestEnded({ idleHeadWaitMs: 100, bytes: MiB, bodyMs: 0 });
    sizer.requestEnded({ idleHeadWaitMs: Number.NaN, bytes: MiB, bodyMs: 10 });
    expect(sizer.capBytes()).toBe(4 * MiB);
  });
});
