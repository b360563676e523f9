/**
 * MirrorReader against real loopback servers (the scripted fault server,
 * two or three serving the same payload): the Reader contract; bytes spread
 * over every mirror; a mirror that dies mid-way, one at a tenth of the
 * speed, mirrors that disagree, a mirror whose file changes mid-download,
 * and a resume with the mirrors in another order. Byte counts, never times.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExpectedDigest, RemoteIdentity } from '../src/cache/types.js';
import { downloadFile } from '../src/download-file.js';
import { hasCode } from '../src/errors.js';
import { MirrorReader } from '../src/mirrors/mirror-reader.js';
import type { MirrorEvent } from '../src/mirrors/options.js';
import { readerForUrls } from '../src/mirrors/reader-for-urls.js';
import { HttpReader } from '../src/http/http-reader.js';
import { formatInspectReport, inspectDownload } from '../src/cli/inspect.js';
import { runCli } from './cli-helpers.js';
import { startFaultServer, type Fault, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';
import { readerContract } from './helpers/reader-contract.js';
import { startThrottleProxy, type ThrottleProxy } from './helpers/throttle-proxy.js';
import { httpFault, reprDigest } from './helpers/http-faults.js';

function sha256(content: Buffer): ExpectedDigest {
  return { algorithm: 'sha256', hex: createHash('sha256').update(content).digest('hex') };
}

// Two mirrors with different ETags, made safe to mix by a digest: every
// fault is armed on both, so whichever mirror the next request reaches
// suffers it (and a refusal on both is what reaches the caller).
readerContract('MirrorReader over two fault servers', {
  faults: ['cut', 'long', 'stall', 'refuse'],
  sourceFaults: 'transient',
  advertisesDigest: true,
  make: async (content, options = {}) => {
    const headers = options.digest === undefined ? {} : reprDigest(options.digest);
    const servers = [
      await startFaultServer({ content, headers, etag: '"a-1"' }),
      await startFaultServer({ content, headers, etag: '"b-1"' }),
    ];
    const armed: (Fault | undefined)[] = [undefined, undefined];
    servers.forEach((server, i) =>
      server.script(() => {
        const fault = armed[i];
        armed[i] = undefined;
        return fault;
      }),
    );
    const reader = new MirrorReader({ urls: servers.map((s) => s.url), http: { blockSize: 4096 }, expectedDigest: sha256(content) });
    return {
      reader,
      fault: async (fault) => {
        armed.fill(httpFault(fault));
      },
      close: async () => {
        await reader.close();
        await Promise.all(servers.map((s) => s.close()));
      },
    };
  },
});

const SIZE = 8 * 1024 * 1024;
const CONTENT = payload(0, SIZE - 1);
const DIGEST = sha256(CONTENT);
/** Small blocks and requests, so that a download is many requests to spread. */
const SMALL = { blockSize: 128 * 1024, maxRequestBytes: 512 * 1024 } as const;

let dir: string;
let made = 0;
const servers: FaultServer[] = [];
const proxies: ThrottleProxy[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-mirrors-'));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close().catch(() => undefined)));
  await Promise.all(proxies.splice(0).map((p) => p.close().catch(() => undefined)));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function mirror(options: Partial<Parameters<typeof startFaultServer>[0]> & { etag?: string | null } = {}): Promise<FaultServer> {
  const server = await startFaultServer({ content: CONTENT, ...options });
  servers.push(server);
  return server;
}

/** Requests for file bytes a server received: the pinned ones (a first look carries no pin). */
function bodyRequests(server: FaultServer): number {
  return server.requests.filter((r) => r.headers['if-match'] !== undefined || r.headers['if-unmodified-since'] !== undefined).length;
}

function target(): string {
  return join(dir, `out-${++made}.bin`);
}

describe('MirrorReader downloads', () => {
  it('spreads requests over every mirror, each pinned by its own ETag, and the file is exact', async () => {
    const [a, b, c] = [await mirror({ etag: '"a-1"' }), await mirror({ etag: '"b-1"' }), await mirror({ etag: '"c-1"' })];
    const reader = new MirrorReader({ urls: [a.url, b.url, c.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST });
    const out = target();
    try {
      const result = await downloadFile(reader, out, { ...SMALL, concurrency: 6, expectedDigest: DIGEST });
      expect(result.digest?.verified).toBe(true);
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    const stats = reader.stats();
    for (const [i, server] of [a, b, c].entries()) {
      expect(bodyRequests(server), server.url).toBeGreaterThan(0);
      expect(stats[i]?.bytes, server.url).toBeGreaterThan(0);
      // Every ranged request to this mirror carried this mirror's ETag, never another's.
      for (const request of server.requests.slice(1)) expect(request.headers['if-match']).toBe(server.etag);
    }
    expect(stats.reduce((n, s) => n + s.bytes, 0)).toBeGreaterThanOrEqual(SIZE);
  });

  it('a mirror that dies mid-way loses its share to the others; the file is exact', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const events: MirrorEvent[] = [];
    const reader = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST, onEvent: (e) => events.push(e) });
    let killed: Promise<void> | undefined;
    // B dies at its fourth request for file bytes: that connection and every
    // other one it has open are cut, and nothing listens on its port after.
    b.script((req) => {
      if (req.index < 4) return undefined;
      killed ??= b.close();
      return { kind: 'reset' };
    });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST });
    } finally {
      await reader.close();
      await killed;
    }
    expect(killed).toBeDefined();
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    const [statsA, statsB] = reader.stats();
    // B served part of the file, then A served everything after B's death.
    expect(statsB?.bytes).toBeGreaterThan(0);
    expect(statsA?.bytes).toBeGreaterThan(SIZE / 2);
    expect(events.some((e) => e.type === 'mirror-cooldown' && e.mirror === b.url)).toBe(true);
  });

  it('a mirror at a tenth of the speed gets a small share of the bytes', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    // Both behind a throttle, so "fast" is a known rate too: 40 MB/s and 4 MB/s.
    const fast = await startThrottleProxy({ upstreamPort: Number(new URL(a.url).port), bytesPerSecond: 40_000_000 });
    const slow = await startThrottleProxy({ upstreamPort: Number(new URL(b.url).port), bytesPerSecond: 4_000_000 });
    proxies.push(fast, slow);
    const urls = [`http://127.0.0.1:${fast.port}/file`, `http://127.0.0.1:${slow.port}/file`];
    const reader = new MirrorReader({ urls, http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST });
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    const [statsFast, statsSlow] = reader.stats();
    expect(statsSlow?.requests).toBeGreaterThan(0);
    // Counted twice: by the reader, and by the proxies on the wire.
    expect(statsFast?.bytes).toBeGreaterThan(4 * (statsSlow?.bytes ?? 0));
    expect(fast.bytesDown()).toBeGreaterThan(4 * slow.bytesDown());
  });

  it('mirrors that disagree on the size: a clear error naming both, before any download', async () => {
    const a = await mirror();
    const b = await mirror({ content: payload(0, SIZE) }); // one byte longer
    const reader = new MirrorReader({ urls: [a.url, b.url] });
    const out = target();
    try {
      const err = await downloadFile(reader, out).catch((e: unknown) => e);
      expect(hasCode(err, 'BLOCKFETCH_MIRRORS_DISAGREE')).toBe(true);
      expect((err as Error).message).toContain(a.url);
      expect((err as Error).message).toContain(b.url);
      expect((err as Error).message).toMatch(/size/);
    } finally {
      await reader.close();
    }
    await expect(stat(`${out}.blockfetch`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(`${out}.blockfetch.json`)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(bodyRequests(a) + bodyRequests(b)).toBe(0);
  });

  it('mirrors that advertise different digests: an error naming both', async () => {
    const other = sha256(Buffer.from('another file'));
    const a = await mirror({ headers: reprDigest(DIGEST) });
    const b = await mirror({ headers: reprDigest(other) });
    const reader = new MirrorReader({ urls: [a.url, b.url] });
    try {
      const err = await reader.contentLengthAndBlockSize().catch((e: unknown) => e);
      expect(hasCode(err, 'BLOCKFETCH_MIRRORS_DISAGREE')).toBe(true);
      expect((err as Error).message).toContain(a.url);
      expect((err as Error).message).toContain(b.url);
      expect((err as Error).message).toContain(other.hex);
    } finally {
      await reader.close();
    }
  });

  it('a mirror that fails the first look is dropped with an event; the others download', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const gone = await mirror();
    const goneUrl = gone.url;
    await gone.close();
    const events: MirrorEvent[] = [];
    const reader = new MirrorReader({ urls: [goneUrl, a.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST, onEvent: (e) => events.push(e) });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, expectedDigest: DIGEST });
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ type: 'mirror-dropped', mirror: goneUrl, reason: 'look-failed' }));
  });

  it('without a digest or a shared strong ETag, only the first mirror is used', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const events: MirrorEvent[] = [];
    const reader = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize }, onEvent: (e) => events.push(e) });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, concurrency: 4 });
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(bodyRequests(a)).toBeGreaterThan(0);
    expect(bodyRequests(b)).toBe(0);
    expect(events).toContainEqual(expect.objectContaining({ type: 'mirror-dropped', mirror: b.url, reason: 'unproven' }));
  });

  it('mirrors sharing one strong ETag are spread over without a digest', async () => {
    const a = await mirror({ etag: '"same"' });
    const b = await mirror({ etag: '"same"' });
    const reader = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize } });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, concurrency: 4 });
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(bodyRequests(a)).toBeGreaterThan(0);
    expect(bodyRequests(b)).toBeGreaterThan(0);
  });

  it('a mirror whose file changes mid-download (412) is dropped when a digest is known; the file is exact', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const changed = Buffer.from(CONTENT);
    changed.fill(0x55, 1000, 2000);
    b.script((req) => {
      if (req.index === 4) b.setContent(changed, { etag: '"b-2"' });
    });
    const events: MirrorEvent[] = [];
    const reader = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST, onEvent: (e) => events.push(e) });
    const out = target();
    try {
      await downloadFile(reader, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST });
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ type: 'mirror-dropped', mirror: b.url, reason: 'changed' }));
    expect(reader.stats()[1]?.active).toBe(false);
  });

  it('without a digest, a mirror whose file changes stops the download: exit 4, partial kept', async () => {
    const a = await mirror({ etag: '"same"' });
    const b = await mirror({ etag: '"same"' });
    const changed = Buffer.from(CONTENT);
    changed.fill(0x55, 1000, 2000);
    b.script((req) => {
      if (req.index === 3) b.setContent(changed, { etag: '"other"' });
    });
    const out = target();
    const result = await runCli([a.url, '--mirror', b.url, '-o', out, '--block-size', '128KiB', '--request-size', '512KiB', '-c', '4', '--quiet'], { cwd: dir });
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(b.url);
    expect(result.stderr).toMatch(/changed/);
    await expect(stat(`${out}.blockfetch.json`)).resolves.toBeDefined();
  });

  it('blockfetch URL --mirror URL --sha256 HEX: both mirrors serve, the file is exact', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const out = target();
    const result = await runCli([a.url, '--mirror', b.url, '--sha256', DIGEST.hex, '-o', out, '--block-size', '128KiB', '--request-size', '512KiB', '-c', '4', '--quiet'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(bodyRequests(a)).toBeGreaterThan(0);
    expect(bodyRequests(b)).toBeGreaterThan(0);
  });

  it('blockfetch URL --mirror URL without a digest, ETags differing: a note says only the first URL is used', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const out = target();
    const result = await runCli([a.url, '--mirror', b.url, '-o', out, '--block-size', '128KiB', '-c', '4'], { cwd: dir });
    expect(result.code).toBe(0);
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(result.stderr).toMatch(new RegExp(`note: mirror ${b.url.replace(/[.]/g, '\\.')} is not used.*no digest known`));
    expect(bodyRequests(b)).toBe(0);
  });

  it('resumes with the mirrors given in another order', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const out = target();
    const stop = new AbortController();
    // The first run stops when A receives its fourth request for file bytes: blocks before it are on disk.
    a.script((req) => {
      if (req.index === 4) stop.abort();
    });
    const first = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST });
    try {
      const err = await downloadFile(first, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST, signal: stop.signal }).catch((e: unknown) => e);
      expect(hasCode(err, 'BLOCKFETCH_ABORTED')).toBe(true);
    } finally {
      await first.close();
    }
    const index = JSON.parse(await readFile(`${out}.blockfetch.json`, 'utf8')) as { remote: { mirrors: { url: string; etag: string }[] } };
    expect(index.remote.mirrors).toEqual([
      { url: a.url, etag: '"a-1"', lastModified: a.lastModified },
      { url: b.url, etag: '"b-1"', lastModified: b.lastModified },
    ]);
    // inspect shows every mirror with its own ETag.
    const report = formatInspectReport(await inspectDownload(out));
    expect(report).toMatch(new RegExp(`mirror:\\s+${a.url.replace(/[.]/g, '\\.')}\\s+"a-1"`));
    expect(report).toMatch(new RegExp(`mirror:\\s+${b.url.replace(/[.]/g, '\\.')}\\s+"b-1"`));
    a.script(undefined);
    const before = [bodyRequests(a), bodyRequests(b)];
    const second = readerForUrls([b.url, a.url], { http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST });
    try {
      const result = await downloadFile(second, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST });
      expect(result.resumedBytes).toBeGreaterThan(0);
      expect(result.resumedBytes).toBeLessThan(SIZE);
    } finally {
      await second.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    // The second run read from both again.
    expect(bodyRequests(a) - (before[0] ?? 0)).toBeGreaterThan(0);
    expect(bodyRequests(b) - (before[1] ?? 0)).toBeGreaterThan(0);
  });

  it('resumes a mirrored partial from a subset of its mirrors, and refuses a mirror whose ETag changed', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const out = target();
    const stop = new AbortController();
    // The first run stops when A receives its fourth request for file bytes: blocks before it are on disk.
    a.script((req) => {
      if (req.index === 4) stop.abort();
    });
    const first = new MirrorReader({ urls: [a.url, b.url], http: { blockSize: SMALL.blockSize }, expectedDigest: DIGEST });
    try {
      await downloadFile(first, out, { ...SMALL, concurrency: 4, expectedDigest: DIGEST, signal: stop.signal }).catch(() => undefined);
    } finally {
      await first.close();
    }
    a.script(undefined);
    // B now serves another revision: resuming with B is a change, named.
    b.setContent(CONTENT, { etag: '"b-2"' });
    const withB = new HttpReader({ url: b.url, blockSize: SMALL.blockSize });
    try {
      const err = await downloadFile(withB, out, SMALL).catch((e: unknown) => e);
      expect(hasCode(err, 'BLOCKFETCH_REMOTE_CHANGED')).toBe(true);
      expect((err as Error).message).toContain('"b-1"');
    } finally {
      await withB.close();
    }
    // A alone still matches what was recorded for it.
    const onlyA = readerForUrls([a.url], { http: { blockSize: SMALL.blockSize } });
    try {
      const result = await downloadFile(onlyA, out, SMALL);
      expect(result.resumedBytes).toBeGreaterThan(0);
    } finally {
      await onlyA.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
  });

  /**
   * A first run from `urls` that stops at the `stopAt`th request the
   * `servers` see between them (looks included), leaving a partial
   * download. Counted across the servers, not at one of them: how the
   * requests spread over the mirrors depends on their speed, and one
   * mirror's share could end before its count did (CI saw it once).
   */
  async function interruptedRun(servers: FaultServer[], urls: string[], out: string, digest?: ExpectedDigest, stopAt = 5): Promise<void> {
    const stop = new AbortController();
    let seen = 0;
    for (const server of servers) {
      server.script(() => {
        if (++seen === stopAt) stop.abort();
      });
    }
    const reader = new MirrorReader({ urls, http: { blockSize: SMALL.blockSize }, ...(digest === undefined ? {} : { expectedDigest: digest }) });
    try {
      const err = await downloadFile(reader, out, { ...SMALL, concurrency: 4, signal: stop.signal, ...(digest === undefined ? {} : { expectedDigest: digest }) }).catch((e: unknown) => e);
      expect(hasCode(err, 'BLOCKFETCH_ABORTED')).toBe(true);
    } finally {
      await reader.close();
      for (const server of servers) server.script(undefined);
    }
  }

  async function recordedIdentity(out: string): Promise<RemoteIdentity> {
    const remote = (await inspectDownload(out)).remote;
    if (remote === null) throw new Error('no identity recorded');
    return remote;
  }

  it('resuming with the recorded identity: its digest lets differing mirrors mix again, and a mirror that moved since is dropped', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const c = await mirror({ etag: '"c-1"' });
    const out = target();
    // Three looks and about a third of the file's 16 requests.
    await interruptedRun([a, b, c], [a.url, b.url, c.url], out, DIGEST, 9);
    // C is republished (same bytes, new ETag) between the runs.
    c.setContent(CONTENT, { etag: '"c-2"' });
    const before = [bodyRequests(a), bodyRequests(b), bodyRequests(c)];
    const events: MirrorEvent[] = [];
    // No digest given this time: the recorded one is the proof.
    const reader = readerForUrls([c.url, b.url, a.url], { http: { blockSize: SMALL.blockSize }, expected: await recordedIdentity(out), onEvent: (e) => events.push(e) });
    try {
      const result = await downloadFile(reader, out, { ...SMALL, concurrency: 4 });
      expect(result.resumedBytes).toBeGreaterThan(0);
      expect(result.digest?.verified).toBe(true);
    } finally {
      await reader.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ type: 'mirror-dropped', mirror: c.url, reason: 'changed' }));
    expect(bodyRequests(a) - (before[0] ?? 0)).toBeGreaterThan(0);
    expect(bodyRequests(b) - (before[1] ?? 0)).toBeGreaterThan(0);
    expect(bodyRequests(c) - (before[2] ?? 0)).toBe(0);
  });

  it('blockfetch resumes a partial made without proof from the mirror its bytes came from, whatever the order given', async () => {
    const a = await mirror({ etag: '"a-1"' });
    const b = await mirror({ etag: '"b-1"' });
    const out = target();
    await interruptedRun([a], [a.url, b.url], out);
    expect(bodyRequests(b)).toBe(0);
    const result = await runCli([b.url, '--mirror', a.url, '-o', out, '--block-size', '128KiB', '-c', '4'], { cwd: dir });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/resuming/);
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    // B, though given first, never served a byte: the partial's bytes are A's.
    expect(bodyRequests(b)).toBe(0);
  });
});
