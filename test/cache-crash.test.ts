/**
 * Crash consistency: run a download-like workload against a LocalDownloadCache
 * on a fake filesystem (test/helpers/crash-fs.ts) that loses any part of
 * what was not fsynced, cut the power at a random operation, reboot, and
 * check that (1) the cache opens, (2) every block the index claims reads
 * back its own bytes, (3) every block covered by a flush() that resolved
 * before the cut is still claimed.
 *
 * A reboot changes the boot id (the cache runs with `bootId: 'boot-1'`,
 * reopens with 'boot-2'), so the blocks the index records as written but
 * not yet fsynced are dropped; half the scenarios run on a slow disk whose
 * data syncs span many index saves, so cuts land while such blocks exist.
 * Kills (kill -9 with the power on, same boot) keep the page cache: there
 * those blocks are trusted, and must read back right too.
 */
import { describe, expect, it } from 'vitest';
import type { CacheFileReadWriter, CacheFileSystem } from '../src/cache/file.js';
import { IndexFile } from '../src/cache/index-file.js';
import { indexFromRanges, type IndexContents } from '../src/cache/index-format.js';
import { LocalDownloadCache, type LocalDownloadCacheOptions } from '../src/cache/local-download-cache.js';
import { BlockfetchError } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { CrashFs } from './helpers/crash-fs.js';
import { seededRandom } from './helpers/random.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const DATA = '/cache/file.bin';
const INDEX = '/cache/file.bin.bfindex';

interface Scenario {
  readonly contentLength: number;
  readonly blockSize: number;
  readonly options: LocalDownloadCacheOptions;
  readonly seed: number;
}

function scenario(seed: number): Scenario {
  const random = seededRandom(seed);
  const blockSize = 4 * (64 + Math.floor(random() * 448)); // 256..2044, a multiple of 4 for the payload check
  const blocks = 8 + Math.floor(random() * 40);
  const contentLength = blocks * blockSize - Math.floor(random() * (blockSize - 1)); // short last block most of the time
  const flushIntervalMs = random() < 0.5 ? 0 : 60_000; // 0: a flush after every mark; 60 s: only by bytes or flush()
  const flushBytes = blockSize * (1 + Math.floor(random() * 6));
  // Mostly without the time budget, so that background flushes happen often
  // enough for cuts to land in them; sometimes with it (real timers then).
  const flushTimeBudget = random() < 0.75 ? 1 : 0.01;
  return { contentLength, blockSize, options: { flushIntervalMs, flushBytes, flushTimeBudget, bootId: 'boot-1' }, seed };
}

/**
 * Half the scenarios on a slow disk: a sync of the data file takes 40 turns
 * of the event loop (an fsync of hundreds of MB under writeback), one of a
 * small index file stays quick.
 */
function crashFsFor(seed: number): CrashFs {
  return new CrashFs(seed % 2 === 0 ? { syncTicks: (path) => (path === DATA ? 40 : 0) } : {});
}

/** A fresh fs holding a newly created, fully durable, empty cache. */
async function freshCache(s: Scenario, fs: CacheFileSystem & { syncAll(): void }): Promise<void> {
  const data = await fs.create(DATA);
  await data.truncate(s.contentLength);
  await data.close();
  const empty = new ByteRanges(s.contentLength, s.blockSize);
  await new IndexFile(INDEX, fs).save(indexFromRanges(empty, undefined, new Date(0)));
  fs.syncAll();
}

interface RunResult {
  /** Blocks that a resolved flush() (or setRemoteIdentity, or close) promised are durable. */
  readonly promised: ReadonlySet<number>;
  /** The identity a resolved setRemoteIdentity promised is durable, if any. */
  readonly identity: string | undefined;
  /** Whether the workload ran to the end (close resolved) before the power went. */
  readonly finished: boolean;
}

/**
 * Downloads every block in a random order, 1-4 at a time: whole blocks with
 * writeAt, or streamed in chunks with writeData + markCached; some blocks
 * are abandoned half-written (a body that broke off); flush() now and then.
 * Stops at the first error; an error while the power is on fails the test.
 */
async function workload(s: Scenario, fs: CacheFileSystem & { powerOff: boolean }, random: () => number): Promise<RunResult> {
  const promised = new Set<number>();
  let identity: string | undefined;
  const cache = await LocalDownloadCache.fromFiles(await fs.openExisting(DATA), new IndexFile(INDEX, fs), s.options);
  const numBlocks = Math.ceil(s.contentLength / s.blockSize);
  const order = Array.from({ length: numBlocks }, (_, i) => i).sort(() => random() - 0.5);
  const marked = new Set<number>();
  const fetchBlock = async (i: number): Promise<void> => {
    const from = i * s.blockSize;
    const to = Math.min(from + s.blockSize, s.contentLength) - 1;
    const roll = random();
    if (roll < 0.1) {
      // Abandoned: part of the body arrived, then the connection broke. Never marked.
      await cache.writeData(payload(from, from + Math.floor((to - from) / 2)), from);
      return;
    }
    if (roll < 0.55) {
      await cache.writeAt(payload(from, to), from);
    } else {
      const cut = from + 1 + Math.floor(random() * (to - from));
      await Promise.all([cache.writeData(payload(from, cut - 1), from), cache.writeData(payload(cut, to), cut)]);
      cache.markCached(i);
    }
    marked.add(i);
  };
  try {
    if (random() < 0.3) {
      await cache.setRemoteIdentity({ url: 'http://127.0.0.1/f', size: s.contentLength, etag: '"x"' });
      identity = '"x"';
      for (const b of marked) promised.add(b);
    }
    for (let i = 0; i < order.length; ) {
      const batch = order.slice(i, i + 1 + Math.floor(random() * 4));
      i += batch.length;
      await Promise.all(batch.map(fetchBlock));
      if (random() < 0.2) {
        const before = [...marked];
        await cache.flush();
        for (const b of before) promised.add(b);
      }
    }
    // Half of the time the abandoned blocks are fetched again (a retry).
    if (random() < 0.5) {
      const br = { from: -1, to: -1 };
      for (let n = cache.nextOutstanding(0, br); n !== -1; n = cache.nextOutstanding(n, br)) {
        await cache.writeAt(payload(br.from, br.to), br.from);
        marked.add(n - 1);
      }
    }
    const before = [...marked];
    await cache.close();
    for (const b of before) promised.add(b);
    return { promised, identity, finished: true };
  } catch (err) {
    if (!fs.powerOff) throw err;
    // Release the timer and handles; the close's own flush fails too, the power is off.
    await cache.close().catch(() => undefined);
    return { promised, identity, finished: false };
  }
}

interface Verdict {
  readonly claimed: number;
  /** Blocks the reopened index named as fsynced (`cachedBlocks`). */
  readonly synced: number;
  /** Blocks it named as written on the boot before (`written.cachedBlocks`; 0 without the field). */
  readonly written: number;
  /** Problems found; empty when the cache is consistent. */
  readonly problems: string[];
}

/** Reopens the cache on the rebooted fs and checks it. */
async function verify(fs: CacheFileSystem, promised: ReadonlySet<number>, identity: string | undefined, bootId: string): Promise<Verdict> {
  const problems: string[] = [];
  let cache: LocalDownloadCache;
  let index: IndexContents;
  try {
    index = await new IndexFile(INDEX, fs).load();
    cache = await LocalDownloadCache.fromFiles(await fs.openExisting(DATA), new IndexFile(INDEX, fs), { bootId });
  } catch (err) {
    return { claimed: 0, synced: 0, written: 0, problems: [`reopen failed: ${err instanceof BlockfetchError ? err.code : ''} ${String(err)}`] };
  }
  const br = { from: -1, to: -1 };
  let claimed = 0;
  for (let n = cache.nextCached(0, br); n !== -1; n = cache.nextCached(n, br)) {
    claimed++;
    const buf = new Uint8Array(br.to - br.from + 1);
    await cache.readAt(buf, br.from);
    const bad = firstMisplaced(buf, br.from);
    if (bad !== -1) problems.push(`block ${n - 1} is claimed but byte ${bad} is wrong`);
  }
  if (identity !== undefined && cache.remoteIdentity()?.etag !== identity) {
    problems.push(`the remote identity was recorded before the cut but reads back as ${JSON.stringify(cache.remoteIdentity())}`);
  }
  for (const b of promised) {
    const check = { from: -1, to: -1 };
    if (cache.nextCached(b, check) !== b + 1) problems.push(`block ${b} was flushed before the cut but is not claimed`);
  }
  // What the live index (saved without fsync, trusted only on its own boot) recorded, if it survived.
  const live = await new IndexFile(INDEX, fs).loadLive();
  await cache.close();
  const liveWritten = Math.max(0, ...live.map((contents) => contents.written?.cachedBlocks ?? 0));
  return { claimed, synced: index.cachedBlocks, written: Math.max(index.written?.cachedBlocks ?? 0, liveWritten), problems };
}

interface CutOptions {
  /** Wraps the fs the workload runs on (a broken cache implementation). */
  readonly wrap?: (fs: CrashFs) => CacheFileSystem & { powerOff: boolean };
  /** 'power cut': reboot (some unsynced data lost) and reopen with a new boot id; 'kill': the writer dies, the power stays on. */
  readonly fault?: 'power cut' | 'kill';
  /** The boot id to reopen with; by default 'boot-2' after a power cut, 'boot-1' after a kill. */
  readonly reopenBootId?: string;
}

/** One scenario: count its operations on a dry run, then cut (or kill) at a random one of them. */
async function cutOnce(seed: number, options: CutOptions = {}) {
  const wrap = options.wrap ?? ((fs: CrashFs) => fs);
  const fault = options.fault ?? 'power cut';
  const s = scenario(seed);
  const dry = crashFsFor(seed);
  await freshCache(s, dry);
  const start = dry.operations;
  await workload(s, wrap(dry), seededRandom(seed * 7919));
  const total = dry.operations - start;

  const random = seededRandom(seed * 104729);
  const fs = crashFsFor(seed);
  await freshCache(s, fs);
  fs.cutAfter(1 + Math.floor(random() * (total + 1))); // sometimes past the end: no cut at all
  const run = await workload(s, wrap(fs), seededRandom(seed * 7919));
  const after = fault === 'kill' ? fs.afterKill() : fs.reboot(random);
  const bootId = options.reopenBootId ?? (fault === 'kill' ? 'boot-1' : 'boot-2');
  const verdict = await verify(after, run.promised, run.identity, bootId);
  return { ...verdict, total, finished: run.finished, promised: run.promised.size };
}

describe('crash consistency (fake fs, random power cuts)', () => {
  it('after each of 400 random power cuts, every claimed block reads back right and no flushed block is lost', async () => {
    let withClaims = 0;
    let cutMidway = 0;
    let savedInBackground = 0;
    let unsyncedDropped = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const r = await cutOnce(seed);
      expect(r.problems, `seed ${seed}`).toEqual([]);
      if (r.claimed > 0) withClaims++;
      if (!r.finished) cutMidway++;
      if (!r.finished && r.claimed > r.promised) savedInBackground++;
      if (r.written > r.synced) unsyncedDropped++;
    }
    // Many cuts came while the index or the live index recorded blocks
    // written but not yet fsynced: the new boot id dropped them, and the
    // checks above held.
    expect(unsyncedDropped).toBeGreaterThan(60);
    // The cuts landed everywhere: most runs were cut before the end, many
    // reopened with blocks claimed, and in many the batched background
    // flushes had saved more than the explicit flush() calls promised.
    // (Seen: 396 cut midway, 226 with claims, 31 saved in background, 132
    // with unsynced blocks dropped. Background saves now record most new
    // blocks as `written`, which a reboot drops, hence fewer than the 124
    // seen when every save fsynced the data first.)
    expect(cutMidway).toBeGreaterThan(300);
    expect(withClaims).toBeGreaterThan(150);
    expect(savedInBackground).toBeGreaterThan(15);
  });

  it('after each of 400 random kills (same boot), every claimed block reads back right, the unsynced ones included', async () => {
    let trustedUnsynced = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const r = await cutOnce(seed, { fault: 'kill' });
      expect(r.problems, `seed ${seed}`).toEqual([]);
      if (r.claimed > r.synced) trustedUnsynced++;
    }
    // The resume kept blocks no fsync had covered yet: what a kill no longer costs.
    expect(trustedUnsynced).toBeGreaterThan(60); // seen: 139 of 400
  });

  it('has teeth: trusting the unsynced blocks after a power cut (the boot id not checked), some cut leaves a claimed block with wrong bytes', async () => {
    const found = await firstProblem({ reopenBootId: 'boot-1' });
    expect(found).toMatch(/is claimed but byte \d+ is wrong/);
  });

  it('has teeth: without the data fsync before the index, some cut leaves a claimed block with wrong bytes', async () => {
    const noDataSync = (fs: CrashFs): CacheFileSystem & { powerOff: boolean } => wrapFs(fs, (path) => path === DATA);
    const found = await firstProblem({ wrap: noDataSync });
    expect(found).toMatch(/is claimed but byte \d+ is wrong/);
  });

  it('has teeth: without the fsync of the temp index before the rename, some cut leaves a torn index', async () => {
    const noTempSync = (fs: CrashFs): CacheFileSystem & { powerOff: boolean } => wrapFs(fs, (path) => path !== DATA);
    const found = await firstProblem({ wrap: noTempSync });
    expect(found).toMatch(/reopen failed: BLOCKFETCH_INDEX_CORRUPT/);
  });
});

async function firstProblem(options: CutOptions): Promise<string | undefined> {
  for (let seed = 1; seed <= 300; seed++) {
    const r = await cutOnce(seed, options);
    if (r.problems.length > 0) return r.problems[0];
  }
  return undefined;
}

/** `fs` with `sync()` made a no-op for the files `skip` selects: a broken cache implementation. */
function wrapFs(fs: CrashFs, skip: (path: string) => boolean): CacheFileSystem & { powerOff: boolean } {
  const wrapFile = (file: CacheFileReadWriter): CacheFileReadWriter =>
    skip(file.name)
      ? {
          name: file.name,
          read: (b, p) => file.read(b, p),
          write: (d, p) => file.write(d, p),
          sync: async () => undefined,
          truncate: (l) => file.truncate(l),
          size: () => file.size(),
          close: () => file.close(),
        }
      : file;
  return {
    get powerOff() {
      return fs.powerOff;
    },
    openExisting: async (p) => wrapFile(await fs.openExisting(p)),
    create: async (p) => wrapFile(await fs.create(p)),
    readFile: (p, max) => fs.readFile(p, max),
    rename: (a, b) => fs.rename(a, b),
    remove: (p) => fs.remove(p),
    syncDir: (d) => fs.syncDir(d),
  };
}
