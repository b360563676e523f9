/**
 * StreamingDownloader over the shared scripted FakeReader
 * (test/helpers/fake-reader.ts): ordering, the memory bound, retries,
 * failures, abort, and the degraded modes. HTTP is covered in
 * streaming-http.test.ts.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sleep } from '../src/download/backoff.js';
import { RateLimiter } from '../src/download/rate-limiter.js';
import type { Reader } from '../src/download/reader.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import type { StreamingStatus } from '../src/download/streaming-options.js';
import {
  AbortedError,
  DigestMismatchError,
  HttpStatusError,
  InvalidArgumentError,
  RemoteChangedError,
  RetriesExhaustedError,
} from '../src/errors.js';
import { FakeReader, transient } from './helpers/fake-reader.js';
import { seededRandom } from './helpers/random.js';
import { firstMisplaced, payload } from './helpers/payload.js';

/**
 * Wraps the shared FakeReader to record the AbortSignal of each request
 * (`signals[i]` belongs to `fake.requests[i]`) and, with `gateFirstBlock`,
 * to hold every request for block 0 until `release()` (or its abort).
 */
function instrument(fake: FakeReader, options: { gateFirstBlock?: boolean } = {}): {
  reader: Reader;
  signals: AbortSignal[];
  release: () => void;
} {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const signals: AbortSignal[] = [];
  const reader: Reader = {
    name: fake.name,
    contentLengthAndBlockSize: (signal) => fake.contentLengthAndBlockSize(signal),
    digest: () => fake.digest(),
    getReader: async (from, to, signal) => {
      if (options.gateFirstBlock === true && from === 0) {
        await new Promise<void>((resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          void gate.then(resolve);
        });
      }
      const before = fake.requests.length;
      try {
        return await fake.getReader(from, to, signal);
      } finally {
        if (fake.requests.length > before) signals.push(signal);
      }
    },
  };
  return { reader, signals, release };
}

/**
 * No request is in flight, and each one either was served whole, failed on
 * purpose, or had its signal fired.
 */
function expectAllEnded(fake: FakeReader, signals: readonly AbortSignal[]): void {
  expect(fake.open).toBe(0);
  expect(signals).toHaveLength(fake.requests.length);
  fake.requests.forEach((r, i) => {
    if (r.outcome !== 'ok' && r.outcome !== 'fault') expect(signals[i]?.aborted, `request ${i} (${r.from}-${r.to})`).toBe(true);
  });
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
    const reader = new FakeReader({
      size,
      blockSize,
      chunkSize: 4096,
      script: ({ from }) => {
        // The head (first block not yet handed over whole) is downloadedBlocks.
        const block = Math.floor(from / blockSize);
        if (block >= dl.status().downloadedBlocks + window) outsideWindow.push(block);
        return undefined;
      },
    });
    dl = new StreamingDownloader(reader, { concurrency: 3, window, computeDigest: false });
    const bound = window * blockSize;
    const parts: Uint8Array[] = [];
    let maxSeen = 0;
    // Measured independently of the downloader's own counter: bytes the
    // reader's bodies yielded minus bytes the consumer has taken.
    let consumed = 0;
    let maxHeld = 0;
    for await (const chunk of dl) {
      parts.push(chunk);
      consumed += chunk.length;
      const delivered = reader.requests.reduce((n, r) => n + r.delivered, 0);
      maxHeld = Math.max(maxHeld, delivered - consumed);
      maxSeen = Math.max(maxSeen, dl.status().bufferedBytes);
      await sleep(1); // the consumer is much slower than the reader
    }
    const status = dl.status();
    expectExact(Buffer.concat(parts), size);
    expect(outsideWindow).toEqual([]);
    expect(maxHeld).toBeLessThanOrEqual(bound);
    expect(maxHeld).toBeGreaterThan((window - 1) * blockSize); // and the measurement is not vacuous
    expect(maxSeen).toBeLessThanOrEqual(bound);
    expect(status.memoryBound).toBe(bound);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(bound);
    // The window really filled: the bound is tight, not vacuous.
    expect(status.maxBufferedBytes).toBeGreaterThan((window - 1) * blockSize);
    expect(status.bufferedBytes).toBe(0);
    expect(reader.maxOpen).toBeLessThanOrEqual(3);
    expect(status).toMatchObject({ complete: true, mode: 'windowed', downloadedBytes: size, blocks: 41, downloadedBlocks: 41 });
  });

  it('a stuck first block stops new requests at the window instead of filling memory', async () => {
    const blockSize = 8 * 1024;
    const size = 100 * blockSize;
    const fake = new FakeReader({ size, blockSize });
    const { reader, release } = instrument(fake, { gateFirstBlock: true });
    const dl = new StreamingDownloader(reader, { concurrency: 4, computeDigest: false }); // window 8
    const result = collect(dl);
    // Let every other block of the window arrive while block 0 is stuck.
    for (let i = 0; i < 500 && fake.requests.filter((r) => r.outcome === 'ok').length < 7; i++) await sleep(2);
    await sleep(20);
    const blocksAsked = fake.requests.map((r) => Math.floor(r.from / blockSize));
    expect(blocksAsked.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]); // block 0 waits at the gate
    expect(dl.status().bufferedBytes).toBe(7 * blockSize);
    expect(dl.status().maxOutOfOrder).toBe(7);
    release();
    expectExact(await result, size);
    expect(dl.status().maxBufferedBytes).toBeLessThanOrEqual(8 * blockSize);
  });

  it('random per-request delays at concurrency 16: exact output, in order', async () => {
    const random = seededRandom(42);
    const blockSize = 32 * 1024;
    const size = 200 * blockSize + 12_345;
    const reader = new FakeReader({ size, blockSize, chunkSize: 3001, script: () => ({ delayMs: Math.floor(random() * 8) }) });
    const dl = new StreamingDownloader(reader, { concurrency: 16, computeDigest: true });
    const bytes = await collect(dl);
    expectExact(bytes, size);
    const status = dl.status();
    expect(status.outOfOrder).toBeGreaterThan(0);
    expect(status.maxOutOfOrder).toBeLessThanOrEqual(31);
    expect(status.maxBufferedBytes).toBeLessThanOrEqual(32 * blockSize);
    expect(reader.maxOpen).toBeLessThanOrEqual(16);
    expect(status.digest).toEqual({ algorithm: 'sha256', hex: sha256(bytes), verified: false });
  });

  it('the readable gives the same bytes, and pipeTo honours a slow writable', async () => {
    const blockSize = 8192;
    const size = 50 * blockSize + 7;
    const viaReadable = new StreamingDownloader(new FakeReader({ size, blockSize }), { concurrency: 4 });
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
    const dl = new StreamingDownloader(new FakeReader({ size, blockSize }), { concurrency: 4, window: 4 });
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
    const isK = (from: number): boolean => Math.floor(from / blockSize) === k;
    let kAttempts = 0;
    let laterDoneBeforeKSucceeded: number[] = [];
    const reader: FakeReader = new FakeReader({
      size,
      blockSize,
      script: ({ from }) => {
        if (!isK(from)) return undefined;
        kAttempts++;
        if (kAttempts === 1) return { delayMs: 30, endAfter: 5000, errorAfterEnd: transient() }; // part-way
        if (kAttempts === 2) return { refuse: transient() }; // at once
        // Third attempt: by now k+1..k+8 have all arrived.
        laterDoneBeforeKSucceeded = reader.requests
          .filter((r) => r.outcome === 'ok' && r.from > k * blockSize)
          .map((r) => Math.floor(r.from / blockSize));
        return { delayMs: 10 };
      },
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4, window: 16, retry: fastRetry });
    const bytes = await collect(dl);
    expectExact(bytes, size);
    const kRequests = reader.requests.filter((r) => isK(r.from));
    expect(kRequests.map((r) => [r.from, r.to])).toEqual([
      [k * blockSize, (k + 1) * blockSize - 1],
      [k * blockSize + 5000, (k + 1) * blockSize - 1], // from the byte it stopped at
      [k * blockSize + 5000, (k + 1) * blockSize - 1],
    ]);
    for (let b = k + 1; b <= k + 8; b++) expect(laterDoneBeforeKSucceeded).toContain(b);
    const status = dl.status();
    expect(status.retries).toBe(2);
    expect(status.errors).toBe(2);
    expect(status.outOfOrder).toBeGreaterThanOrEqual(8);
    expect(status.receivedBytes).toBe(size); // nothing fetched twice
  });

  it('the head block failing part-way, after its first bytes were emitted, resumes without emitting any twice', async () => {
    const blockSize = 16 * 1024;
    const size = 10 * blockSize;
    const reader = new FakeReader({
      size,
      blockSize,
      chunkSize: 1000,
      script: ({ from, n }) => (n === 0 && from === 0 ? { endAfter: 5000, errorAfterEnd: transient() } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 4, retry: { ...fastRetry, baseDelayMs: 30 } });
    let emittedBeforeRetry = 0;
    const parts: Uint8Array[] = [];
    for await (const chunk of dl) {
      parts.push(chunk);
      if (reader.requests.filter((r) => r.from === 5000).length === 0) emittedBeforeRetry += chunk.byteLength;
    }
    expect(emittedBeforeRetry).toBeGreaterThanOrEqual(5000); // the head streamed before its retry began
    expectExact(Buffer.concat(parts), size);
    expect(reader.requests.filter((r) => r.to === blockSize - 1).map((r) => r.from)).toEqual([0, 5000]);
    expect(dl.status().receivedBytes).toBe(size);
  });

  it('random refusals and cuts on a fifth of the requests, at concurrency 8: exact output', async () => {
    const blockSize = 16 * 1024;
    const size = 150 * blockSize + 3;
    const reader = new FakeReader({ size, blockSize, chunkSize: 2500, failureRatio: 0.2, seed: 7 });
    const dl = new StreamingDownloader(reader, { concurrency: 8, retry: { ...fastRetry, baseDelayMs: 1, totalRetries: 1000 } });
    expectExact(await collect(dl), size);
    expect(dl.status().retries).toBeGreaterThan(10);
    expect(dl.status().maxBufferedBytes).toBeLessThanOrEqual(16 * blockSize);
  });

  it('when retries run out, every byte before the failure is delivered, then RetriesExhaustedError with the cause', async () => {
    const blockSize = 8192;
    const size = 20 * blockSize;
    let attempts5 = 0;
    const fake = new FakeReader({
      size,
      blockSize,
      script: ({ from }) => {
        const block = Math.floor(from / blockSize);
        if (block === 5) return ++attempts5 === 1 ? { endAfter: 3000, errorAfterEnd: transient() } : { refuse: transient() };
        if (block < 5) return { delayMs: 20 }; // earlier blocks finish after block 5 gave up
        return undefined;
      },
    });
    const { reader, signals } = instrument(fake);
    const dl = new StreamingDownloader(reader, { concurrency: 4, retry: { ...fastRetry, attemptsPerBlock: 3 } });
    const run = dl.run();
    const { bytes, error } = await collectUntilError(dl);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).attempts).toBe(3);
    expect((error as Error).cause).toMatchObject({ code: 'BLOCKFETCH_NETWORK' });
    expect(bytes.length).toBe(5 * blockSize + 3000);
    expect(firstMisplaced(bytes, 0)).toBe(-1);
    await expect(run).rejects.toBe(error);
    expectAllEnded(fake, signals);
    expect(dl.status().bufferedBytes).toBe(0);
  });

  it('a non-retryable error is passed on as is, after the bytes before it', async () => {
    const blockSize = 4096;
    const reader = new FakeReader({
      size: 10 * blockSize,
      blockSize,
      script: ({ from }) => (from === 2 * blockSize ? { refuse: new HttpStatusError(404, 'http://127.0.0.1/x', 'Not Found') } : undefined),
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
    const fake = new FakeReader({
      size,
      blockSize,
      script: ({ from }) => {
        if (from === 0) return { delayMs: 50 }; // block 0 is slow
        if (from === 3 * blockSize) return { refuse: changed };
        return undefined;
      },
    });
    const { reader, signals } = instrument(fake);
    const dl = new StreamingDownloader(reader, { concurrency: 4, retry: fastRetry });
    const { bytes, error } = await collectUntilError(dl);
    expect(error).toBe(changed);
    expect(bytes.length).toBe(0); // block 0 had not arrived: nothing after the change is delivered
    await expect(dl.run()).rejects.toBe(changed);
    expectAllEnded(fake, signals);
    expect(fake.requests.find((r) => r.from === 0)?.outcome).toBe('aborted');
    expect(fake.requests.filter((r) => r.from === 3 * blockSize)).toHaveLength(1); // never retried
  });

  it('a body that ends short or runs long is retried', async () => {
    const blockSize = 4096;
    const size = 6 * blockSize;
    const reader = new FakeReader({
      size,
      blockSize,
      script: ({ n }) => (n === 1 ? { endAfter: 100 } : n === 2 ? { extraBytes: 10 } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 2, retry: fastRetry });
    expectExact(await collect(dl), size);
    expect(dl.status().errors).toBe(2);
  });
});

describe('StreamingDownloader: abort', () => {
  it('abort in the middle stops every request and releases every buffer', async () => {
    const blockSize = 8192;
    const size = 200 * blockSize;
    const fake = new FakeReader({ size, blockSize, chunkDelayMs: 1 });
    const { reader, signals } = instrument(fake);
    const controller = new AbortController();
    const dl = new StreamingDownloader(reader, { concurrency: 6, signal: controller.signal });
    const run = dl.run();
    let received = 0;
    let openAtAbort = 0;
    let error: unknown;
    try {
      for await (const chunk of dl) {
        received += chunk.byteLength;
        if (received >= 20 * blockSize && !controller.signal.aborted) {
          openAtAbort = fake.open;
          controller.abort(new Error('user cancelled'));
        }
      }
    } catch (err) {
      error = err;
    }
    expect(openAtAbort).toBeGreaterThan(0);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as Error).cause).toMatchObject({ message: 'user cancelled' });
    await expect(run).rejects.toBe(error);
    // After run() settled: no request is open; each was served whole or saw its signal fire.
    expectAllEnded(fake, signals);
    expect(signals.filter((signal) => signal.aborted).length).toBeGreaterThanOrEqual(openAtAbort);
    expect(dl.status().bufferedBytes).toBe(0);
    const requestsThen = fake.requests.length;
    await sleep(20);
    expect(fake.requests.length).toBe(requestsThen); // nothing new started
  });

  it('a writable destroyed without an error while a block is stalled ends pipeTo at once', async () => {
    const blockSize = 8192;
    // Block 1 stalls after 100 bytes until aborted; block 0 arrives whole.
    const reader = new FakeReader({ size: 8 * blockSize, blockSize, script: ({ from }) => (from === blockSize ? { stallAfter: 100 } : undefined) });
    const writable = new Writable({
      write(_chunk: Buffer, _encoding, done) {
        done();
        setImmediate(() => writable.destroy());
      },
    });
    const started = performance.now();
    const err = await new StreamingDownloader(reader, { concurrency: 4 }).pipeTo(writable).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe('ERR_STREAM_PREMATURE_CLOSE');
    expect(performance.now() - started).toBeLessThan(2000);
    // Every request was ended, the stalled one included.
    expect(reader.requests.every((r) => r.outcome !== 'open')).toBe(true);
  });

  it('breaking out of the loop, destroying the readable or aborting pipeTo does the same', async () => {
    const blockSize = 4096;
    const make = (): { fake: FakeReader; reader: Reader; signals: AbortSignal[] } => {
      const fake = new FakeReader({ size: 100 * blockSize, blockSize, chunkDelayMs: 1 });
      return { fake, ...instrument(fake) };
    };

    const r1 = make();
    const d1 = new StreamingDownloader(r1.reader, { concurrency: 4 });
    for await (const _ of d1) break;
    await expect(d1.run()).rejects.toBeInstanceOf(AbortedError);
    expectAllEnded(r1.fake, r1.signals);
    expect(d1.status().bufferedBytes).toBe(0);

    const r2 = make();
    const d2 = new StreamingDownloader(r2.reader, { concurrency: 4 });
    const readable = d2.readable;
    await new Promise<void>((resolve) => readable.once('data', () => resolve()));
    readable.destroy();
    await expect(d2.run()).rejects.toBeInstanceOf(AbortedError);
    expectAllEnded(r2.fake, r2.signals);

    const r3 = make();
    const d3 = new StreamingDownloader(r3.reader, { concurrency: 4 });
    const controller = new AbortController();
    const sink = new Writable({
      write(_c, _e, done) {
        if (!controller.signal.aborted) controller.abort();
        done();
      },
    });
    await expect(d3.pipeTo(sink, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expectAllEnded(r3.fake, r3.signals);
    expect(sink.destroyed).toBe(true);
  });

  it('an already aborted signal makes no request at all', async () => {
    const reader = new FakeReader({ size: 10_000, blockSize: 1000 });
    const dl = new StreamingDownloader(reader, { signal: AbortSignal.abort() });
    await expect(collect(dl)).rejects.toBeInstanceOf(AbortedError);
    expect(reader.requests).toEqual([]);
  });
});

describe('StreamingDownloader: degraded modes', () => {
  it('concurrency 1 is one plain getReader(0, size - 1), resumed from the next byte after a failure', async () => {
    const size = 100_003;
    const reader = new FakeReader({
      size,
      blockSize: 8192,
      script: ({ n }) => (n === 0 ? { endAfter: 40_000, errorAfterEnd: transient() } : undefined),
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
    const reader = new FakeReader({
      size,
      blockSize: 4096,
      rangesSupported: false,
      script: ({ n }) => (n === 0 ? { endAfter: 30_000, errorAfterEnd: transient() } : undefined),
    });
    const dl = new StreamingDownloader(reader, { concurrency: 8, retry: fastRetry });
    expectExact(await collect(dl), size);
    expect(reader.requests.map((r) => [r.from, r.to])).toEqual([
      [0, size - 1],
      [0, size - 1],
    ]);
    expect(dl.status()).toMatchObject({ mode: 'single', receivedBytes: size + 30_000, downloadedBytes: size });
  });

  it('a remote with nothing to pin requests to is streamed as one request, whatever the concurrency', async () => {
    const size = 40_000;
    const fake = new FakeReader({ size, blockSize: 4096 });
    const { reader } = instrument(fake);
    const unpinned: Reader = {
      ...reader,
      contentLengthAndBlockSize: async (signal) => ({ ...(await fake.contentLengthAndBlockSize(signal)), pinned: false }),
    };
    const dl = new StreamingDownloader(unpinned, { concurrency: 8 });
    expectExact(await collect(dl), size);
    expect(fake.requests.map((r) => [r.from, r.to])).toEqual([[0, size - 1]]);
    expect(dl.status().mode).toBe('single');
  });

  it('an empty object ends at once without a request', async () => {
    const reader = new FakeReader({ size: 0, blockSize: 4096 });
    const dl = new StreamingDownloader(reader, { concurrency: 8, computeDigest: true });
    expect(await collect(dl)).toHaveLength(0);
    expect(reader.requests).toEqual([]);
    const status = await dl.run();
    expect(status).toMatchObject({ complete: true, size: 0, blocks: 0 });
    expect(status.digest?.hex).toBe(sha256(new Uint8Array(0)));
  });

  it('a one-block object is fetched as a single stream', async () => {
    const reader = new FakeReader({ size: 1000, blockSize: 4096 });
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
    const fromReader = new StreamingDownloader(new FakeReader({ size, blockSize: 4096, digest: good }), { concurrency: 4 });
    expectExact(await collect(fromReader), size);
    expect(fromReader.status().digest).toMatchObject({ verified: true, hex: good.hex });

    const fromCaller = new StreamingDownloader(new FakeReader({ size, blockSize: 4096, digest: bad }), {
      concurrency: 4,
      expectedDigest: { algorithm: 'sha256', hex: good.hex.toUpperCase() },
    });
    expectExact(await collect(fromCaller), size);
    expect(fromCaller.status().digest?.verified).toBe(true);
  });

  it('a digest mismatch errors the stream (DigestMismatchError) instead of ending it', async () => {
    for (const concurrency of [1, 4]) {
      const dl = new StreamingDownloader(new FakeReader({ size, blockSize: 4096, digest: bad }), { concurrency });
      const { bytes, error } = await collectUntilError(dl);
      expect(error).toBeInstanceOf(DigestMismatchError);
      expect(error).toMatchObject({ expected: bad.hex, actual: good.hex });
      expect(bytes.length).toBe(size);
      await expect(dl.run()).rejects.toBe(error);
      expect(dl.status().complete).toBe(false);
    }
    const sink = new Writable({ write: (_c, _e, done) => done() });
    const piped = new StreamingDownloader(new FakeReader({ size, blockSize: 4096 }), { concurrency: 4, expectedDigest: bad });
    await expect(piped.pipeTo(sink)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it('every byte passes the shared rate limiter before it is buffered', async () => {
    const limiter = new RateLimiter({ bytesPerSecond: 512 * 1024 * 1024, requestsPerSecond: 10_000, burstRequests: 100 });
    const windowed = new StreamingDownloader(new FakeReader({ size, blockSize: 4096 }), { concurrency: 4, rateLimiter: limiter });
    expectExact(await collect(windowed), size);
    const single = new StreamingDownloader(new FakeReader({ size, blockSize: 4096 }), { concurrency: 1, rateLimiter: limiter });
    expectExact(await collect(single), size);
    expect(limiter.grantedBytes).toBe(2 * size);
  });

  it('by default nothing is hashed when there is nothing to verify', async () => {
    const dl = new StreamingDownloader(new FakeReader({ size, blockSize: 4096 }), { concurrency: 4 });
    await collect(dl);
    expect(dl.status().digest).toBeUndefined();
  });

  it('rejects bad options naming them, and a second consumer', () => {
    const reader = new FakeReader({ size: 10, blockSize: 1 });
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
    const reader = new FakeReader({ size: 10_000, blockSize: 1000, lookFailures: 5 });
    const dl = new StreamingDownloader(reader, { retry: { ...fastRetry, attemptsPerBlock: 2 } });
    await expect(collect(dl)).rejects.toBeInstanceOf(RetriesExhaustedError);
    expect(reader.looks).toBe(2);
    const patient = new FakeReader({ size: 10_000, blockSize: 1000, lookFailures: 2 });
    const ok = new StreamingDownloader(patient, { retry: fastRetry });
    expectExact(await collect(ok), 10_000);
    expect(ok.status()).toMatchObject({ errors: 2, retries: 2, complete: true });
    expect(ok.status().elapsedMs).toBe(ok.status().durationMs);
  });
});
