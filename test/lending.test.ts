/**
 * Lent chunks (`ReadOptions.lend`): a Reader may read later bytes into the
 * memory of a chunk once the consumer asked for the next one. The
 * CachingDownloader asks for that, so it must copy what it keeps: a Reader
 * that scribbles over every chunk the moment the consumer moves on still
 * gives a byte-identical file, on a memory cache and on the real one. And
 * the HTTP range connections really do reuse their read buffers when asked,
 * and never when not. The StreamingDownloader borrows only for `pipeTo`
 * with `reuseBuffers`, and copies into block buffers it reuses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import type { ContentInfo, ReadOptions, Reader } from '../src/download/reader.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { RangeConnections } from '../src/http/range-connections.js';
import { MemoryCache } from './helpers/memory-cache.js';
import { payload } from './helpers/payload.js';

/**
 * Yields every range as views of ONE buffer (3000 bytes unless told). When the consumer
 * asks for the next chunk of a lending read, the buffer is first filled
 * with 0xEE, then with the next bytes: anything the consumer kept of the
 * last chunk is garbage by then. A read that does not lend gets copies.
 */
class ScribblingReader implements Reader {
  readonly name = 'scribbling';
  readonly lends: boolean[] = [];
  readonly #content: Buffer;
  readonly #pinned: boolean;

  readonly #chunkBytes: number;

  /**
   * @param pinned say the requests are pinned (the StreamingDownloader streams one request otherwise)
   * @param chunkBytes the size of the one buffer every chunk is a view of
   */
  constructor(content: Buffer, pinned = false, chunkBytes = 3000) {
    this.#content = content;
    this.#pinned = pinned;
    this.#chunkBytes = chunkBytes;
  }

  async contentLengthAndBlockSize(): Promise<ContentInfo> {
    return { contentLength: this.#content.length, blockSize: 4096, identity: { url: 'scribbling', size: this.#content.length }, rangesSupported: true, pinned: this.#pinned };
  }

  digest(): undefined {
    return undefined;
  }

  async getReader(from: number, to: number, _signal: AbortSignal, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
    const lend = options?.lend === true;
    this.lends.push(lend);
    const content = this.#content;
    const shared = Buffer.alloc(this.#chunkBytes);
    return (async function* () {
      for (let at = from; at <= to; at += shared.length) {
        const end = Math.min(to + 1, at + shared.length);
        if (!lend) {
          yield Buffer.from(content.subarray(at, end));
          continue;
        }
        shared.fill(0xee);
        content.copy(shared, 0, at, end);
        yield shared.subarray(0, end - at);
      }
      shared.fill(0xee);
    })();
  }
}

describe('lent chunks', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('the CachingDownloader asks to borrow, and copies: the file is exact on a memory cache', async () => {
    const content = payload(0, 300_000 - 1);
    const reader = new ScribblingReader(content);
    const cache = MemoryCache.create(content.length, 4096);
    const status = await new CachingDownloader(reader, cache, { concurrency: 4, maxRequestBytes: 64 * 1024 }).run();
    expect(status.complete).toBe(true);
    expect(reader.lends.length).toBeGreaterThan(0);
    expect(reader.lends.every((lend) => lend)).toBe(true);
    expect(Buffer.from(cache.store.data).equals(content)).toBe(true);
  });

  it('and on the real cache, whose writes are made on the main thread', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bf-lending-'));
    const content = payload(0, 1_000_000 - 1);
    const reader = new ScribblingReader(content);
    const path = join(dir, 'f.blockfetch');
    const info = await reader.contentLengthAndBlockSize();
    await createNewFilesForCache(path, `${path}.json`, info.contentLength, info.blockSize);
    const cache = await LocalDownloadCache.open(path, `${path}.json`);
    try {
      const status = await new CachingDownloader(reader, cache, { concurrency: 3, maxRequestBytes: 256 * 1024 }).run();
      expect(status.complete).toBe(true);
      await cache.flush();
    } finally {
      await cache.close();
    }
    expect((await readFile(path)).equals(content)).toBe(true);
  });
});

describe('lent chunks as large as a gather buffer: written from where they are, only by a cache that takes them at once', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const content = payload(0, 3_000_000 - 1);
  const CHUNK = 200 * 1024; // above the 128 KiB gather buffers
  // Large blocks: most chunks end none, so the next chunk is asked for
  // before the writes are awaited (a block's end waits for them).
  const BLOCK = 1024 * 1024;

  it('the real cache (writeDataNow): the file is exact, and no gather copy was made', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bf-lending-'));
    const reader = new ScribblingReader(content, false, CHUNK);
    const path = join(dir, 'f.blockfetch');
    await createNewFilesForCache(path, `${path}.json`, content.length, BLOCK);
    const cache = await LocalDownloadCache.open(path, `${path}.json`);
    let now = 0;
    const writeDataNow = cache.writeDataNow.bind(cache);
    cache.writeDataNow = (data, offset) => {
      now++;
      return writeDataNow(data, offset);
    };
    try {
      const status = await new CachingDownloader(reader, cache, { concurrency: 3, maxRequestBytes: 1024 * 1024 }).run();
      expect(status.complete).toBe(true);
    } finally {
      await cache.close();
    }
    expect(now).toBeGreaterThan(0);
    expect((await readFile(path)).equals(content)).toBe(true);
  });

  it('a cache without writeDataNow gets copies: exact', async () => {
    const cache = MemoryCache.create(content.length, BLOCK);
    const status = await new CachingDownloader(new ScribblingReader(content, false, CHUNK), cache, { concurrency: 3, maxRequestBytes: 1024 * 1024 }).run();
    expect(status.complete).toBe(true);
    expect(Buffer.from(cache.store.data).equals(content)).toBe(true);
  });

  it('has teeth: a writeDataNow that takes the bytes only later (breaking its promise) leaves a wrong file', async () => {
    const cache = MemoryCache.create(content.length, BLOCK);
    const late = cache as MemoryCache & { writeDataNow(data: Uint8Array, offset: number): Promise<void> };
    late.writeDataNow = async (data, offset) => {
      await new Promise(setImmediate); // the reader has scribbled over `data` by now
      await cache.writeData(data, offset);
    };
    await new CachingDownloader(new ScribblingReader(content, false, CHUNK), cache, { concurrency: 3, maxRequestBytes: 1024 * 1024 }).run();
    expect(Buffer.from(cache.store.data).equals(content)).toBe(false);
  });
});

describe('lent chunks in a stream: pipeTo with reuseBuffers', () => {
  const content = payload(0, 300_000 - 1);

  /** A writable that copies each chunk (done with it when its callback runs), or keeps it as given. */
  function sink(keep: boolean): { writable: Writable; chunks: Buffer[] } {
    const chunks: Buffer[] = [];
    const writable = new Writable({
      highWaterMark: 4096,
      write(chunk: Buffer, _encoding, done) {
        chunks.push(keep ? chunk : Buffer.from(chunk));
        setImmediate(done);
      },
    });
    return { writable, chunks };
  }

  it('borrows the reader\'s chunks and copies them: exact bytes into a writable done with each chunk at its callback', async () => {
    const reader = new ScribblingReader(content, true);
    const { writable, chunks } = sink(false);
    const dl = new StreamingDownloader(reader, { concurrency: 4, window: 4, blockSize: 16 * 1024 });
    const status = await dl.pipeTo(writable, { reuseBuffers: true });
    expect(status.mode).toBe('windowed');
    expect(reader.lends.length).toBeGreaterThan(1);
    expect(reader.lends.every((lend) => lend)).toBe(true);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });

  it('really reuses its block buffers: a writable that keeps its chunks sees them overwritten (why the option is off by default)', async () => {
    const { writable, chunks } = sink(true);
    await new StreamingDownloader(new ScribblingReader(content, true), { concurrency: 4, window: 4, blockSize: 16 * 1024 }).pipeTo(writable, { reuseBuffers: true });
    expect(Buffer.concat(chunks).length).toBe(content.length);
    expect(Buffer.concat(chunks).equals(content)).toBe(false);
  });

  it('without reuseBuffers it never borrows, and a writable that keeps its chunks keeps exact bytes', async () => {
    const reader = new ScribblingReader(content, true);
    const { writable, chunks } = sink(true);
    await new StreamingDownloader(reader, { concurrency: 4, window: 4, blockSize: 16 * 1024 }).pipeTo(writable);
    expect(reader.lends.every((lend) => !lend)).toBe(true);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });
});

describe('range connections lend their read buffers only when asked', () => {
  const big = payload(0, 2 * 2 ** 20 - 1);
  let server: { close(): Promise<void>; url: string } | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function bigServer(): Promise<{ close(): Promise<void>; url: string }> {
    const sockets = new Set<Socket>();
    const tcp = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n`);
        socket.end(big);
      });
    });
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const port = (tcp.address() as { port: number }).port;
    return {
      url: `http://127.0.0.1:${port}/big`,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        tcp.close();
        await once(tcp, 'close');
      },
    };
  }

  /** Reads the body keeping every chunk as given (no copy); returns the chunks. */
  async function keepViews(lend: boolean): Promise<Uint8Array[]> {
    server = await bigServer();
    const connections = new RangeConnections({ connectTimeoutMs: 5000, keepAliveTimeoutMs: 5000, maxConnectionsPerOrigin: 64 });
    try {
      const response = await connections.request(new URL(server.url), {}, { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, lend });
      const kept: Uint8Array[] = [];
      for await (const chunk of response!.body) kept.push(chunk);
      return kept;
    } finally {
      connections.destroy();
    }
  }

  it('without lend, every chunk kept is still exactly the bytes it was', async () => {
    const kept = await keepViews(false);
    expect(Buffer.concat(kept).equals(big)).toBe(true);
  });

  it('with lend, chunks kept past the next one are overwritten by later reads: the buffers are reused', async () => {
    const kept = await keepViews(true);
    expect(kept.reduce((sum, c) => sum + c.length, 0)).toBe(big.length);
    const buffers = new Set(kept.map((chunk) => chunk.buffer));
    expect(buffers.size).toBeLessThan(kept.length); // the same memory came back
    expect(Buffer.concat(kept).equals(big)).toBe(false);
  });
});
