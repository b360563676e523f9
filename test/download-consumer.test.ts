/**
 * `downloadFile(url, target, { consumer })`, stream while saving, in-process
 * against the loopback fault server: the consumer gets the file in order
 * with backpressure (its bytes wait on disk, not in memory), the rename
 * waits for it, a failing consumer stops the download with the partial
 * kept, a digest mismatch fails the stream, and a restart after a changed
 * remote never hands on a byte of the old revision.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { downloadFile, type DownloadFileEvent } from '../src/download-file.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import type { Reader } from '../src/download/reader.js';
import { HttpReader } from '../src/http/http-reader.js';
import { FakeReader } from './helpers/fake-reader.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { MemoryCache } from './helpers/memory-cache.js';
import { payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const SIZE = 12 * MiB;
const DATA = payload(0, SIZE - 1);

let dir: string;
const servers: FaultServer[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-consumer-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function serve(content: Buffer): Promise<FaultServer> {
  const server = await startFaultServer({ content });
  servers.push(server);
  return server;
}

async function sub(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

/** A Writable that keeps what it is given; `hold(i)` may delay the callback of write number `i`. */
function collector(hold?: (index: number) => Promise<void> | undefined): Writable & { chunks: Buffer[]; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  let index = 0;
  const w = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      const held = hold?.(index++);
      if (held === undefined) callback();
      else void held.then(() => callback());
    },
  });
  return Object.assign(w, { chunks, bytes: () => Buffer.concat(chunks) });
}

describe('downloadFile with a consumer', () => {
  it('hands the consumer the file in order, ends it, and renames only after it finished', async () => {
    const server = await serve(DATA);
    const d = await sub('whole');
    const consumer = collector();
    let finishedBeforeRename = false;
    consumer.on('finish', () => (finishedBeforeRename = !existsSync(join(d, 'a.bin'))));
    const result = await downloadFile(server.url, join(d, 'a.bin'), { blockSize: MiB, concurrency: 4, consumer });
    expect(result.size).toBe(SIZE);
    expect(consumer.bytes().equals(DATA)).toBe(true);
    expect(consumer.writableFinished).toBe(true);
    expect(finishedBeforeRename).toBe(true);
    expect((await readFile(join(d, 'a.bin'))).equals(DATA)).toBe(true);
  });

  it('a consumer that stops taking bytes does not stop the download: they wait on disk, not in memory', async () => {
    const server = await serve(DATA);
    const d = await sub('slow');
    // The consumer takes its first chunk, then nothing until the download is done.
    let downloaded!: () => void;
    const done = new Promise<void>((resolve) => (downloaded = resolve));
    const consumer = collector((i) => (i === 1 ? done : undefined));
    const events: DownloadFileEvent[] = [];
    const result = await downloadFile(server.url, join(d, 'b.bin'), {
      blockSize: MiB,
      concurrency: 4,
      consumer,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'done' && e.status.complete) downloaded();
      },
    });
    const wait = events.find((e) => e.type === 'consumer-wait');
    expect(wait).toMatchObject({ type: 'consumer-wait', size: SIZE });
    // Backpressure: the consumer was handed its first 1 MiB chunk and the one it held, no more.
    expect(wait?.type === 'consumer-wait' && wait.streamedBytes).toBeLessThanOrEqual(2 * MiB);
    expect(result.stats.downloadedBytes).toBe(SIZE);
    expect(consumer.bytes().equals(DATA)).toBe(true);
    // The download finished (done) before the rename (finish), and the wait was between them.
    const order = events.map((e) => e.type).filter((t) => t === 'done' || t === 'consumer-wait' || t === 'finish');
    expect(order).toEqual(['done', 'consumer-wait', 'finish']);
  });

  it('a consumer that fails stops the download with an AbortedError, keeps the partial, and the next call streams from byte 0', async () => {
    const server = await serve(DATA);
    const d = await sub('fails');
    const target = join(d, 'c.bin');
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('the extractor ran out of space'));
      },
    });
    const error = await downloadFile(server.url, target, { blockSize: MiB, concurrency: 2, consumer: broken }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'BLOCKFETCH_ABORTED' });
    expect((error as Error).message).toMatch(/consumer stream stopped .*the extractor ran out of space/);
    expect(((error as Error).cause as Error).message).toBe('the extractor ran out of space');
    expect(existsSync(`${target}.blockfetch`)).toBe(true);
    expect(existsSync(target)).toBe(false);

    const again = collector();
    const events: DownloadFileEvent[] = [];
    await downloadFile(server.url, target, { blockSize: MiB, concurrency: 2, consumer: again, onEvent: (e) => events.push(e) });
    const open = events.find((e) => e.type === 'open');
    expect(open?.type === 'open' && open.resumedBytes).toBeGreaterThan(0);
    expect(again.bytes().equals(DATA)).toBe(true);
    expect((await readFile(target)).equals(DATA)).toBe(true);
  });

  it('a digest mismatch fails the call and destroys the consumer with it, though the bytes went out', async () => {
    const server = await serve(DATA);
    const d = await sub('digest');
    const consumer = collector();
    const consumerError = new Promise<unknown>((resolve) => consumer.on('error', resolve));
    const error = await downloadFile(server.url, join(d, 'e.bin'), {
      blockSize: MiB,
      consumer,
      expectedDigest: { algorithm: 'sha256', hex: '0'.repeat(64) },
    }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'BLOCKFETCH_DIGEST_MISMATCH' });
    expect(await consumerError).toBe(error);
    expect(consumer.destroyed).toBe(true);
    expect(consumer.writableFinished).toBe(false);
    expect(consumer.bytes().length).toBeGreaterThan(0);
    expect(existsSync(join(d, 'e.bin'))).toBe(false);
  });

  it('restart after the remote changed streams only the new revision: no cached byte of the old one goes out', async () => {
    const server = await serve(DATA);
    const d = await sub('restart');
    const target = join(d, 'f.bin');
    // First call: stopped once the consumer has 2 MiB (so the old revision is partly on disk).
    const controller = new AbortController();
    const first = collector((i) => {
      if (i === 1) controller.abort();
      return undefined;
    });
    await expect(downloadFile(server.url, target, { blockSize: MiB, concurrency: 2, consumer: first, signal: controller.signal })).rejects.toMatchObject({
      code: 'BLOCKFETCH_ABORTED',
    });
    expect(existsSync(`${target}.blockfetch`)).toBe(true);

    const newer = payload(7, SIZE + 6); // same size, other bytes
    server.setContent(newer);
    const second = collector();
    const events: DownloadFileEvent[] = [];
    await downloadFile(server.url, target, { blockSize: MiB, concurrency: 2, consumer: second, restart: true, onEvent: (e) => events.push(e) });
    expect(events.some((e) => e.type === 'discard')).toBe(true);
    expect(second.bytes().equals(newer)).toBe(true);
    expect((await readFile(target)).equals(newer)).toBe(true);
  });

  it('requests blocks from the front of the file first, so the stream starts with the first request', async () => {
    const server = await serve(DATA);
    const d = await sub('order');
    for (const maxRequestBytes of [MiB, undefined]) {
      const starts: number[] = [];
      // The HttpReader, with every getReader call recorded in the order the downloader made it.
      const createReader = (url: string): Reader =>
        new Proxy(new HttpReader({ url, blockSize: MiB }), {
          get(target, property) {
            if (property === 'getReader') {
              return (from: number, to: number, signal: AbortSignal) => {
                starts.push(from);
                return target.getReader(from, to, signal);
              };
            }
            const value: unknown = Reflect.get(target, property);
            return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
          },
        });
      const consumer = collector();
      const target = join(d, `order-${maxRequestBytes ?? 'default'}.bin`);
      await downloadFile(server.url, target, { blockSize: MiB, concurrency: 4, consumer, createReader, ...(maxRequestBytes === undefined ? {} : { maxRequestBytes }) });
      expect(consumer.bytes().equals(DATA)).toBe(true);
      if (maxRequestBytes === MiB) {
        // One block per request: exactly block 0, 1, 2, ... in that order.
        expect(starts).toEqual(Array.from({ length: SIZE / MiB }, (_, i) => i * MiB));
      } else {
        // Coalesced (an even share per connection, 3 MiB here): still from the front, in order.
        expect(starts.slice(0, 4)).toEqual([0, 3 * MiB, 6 * MiB, 9 * MiB]);
      }
    }
  });

  it('refuses a consumer that is not a Writable, before touching anything', async () => {
    const d = await sub('bad');
    await expect(downloadFile('http://127.0.0.1:1/x', join(d, 'g.bin'), { consumer: {} as unknown as Writable })).rejects.toMatchObject({
      code: 'BLOCKFETCH_INVALID_ARGUMENT',
      message: expect.stringMatching(/option consumer must be a Writable/),
    });
    expect(existsSync(join(d, 'g.bin.blockfetch'))).toBe(false);
  });
});

describe('the tail stream under a consumer', () => {
  it('hands on no cached byte before the run found the remote to be the cached revision', async () => {
    const cache = MemoryCache.create(1000, 100);
    expect((await new CachingDownloader(new FakeReader({ size: 1000 }), cache).run()).complete).toBe(true);
    // The same cache, a remote that changed: the whole file is cached, and stale.
    const changed = new FakeReader({ size: 1000, identity: { etag: '"v2"' } });
    const received: Buffer[] = [];
    // The look answers only after the tail has had 50 turns of the event loop
    // (reads from a MemoryCache take a few): time enough to hand on stale bytes, were it allowed to.
    const look = changed.contentLengthAndBlockSize.bind(changed);
    changed.contentLengthAndBlockSize = async (signal) => {
      for (let turn = 0; turn < 50 && received.length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
      return look(signal);
    };
    const dl = new CachingDownloader(changed, cache);
    const tail = dl.createTailStream();
    const consumed = (async () => {
      for await (const chunk of tail) received.push(chunk as Buffer);
    })();
    const status = await dl.run();
    expect(status.error?.code).toBe('BLOCKFETCH_REMOTE_CHANGED');
    await expect(consumed).rejects.toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
    expect(received).toEqual([]);

    // The unchanged remote: the same cached bytes go out.
    const again = new CachingDownloader(new FakeReader({ size: 1000 }), cache);
    const parts: Buffer[] = [];
    const reading = (async () => {
      for await (const chunk of again.createTailStream()) parts.push(chunk as Buffer);
    })();
    expect((await again.run()).complete).toBe(true);
    await reading;
    expect(Buffer.concat(parts).equals(payload(0, 999))).toBe(true);
  });
});
