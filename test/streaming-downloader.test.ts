/**
 * StreamingDownloader over a scripted Reader: ordering, the memory bound,
 * retries, failures, abort, and the degraded modes. HTTP is covered in
 * streaming-http.test.ts.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ExpectedDigest } from '../src/cache/types.js';
import { sleep } from '../src/download/backoff.js';
import type { ContentInfo, Reader } from '../src/download/reader.js';
import { StreamingDownloader, type StreamingStatus } from '../src/download/streaming-downloader.js';
import {
  AbortedError,
  BlockfetchError,
  DigestMismatchError,
  HttpStatusError,
  InvalidArgumentError,
  RemoteChangedError,
  RetriesExhaustedError,
} from '../src/errors.js';
import { firstMisplaced, payload } from './helpers/payload.js';

/** What one request of the scripted reader does. */
interface Plan {
  /** Wait this long before the body starts. */
  readonly delayMs?: number;
  /** Wait this long before each chunk. */
  readonly chunkDelayMs?: number;
  /** Do not start the body until this settles (or the request is aborted). */
  readonly gate?: Promise<void>;
  /** Fail after sending this many bytes (0: before the body). */
  readonly failAfter?: number;
  /** The error to fail with. @default a socket-reset-like Error (retryable) */
  readonly error?: unknown;
}

interface RequestRecord {
  readonly from: number;
  readonly to: number;
  readonly signal: AbortSignal;
  /** The 1-based attempt for requests starting in the same block. */
  readonly attempt: number;
  sent: number;
  ended: boolean;
}

/**
 * A scripted Reader of the self-describing payload. Records every request,
 * its signal and whether it has ended, and counts requests open at once.
 */
class ScriptedReader implements Reader {
  readonly name = 'scripted://object';
  readonly requests: RequestRecord[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly #attempts = new Map<number, number>();

  constructor(
    readonly size: number,
    readonly blockSize: number,
    readonly options: {
      readonly rangesSupported?: boolean;
      readonly digest?: ExpectedDigest;
      readonly chunkSize?: number | ((from: number) => number);
      readonly plan?: (request: RequestRecord, block: number) => Plan | undefined;
      readonly onRequest?: (request: RequestRecord, block: number) => void;
    } = {},
  ) {}

  async contentLengthAndBlockSize(): Promise<ContentInfo> {
    return {
      contentLength: this.size,
      blockSize: this.blockSize,
      identity: { url: this.name, size: this.size, etag: '"v1"' },
      rangesSupported: this.options.rangesSupported ?? true,
      pinned: true,
    };
  }

  digest(): ExpectedDigest | undefined {
    return this.options.digest;
  }

  get open(): RequestRecord[] {
    return this.requests.filter((r) => !r.ended);
  }

  async getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const block = Math.floor(from / this.blockSize);
    const attempt = (this.#attempts.get(block) ?? 0) + 1;
    this.#attempts.set(block, attempt);
    const record: RequestRecord = { from, to, signal, attempt, sent: 0, ended: false };
    this.requests.push(record);
    this.options.onRequest?.(record, block);
    const plan = this.options.plan?.(record, block) ?? {};
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const end = (): void => {
      if (!record.ended) this.inFlight--;
      record.ended = true;
    };
    try {
      if (plan.gate !== undefined) await untilOrAborted(plan.gate, signal);
      if (plan.delayMs) await sleep(plan.delayMs, signal);
      if (plan.failAfter === 0) throw plan.error ?? resetError();
    } catch (err) {
      end();
      throw err;
    }
    const chunkSize = this.options.chunkSize ?? 4096;
    return (async function* body() {
      try {
        for (let pos = from; pos <= to; ) {
          signal.throwIfAborted();
          if (plan.failAfter !== undefined && record.sent >= plan.failAfter) throw plan.error ?? resetError();
          let n = Math.min(typeof chunkSize === 'number' ? chunkSize : chunkSize(pos), to - pos + 1);
          if (plan.failAfter !== undefined) n = Math.min(n, plan.failAfter - record.sent);
          if (plan.chunkDelayMs) await sleep(plan.chunkDelayMs, signal);
          yield payload(pos, pos + n - 1);
          pos += n;
          record.sent += n;
        }
      } finally {
        end();
      }
    })();
  }
}

function resetError(): Error {
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
}

function untilOrAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    void p.then(resolve);
  });
}

/** A deterministic random source (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fastRetry = { baseDelayMs: 5, maxDelayMs: 20, jitter: 0 } as const;

/** Reads the whole stream through async iteration. */
async function collect(dl: StreamingDownloader): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of dl) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Reads until the stream errors; returns the bytes delivered before and the error. */
async function collectUntilError(dl: StreamingDownloader): Promise<{ bytes: Buffer; error: unknown }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of dl) parts.push(chunk);
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
  throw new Error('the stream ended without an error');
}

function expectExact(bytes: Buffer, size: number): void {
  expect(bytes.length).toBe(size);
  expect(firstMisplaced(bytes, 0)).toBe(-1);
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('StreamingDownloader: order and memory', () => {
  it('a slow consumer never makes it buffer more than window × blockSize, and nothing outside the window is requested', async () => {
    const blockSize = 16 * 1024;
    const size = 40 * blockSize + 999;
    const window = 6;
    let dl!: StreamingDownloader;
    const outsideWindow: number[] = [];
    const reader = new ScriptedReader(size, blockSize, {
      chunkSize: 4096,
      onRequest: (_r, block) => {
        // head = first block not yet fully handed over = streamedBlocks
        if (block >= dl.status().downloadedBlocks + window) outsideWindow.push(block);
      },
    });
    dl = new StreamingDownloader(reader, { concurrency: 3, window, computeDigest: false });
    const bound = window * blockSize;
    const parts: Uint8Array[] = [];
    let maxSeen = 0;
    for await (const chunk of dl) {
      parts.push(chunk);
      maxSeen = Math.max(maxSeen, dl.status().bufferedBytes);
      await sleep(1); // the consumer is much slower than the reader
    }
    const status = dl.status();
    expectExact(Buffer.concat(parts), size);
    expect(outsideWindow).toEqual([]);
    expect(maxSeen).toBeLessThanOrEqual(bound);
    expect(status.memoryBound).toBe(bound);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(bound);
    // The window really filled: the bound is tight, not vacuous.
    expect(status.maxBufferedBytes).toBeGreaterThan((window - 1) * blockSize);
    expect(status.bufferedBytes).toBe(0);
    expect(reader.maxInFlight).toBeLessThanOrEqual(3);
    expect(status).toMatchObject({ complete: true, mode: 'windowed', downloadedBytes: size, blocks: 41, downloadedBlocks: 41 });
  });

  it('a stuck first block stops new requests at the window instead of filling memory', async () => {
    const blockSize = 8 * 1024;
    const size = 100 * blockSize;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const reader = new ScriptedReader(size, blockSize, {
      plan: (_r, block) => (block === 0 ? { gate } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4, computeDigest: false }); // window 8
    const result = collect(dl);
    // Let every other block of the window arrive while block 0 is stuck.
    for (let i = 0; i < 200 && reader.requests.filter((r) => r.ended).length < 7; i++) await sleep(2);
    await sleep(20);
    const blocksAsked = reader.requests.map((r) => Math.floor(r.from / blockSize));
    expect(new Set(blocksAsked)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
    expect(dl.status().bufferedBytes).toBe(7 * blockSize);
    expect(dl.status().maxOutOfOrder).toBe(7);
    release();
    expectExact(await result, size);
    expect(dl.status().maxBufferedBytes).toBeLessThanOrEqual(8 * blockSize);
  });

  it('random per-request delays at concurrency 16: exact output, in order', async () => {
    const random = seeded(42);
    const blockSize = 32 * 1024;
    const size = 200 * blockSize + 12_345;
    const reader = new ScriptedReader(size, blockSize, {
      chunkSize: () => 1 + Math.floor(random() * 9000),
      plan: () => ({ delayMs: Math.floor(random() * 8), chunkDelayMs: random() < 0.3 ? 1 : 0 }),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 16 });
    const bytes = await collect(dl);
    expectExact(bytes, size);
    const status = dl.status();
    expect(status.outOfOrder).toBeGreaterThan(0);
    expect(status.maxOutOfOrder).toBeLessThanOrEqual(31);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(32 * blockSize);
    expect(reader.maxInFlight).toBeLessThanOrEqual(16);
    expect(status.digest).toEqual({ algorithm: 'sha256', hex: sha256(bytes), verified: false });
  });

  it('the readable gives the same bytes, and pipeTo honours a slow writable', async () => {
    const blockSize = 8192;
    const size = 50 * blockSize + 7;
    const viaReadable = new StreamingDownloader(new ScriptedReader(size, blockSize), { concurrency: 4 });
    const parts: Buffer[] = [];
    for await (const chunk of viaReadable.readable) parts.push(chunk as Buffer);
    expectExact(Buffer.concat(parts), size);
    expect(viaReadable.readable).toBe(viaReadable.readable);

    const written: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 4096,
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        setTimeout(done, 1);
      },
    });
    const dl = new StreamingDownloader(new ScriptedReader(size, blockSize), { concurrency: 4, window: 4 });
    const status: StreamingStatus = await dl.pipeTo(slow);
    expectExact(Buffer.concat(written), size);
    expect(status.complete).toBe(true);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(4 * blockSize);
    expect(slow.writableFinished).toBe(true);
  });
});

describe('StreamingDownloader: failures', () => {
  it('block k fails twice then succeeds while k+1..k+8 are done: exact output, resumed where it stopped', async () => {
    const blockSize = 16 * 1024;
    const size = 30 * blockSize;
    const k = 3;
    const finishedBeforeK: number[] = [];
    let kDone = false;
    const reader = new ScriptedReader(size, blockSize, {
      plan: (r, block) => {
        if (block === k && r.attempt === 1) return { failAfter: 5000 }; // part-way
        if (block === k && r.attempt === 2) return { failAfter: 0, delayMs: 30 }; // before the body, once k+8 is done
        if (block === k) return { delayMs: 10 };
        return undefined;
      },
    });
    const original = reader.getReader.bind(reader);
    reader.getReader = async (from, to, signal) => {
      const block = Math.floor(from / blockSize);
      const body = await original(from, to, signal);
      return (async function* () {
        yield* body;
        if (block === k) kDone = true;
        else if (!kDone) finishedBeforeK.push(block);
      })();
    };
    const dl = new StreamingDownloader(reader, { concurrency: 4, window: 16, retry: fastRetry });
    const bytes = await collect(dl);
    expectExact(bytes, size);
    const kRequests = reader.requests.filter((r) => Math.floor(r.from / blockSize) === k);
    expect(kRequests.map((r) => [r.from, r.to])).toEqual([
      [k * blockSize, (k + 1) * blockSize - 1],
      [k * blockSize + 5000, (k + 1) * blockSize - 1], // from the byte it stopped at
      [k * blockSize + 5000, (k + 1) * blockSize - 1],
    ]);
    for (let b = k + 1; b <= k + 8; b++) expect(finishedBeforeK).toContain(b);
    const status = dl.status();
    expect(status.retries).toBe(2);
    expect(status.errors).toBe(2);
    expect(status.outOfOrder).toBeGreaterThanOrEqual(8);
    expect(status.receivedBytes).toBe(size); // nothing fetched twice
  });

  it('when retries run out, every byte before the failure is delivered, then RetriesExhaustedError with the cause', async () => {
    const blockSize = 8192;
    const size = 20 * blockSize;
    const reader = new ScriptedReader(size, blockSize, {
      plan: (r, block) => {
        if (block === 5) return r.attempt === 1 ? { failAfter: 3000 } : { failAfter: 0 };
        if (block < 5) return { delayMs: 20 }; // earlier blocks finish after block 5 gave up
        return undefined;
      },
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4, retry: { ...fastRetry, attemptsPerBlock: 3 } });
    const run = dl.run();
    const { bytes, error } = await collectUntilError(dl);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).attempts).toBe(3);
    expect((error as Error).cause).toMatchObject({ code: 'ECONNRESET' });
    expect(bytes.length).toBe(5 * blockSize + 3000);
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    await expect(run).rejects.toBe(error);
    expect(reader.open).toEqual([]);
    expect(dl.status().bufferedBytes).toBe(0);
  });

  it('a non-retryable error is passed on as is, after the bytes before it', async () => {
    const blockSize = 4096;
    const reader = new ScriptedReader(10 * blockSize, blockSize, {
      plan: (_r, block) => (block === 2 ? { failAfter: 0, error: new HttpStatusError(404, 'http://127.0.0.1/x', 'Not Found') } : undefined),
    });
    const { bytes, error } = await collectUntilError(new StreamingDownloader(reader, { concurrency: 2, retry: fastRetry }));
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(bytes.length).toBe(2 * blockSize);
    expect(reader.requests.filter((r) => r.from === 2 * blockSize)).toHaveLength(1);
  });

  it('a RemoteChangedError errors the stream at once, even with earlier blocks still arriving', async () => {
    const blockSize = 4096;
    const size = 30 * blockSize;
    const changed = new RemoteChangedError('http://127.0.0.1/x', [{ field: 'etag', before: '"v1"', after: '"v2"' }], 0);
    const reader = new ScriptedReader(size, blockSize, {
      plan: (_r, block) => {
        if (block === 0) return { chunkDelayMs: 5 }; // block 0 trickles in
        if (block === 3) return { delayMs: 3, failAfter: 0, error: changed };
        return undefined;
      },
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4, retry: fastRetry });
    const { bytes, error } = await collectUntilError(dl);
    expect(error).toBe(changed);
    expect(bytes.length).toBeLessThan(blockSize); // block 0 was still arriving: the rest was dropped
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    await expect(dl.run()).rejects.toBe(changed);
    expect(reader.open).toEqual([]);
    expect(reader.requests.filter((r) => r.from === 3 * blockSize)).toHaveLength(1); // never retried
    expect(reader.requests.every((r) => r.ended)).toBe(true);
  });

  it('a body that ends short or runs long is retried', async () => {
    const blockSize = 4096;
    const size = 6 * blockSize;
    const reader = new ScriptedReader(size, blockSize);
    const original = reader.getReader.bind(reader);
    let calls = 0;
    reader.getReader = async (from, to, signal) => {
      calls++;
      if (calls === 2) return (async function* () { yield payload(from, from + 99); })(); // short
      if (calls === 3) return (async function* () { yield payload(from, to + 10); })(); // long
      return original(from, to, signal);
    };
    const dl = new StreamingDownloader(reader, { concurrency: 2, retry: fastRetry });
    expectExact(await collect(dl), size);
    expect(dl.status().errors).toBe(2);
  });
});

describe('StreamingDownloader: abort', () => {
  it('abort in the middle stops every request and releases every buffer', async () => {
    const blockSize = 8192;
    const size = 200 * blockSize;
    const reader = new ScriptedReader(size, blockSize, { plan: () => ({ chunkDelayMs: 1 }) });
    const controller = new AbortController();
    const dl = new StreamingDownloader(reader, { concurrency: 6, signal: controller.signal });
    const run = dl.run();
    let received = 0;
    let error: unknown;
    try {
      for await (const chunk of dl) {
        received += chunk.byteLength;
        if (received >= 20 * blockSize && !controller.signal.aborted) {
          expect(reader.open.length).toBeGreaterThan(0);
          controller.abort(new Error('user cancelled'));
        }
      }
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as Error).cause).toMatchObject({ message: 'user cancelled' });
    await expect(run).rejects.toBe(error);
    // After run() settled: no request is open, each one's signal fired or it had ended.
    expect(reader.open).toEqual([]);
    expect(reader.inFlight).toBe(0);
    for (const r of reader.requests) expect(r.signal.aborted || r.sent === r.to - r.from + 1).toBe(true);
    expect(dl.status().bufferedBytes).toBe(0);
    const requestsThen = reader.requests.length;
    await sleep(20);
    expect(reader.requests.length).toBe(requestsThen); // nothing new started
  });

  it('breaking out of the loop, destroying the readable or aborting pipeTo does the same', async () => {
    const blockSize = 4096;
    const size = 100 * blockSize;
    const make = (): ScriptedReader => new ScriptedReader(size, blockSize, { plan: () => ({ chunkDelayMs: 1 }) });

    const r1 = make();
    const d1 = new StreamingDownloader(r1, { concurrency: 4 });
    for await (const _ of d1) break;
    await expect(d1.run()).rejects.toBeInstanceOf(AbortedError);
    expect(r1.open).toEqual([]);
    expect(d1.status().bufferedBytes).toBe(0);

    const r2 = make();
    const d2 = new StreamingDownloader(r2, { concurrency: 4 });
    const readable = d2.readable;
    await new Promise<void>((resolve) => readable.once('data', () => resolve()));
    readable.destroy();
    await expect(d2.run()).rejects.toBeInstanceOf(AbortedError);
    expect(r2.open).toEqual([]);

    const r3 = make();
    const d3 = new StreamingDownloader(r3, { concurrency: 4 });
    const controller = new AbortController();
    const sink = new Writable({
      write(_c, _e, done) {
        if (!controller.signal.aborted) controller.abort();
        done();
      },
    });
    await expect(d3.pipeTo(sink, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(r3.open).toEqual([]);
    expect(sink.destroyed).toBe(true);
  });

  it('an already aborted signal makes no request at all', async () => {
    const reader = new ScriptedReader(10_000, 1000);
    const dl = new StreamingDownloader(reader, { signal: AbortSignal.abort() });
    await expect(collect(dl)).rejects.toBeInstanceOf(AbortedError);
    expect(reader.requests).toEqual([]);
  });
});

describe('StreamingDownloader: degraded modes', () => {
  it('concurrency 1 is one plain getReader(0, size - 1), resumed from the next byte after a failure', async () => {
    const size = 100_003;
    let requests = 0;
    const reader = new ScriptedReader(size, 8192, {
      plan: () => (++requests === 1 ? { failAfter: 40_000 } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 1, retry: fastRetry });
    expectExact(await collect(dl), size);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([
      [0, size - 1],
      [40_000, size - 1],
    ]);
    expect(dl.status()).toMatchObject({ mode: 'single', concurrency: 1, retries: 1, receivedBytes: size, downloadedBlocks: 13 });
    expect(dl.status().maxBufferedBytes).toBeLessThanOrEqual(4096);
  });

  it('rangesSupported false is one stream; after a failure it starts over and skips what was emitted', async () => {
    const size = 50_000;
    const reader = new ScriptedReader(size, 4096, {
      rangesSupported: false,
      plan: (r) => (r.attempt === 1 ? { failAfter: 30_000 } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 8, retry: fastRetry });
    expectExact(await collect(dl), size);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([
      [0, size - 1],
      [0, size - 1],
    ]);
    expect(dl.status()).toMatchObject({ mode: 'single', receivedBytes: size + 30_000, downloadedBytes: size });
  });

  it('an empty object ends at once without a request', async () => {
    const reader = new ScriptedReader(0, 4096);
    const dl = new StreamingDownloader(reader, { concurrency: 8 });
    expect(await collect(dl)).toHaveLength(0);
    expect(reader.requests).toEqual([]);
    const status = await dl.run();
    expect(status).toMatchObject({ complete: true, size: 0, blocks: 0 });
    expect(status.digest?.hex).toBe(sha256(new Uint8Array(0)));
  });

  it('a one-block object is fetched as a single stream', async () => {
    const reader = new ScriptedReader(1000, 4096);
    const dl = new StreamingDownloader(reader, { concurrency: 8 });
    expectExact(await collect(dl), 1000);
    expect(reader.requests).toHaveLength(1);
  });
});

describe('StreamingDownloader: digests and options', () => {
  const size = 64 * 1024 + 5;
  const good = { algorithm: 'sha256', hex: sha256(payload(0, size - 1)) } as const;
  const bad = { algorithm: 'sha256', hex: '0'.repeat(64) } as const;

  it('verifies against the reader digest or the caller digest', async () => {
    const fromReader = new StreamingDownloader(new ScriptedReader(size, 4096, { digest: good }), { concurrency: 4 });
    expectExact(await collect(fromReader), size);
    expect(fromReader.status().digest).toMatchObject({ verified: true, hex: good.hex });

    const fromCaller = new StreamingDownloader(new ScriptedReader(size, 4096, { digest: bad }), {
      concurrency: 4,
      expectedDigest: { algorithm: 'sha256', hex: good.hex.toUpperCase() },
    });
    expectExact(await collect(fromCaller), size);
    expect(fromCaller.status().digest?.verified).toBe(true);
  });

  it('a digest mismatch errors the stream (DigestMismatchError) instead of ending it', async () => {
    for (const concurrency of [1, 4]) {
      const dl = new StreamingDownloader(new ScriptedReader(size, 4096, { digest: bad }), { concurrency });
      const { bytes, error } = await collectUntilError(dl);
      expect(error).toBeInstanceOf(DigestMismatchError);
      expect(error).toMatchObject({ expected: bad.hex, actual: good.hex });
      expect(bytes.length).toBe(size);
      await expect(dl.run()).rejects.toBe(error);
      expect(dl.status().complete).toBe(false);
    }
    const sink = new Writable({ write: (_c, _e, done) => done() });
    const piped = new StreamingDownloader(new ScriptedReader(size, 4096), { concurrency: 4, expectedDigest: bad });
    await expect(piped.pipeTo(sink)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it('computeDigest false skips hashing when there is nothing to verify', async () => {
    const dl = new StreamingDownloader(new ScriptedReader(size, 4096), { concurrency: 4, computeDigest: false });
    await collect(dl);
    expect(dl.status().digest).toBeUndefined();
  });

  it('rejects bad options naming them, and a second consumer', () => {
    const reader = new ScriptedReader(10, 1);
    expect(() => new StreamingDownloader(reader, { concurrency: 0 })).toThrow(/option concurrency must be a whole number >= 1, got 0 \(number\)/);
    expect(() => new StreamingDownloader(reader, { concurrency: 4, window: 3 })).toThrow(/option window .* got 3/);
    expect(() => new StreamingDownloader(reader, { blockSize: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => new StreamingDownloader(reader, { expectedDigest: { algorithm: 'sha256', hex: 'xyz' } })).toThrow(/expectedDigest.hex/);
    const dl = new StreamingDownloader(reader);
    void dl.readable;
    expect(() => dl[Symbol.asyncIterator]()).toThrow(/streams its bytes once/);
    expect(() => new StreamingDownloader(reader).status()).not.toThrow();
  });

  it('a Reader that cannot say its size is retried, then reported', async () => {
    let calls = 0;
    const reader = new ScriptedReader(10_000, 1000);
    reader.contentLengthAndBlockSize = async () => {
      calls++;
      throw new BlockfetchError('BLOCKFETCH_NETWORK', 'connect ECONNREFUSED 127.0.0.1', { retryable: true });
    };
    const dl = new StreamingDownloader(reader, { retry: { ...fastRetry, attemptsPerBlock: 2 } });
    await expect(collect(dl)).rejects.toBeInstanceOf(RetriesExhaustedError);
    expect(calls).toBe(2);
  });
});
