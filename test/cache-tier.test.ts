/**
 * blockfetch through a real shared cache tier, the way a fleet shares one
 * artifact: nginx as a caching reverse proxy (`proxy_cache` with the slice
 * module, 1 MiB slices) in front of another nginx, the origin. The first
 * download fills the cache; later ones are served from it; and when the
 * origin's file changes in the middle of a download, the result is never a
 * mixed file: a typed error, or a complete file of ONE revision.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadFile } from '../src/download-file.js';
import { BlockfetchError } from '../src/errors.js';
import { payload } from './helpers/payload.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
const V1 = payload(0, SIZE - 1);
/** Every word differs from V1's: it holds its offset plus SIZE. */
const V2 = payload(SIZE, 2 * SIZE - 1);

/** The cache tier's config: the slice recipe from nginx's documentation, cache in the helper's dir. */
function cacheTier(origin: string): { httpConfig: (dir: string) => string; serverConfig: string } {
  return {
    httpConfig: (dir) => `proxy_cache_path ${dir}/cache levels=1:2 keys_zone=fleet:10m max_size=1g inactive=60m use_temp_path=off;`,
    serverConfig: `
    location / {
      slice 1m;
      proxy_cache fleet;
      proxy_cache_key $uri$is_args$args$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 10m;
      proxy_http_version 1.1;
      proxy_pass ${origin};
      add_header X-Cache $upstream_cache_status;
    }`,
  };
}

/** 'v1', 'v2', or 'mixed' (with the first MiB that differs from the majority). */
function revisionOf(data: Buffer): string {
  if (data.equals(V1)) return 'v1';
  if (data.equals(V2)) return 'v2';
  const per: string[] = [];
  for (let at = 0; at < SIZE; at += MiB) {
    const piece = data.subarray(at, at + MiB);
    per.push(piece.equals(V1.subarray(at, at + MiB)) ? '1' : piece.equals(V2.subarray(at, at + MiB)) ? '2' : '?');
  }
  return `mixed (per MiB: ${per.join('')})`;
}

describe('through a shared nginx cache tier (proxy_cache + slice)', () => {
  let origin: NginxServer;
  let cache: NginxServer;
  let dir: string;
  beforeEach(async () => {
    origin = await startNginx({ files: { 'artifact.bin': V1 } });
    cache = await startNginx(cacheTier(origin.origin));
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-tier-'));
  });
  afterEach(async () => {
    await cache?.stop();
    await origin?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('has the slice module (the test would prove nothing without it)', async () => {
    // A cached slice is served with X-Cache; the origin saw 1 MiB slice requests.
    await downloadFile(cache.url('artifact.bin'), join(dir, 'a.bin'));
    const ranges = (await origin.requests()).map((r) => r.range).filter((r) => r !== '');
    expect(ranges.length).toBeGreaterThanOrEqual(SIZE / MiB);
    expect(ranges.every((r) => /^bytes=\d+-\d+$/.test(r))).toBe(true);
    expect(ranges).toContain(`bytes=${MiB}-${2 * MiB - 1}`);
  });

  it('a fleet of downloads: the first fills the cache, the next is served from it, both byte-identical', async () => {
    await downloadFile(cache.url('artifact.bin'), join(dir, 'first.bin'));
    const originRequests = (await origin.requests()).length;
    await downloadFile(cache.url('artifact.bin'), join(dir, 'second.bin'));
    expect(revisionOf(await readFile(join(dir, 'first.bin')))).toBe('v1');
    expect(revisionOf(await readFile(join(dir, 'second.bin')))).toBe('v1');
    // The second run did not reach the origin for bytes: every slice was cached.
    expect((await origin.requests()).length).toBe(originRequests);
  });

  it('the origin file changes mid-download (cache cold): a typed error or one revision, never a mixed file', async () => {
    const target = join(dir, 'changing.bin');
    let changed = false;
    let outcome: string;
    try {
      await downloadFile(cache.url('artifact.bin'), target, {
        // Small requests spread over time, so slices after the change are
        // fetched from the new origin file (nginx reads ahead of a slow client).
        concurrency: 2,
        blockSize: MiB,
        maxRequestBytes: 2 * MiB,
        bytesPerSecond: 12 * MiB,
        onEvent: (e) => {
          if (!changed && e.type === 'progress' && e.stats.doneBytes >= SIZE / 4) {
            changed = true;
            void origin.writeFile('artifact.bin', V2);
          }
        },
      });
      outcome = revisionOf(await readFile(target));
    } catch (err) {
      if (!(err instanceof BlockfetchError)) throw err;
      outcome = `typed ${err.code}`;
    }
    expect(changed).toBe(true);
    expect(outcome).toMatch(/^(v1|v2|typed BLOCKFETCH_\w+)$/);
  });

  it('the origin changes after the cache was warmed by one client, while a second downloads: never a mixed file', async () => {
    // Warm the first half of the file in the cache only (a client that was stopped half-way).
    const half = new AbortController();
    await downloadFile(cache.url('artifact.bin'), join(dir, 'warm.bin'), {
      signal: half.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.stats.doneBytes >= SIZE / 2) half.abort();
      },
    }).catch((err: unknown) => {
      if (!(err instanceof BlockfetchError)) throw err;
    });
    await origin.writeFile('artifact.bin', V2);
    const target = join(dir, 'second.bin');
    let outcome: string;
    try {
      await downloadFile(cache.url('artifact.bin'), target, { concurrency: 4 });
      outcome = revisionOf(await readFile(target));
    } catch (err) {
      if (!(err instanceof BlockfetchError)) throw err;
      outcome = `typed ${err.code}`;
    }
    expect(outcome).toMatch(/^(v1|v2|typed BLOCKFETCH_\w+)$/);
  });
});
