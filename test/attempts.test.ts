/**
 * The attempt engine on its own, against small scripted Readers: resuming a
 * cut body from its last byte, rejecting long bodies, counting failures and
 * retries once, Retry-After, abort during backoff, non-retryable errors,
 * revalidation, and the per-block attempt count that progress resets.
 */
import { describe, expect, it } from 'vitest';
import { AttemptEngine, blockKey, type AttemptRetry, type BodySink } from '../src/download/attempts.js';
import { backoffDelay, resolveRetryOptions } from '../src/download/backoff.js';
import type { ContentInfo, Reader } from '../src/download/reader.js';
import { StatsRecorder } from '../src/download/stats.js';
import { BlockfetchError, InvalidArgumentError, RemoteChangedError, RetriesExhaustedError } from '../src/errors.js';

const SIZE = 100;
const BYTES = Uint8Array.from({ length: SIZE }, (_, i) => i);

/** What one scripted body does: yield these chunks (as byte counts from the start of the request), then end or throw. */
interface BodyScript {
  /** Chunk lengths to yield, in order. */
  readonly chunks?: readonly number[];
  /** Yield this many bytes past the range after the chunks (a long body). */
  readonly extra?: number;
  /** Throw this from the body after the chunks (a reset). */
  readonly thenThrow?: Error;
  /** Throw this from getReader (a refused request). */
  readonly refuse?: Error;
}

/** A transient failure, retryable as a reset connection is. */
function reset(retryAfterMs?: number): BlockfetchError {
  return new BlockfetchError('BLOCKFETCH_NETWORK', 'connection reset (scripted)', retryAfterMs === undefined ? {} : { retryAfterMs });
}

/** A Reader that follows one script per request (then serves whole bodies), and records every range asked for. */
class ScriptedReader implements Reader {
  readonly name = 'scripted://file';
  readonly asked: Array<{ from: number; to: number }> = [];
  readonly #scripts: BodyScript[];
  revalidations = 0;
  #revalidateScript: Array<Error | undefined>;

  constructor(scripts: BodyScript[] = [], revalidate: Array<Error | undefined> = []) {
    this.#scripts = [...scripts];
    this.#revalidateScript = [...revalidate];
  }

  contentLengthAndBlockSize(): Promise<ContentInfo> {
    return Promise.resolve({
      contentLength: SIZE,
      blockSize: 10,
      identity: { url: this.name, size: SIZE },
      rangesSupported: true,
      pinned: true,
    });
  }

  digest(): undefined {
    return undefined;
  }

  getReader(from: number, to: number, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    this.asked.push({ from, to });
    const script = this.#scripts.shift() ?? { chunks: [to - from + 1] };
    if (script.refuse !== undefined) return Promise.reject(script.refuse);
    async function* body(): AsyncGenerator<Uint8Array> {
      let at = from;
      for (const n of script.chunks ?? []) {
        signal.throwIfAborted();
        yield BYTES.subarray(at, at + n);
        at += n;
      }
      if (script.extra !== undefined) yield new Uint8Array(script.extra).fill(0xee);
      if (script.thenThrow !== undefined) throw script.thenThrow;
    }
    return Promise.resolve(body());
  }

  revalidate(): Promise<void> {
    this.revalidations++;
    const next = this.#revalidateScript.shift();
    return next === undefined ? Promise.resolve() : Promise.reject(next);
  }
}

/** A sink that keeps every chunk with its offset, so a test can check each byte landed at its place once. */
function collectingSink(overrides: Partial<BodySink> = {}): BodySink & { readonly pieces: Array<{ offset: number; bytes: number[] }>; ended: number } {
  const sink = {
    pieces: [] as Array<{ offset: number; bytes: number[] }>,
    ended: 0,
    write(chunk: Uint8Array, offset: number): void {
      sink.pieces.push({ offset, bytes: [...chunk] });
    },
    end(): void {
      sink.ended++;
    },
    ...overrides,
  };
  return sink;
}

/** The bytes a sink holds, by offset; later writes win, as they would in a file. */
function assembled(pieces: ReadonlyArray<{ offset: number; bytes: number[] }>): number[] {
  const out: number[] = [];
  for (const { offset, bytes } of pieces) bytes.forEach((b, i) => (out[offset + i] = b));
  return out;
}

function engineFor(reader: Reader, extra: Partial<ConstructorParameters<typeof AttemptEngine>[0]> = {}) {
  const stats = new StatsRecorder({ size: SIZE, blockSize: 10 });
  const retries: AttemptRetry[] = [];
  const engine = new AttemptEngine({
    reader,
    retry: { baseDelayMs: 1, maxDelayMs: 1, jitter: 0 },
    stats,
    onRetry: (r) => retries.push(r),
    ...extra,
  });
  return { engine, stats, retries };
}

const signal = new AbortController().signal;
const WHOLE = { from: 0, to: SIZE - 1 };

describe('AttemptEngine.fetch', () => {
  it('resumes a cut body from the first byte not yet received, and hands on each byte once', async () => {
    const reader = new ScriptedReader([{ chunks: [30, 20], thenThrow: reset() }]);
    const { engine, stats, retries } = engineFor(reader);
    const sink = collectingSink();
    await expect(engine.fetch(blockKey(0), WHOLE, sink, signal)).resolves.toBe('done');
    expect(reader.asked).toEqual([WHOLE, { from: 50, to: 99 }]);
    expect(sink.pieces.map((p) => p.offset)).toEqual([0, 30, 50]);
    expect(assembled(sink.pieces)).toEqual([...BYTES]);
    expect(sink.ended).toBe(1);
    expect(retries.map((r) => r.range)).toEqual([WHOLE]);
    expect(stats.snapshot()).toMatchObject({ errors: 1, retries: 1, requests: 2, inFlight: 0, receivedBytes: SIZE });
  });

  it('holds a connection from acquireConnection for each attempt only, and gives it back before the backoff', async () => {
    const reader = new ScriptedReader([{ chunks: [30], thenThrow: reset(40) }, { refuse: reset(40) }]);
    let held = 0;
    let taken = 0;
    const heldDuringBackoff: number[] = [];
    const { engine } = engineFor(reader, {
      retry: { baseDelayMs: 1, maxDelayMs: 1, jitter: 0, maxRetryAfterMs: 1000 },
      acquireConnection: async () => {
        held++;
        taken++;
        let released = false;
        return () => {
          if (!released) held--;
          released = true;
        };
      },
      onRetry: () => {
        // onRetry runs before the sleep: by then the failed attempt's connection is back.
        heldDuringBackoff.push(held);
      },
    });
    await expect(engine.fetch(blockKey(0), WHOLE, collectingSink(), signal)).resolves.toBe('done');
    await expect(engine.look(signal)).resolves.toMatchObject({ contentLength: SIZE });
    expect(reader.asked).toEqual([WHOLE, { from: 30, to: 99 }, { from: 30, to: 99 }]);
    expect(heldDuringBackoff).toEqual([0, 0]);
    expect(taken).toBe(4); // three attempts of the fetch, one look
    expect(held).toBe(0);
  });

  it('treats a body that ends short as a retryable BLOCKFETCH_BODY_LENGTH and asks for the rest', async () => {
    const reader = new ScriptedReader([{ chunks: [40] }]);
    const { engine, retries } = engineFor(reader);
    const sink = collectingSink();
    await engine.fetch(blockKey(0), WHOLE, sink, signal);
    expect(retries[0]?.error).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH' });
    expect((retries[0]?.error as Error).message).toMatch(/ended after byte 39/);
    expect(reader.asked[1]).toEqual({ from: 40, to: 99 });
    expect(assembled(sink.pieces)).toEqual([...BYTES]);
  });

  it('rejects a long body without handing on its extra bytes, and refetches from where the sink says', async () => {
    const reader = new ScriptedReader([{ chunks: [60], extra: 50 }]);
    const { engine, retries } = engineFor(reader);
    const resumes: Array<[number, boolean]> = [];
    // Like the CachingDownloader: keep none of a confused body's unmarked bytes.
    const sink = collectingSink({ resumeAt: (position, overran) => (resumes.push([position, overran]), overran ? 0 : position) });
    await engine.fetch(blockKey(0), WHOLE, sink, signal);
    expect(retries[0]?.error).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH' });
    expect((retries[0]?.error as Error).message).toMatch(/ran 10 byte\(s\) past its end/);
    expect(resumes).toEqual([[60, true]]);
    expect(reader.asked).toEqual([WHOLE, WHOLE]);
    expect(sink.pieces.flatMap((p) => p.bytes)).not.toContain(0xee);
    expect(assembled(sink.pieces)).toEqual([...BYTES]);
  });

  it('counts a body that fails after its last byte as one error, and does not ask again', async () => {
    const reader = new ScriptedReader([{ chunks: [SIZE], thenThrow: reset() }]);
    const { engine, stats, retries } = engineFor(reader);
    const sink = collectingSink();
    await expect(engine.fetch(blockKey(0), WHOLE, sink, signal)).resolves.toBe('done');
    expect(reader.asked).toHaveLength(1);
    expect(sink.ended).toBe(1);
    expect(retries).toHaveLength(0);
    expect(stats.snapshot()).toMatchObject({ errors: 1, retries: 0 });
  });

  it('reports each failure once: one retry event, one error and one retry in the stats', async () => {
    const reader = new ScriptedReader([{ refuse: reset() }, { chunks: [5], thenThrow: reset() }, { refuse: reset() }]);
    // 5 bytes count as real progress here (rule 4's threshold is an option).
    const { engine, stats, retries } = engineFor(reader, { progressBytes: 5 });
    await engine.fetch(blockKey(3), { from: 30, to: 39 }, collectingSink(), signal);
    expect(retries.map((r) => [r.key, r.range, r.attempt])).toEqual([
      [{ kind: 'block', index: 3 }, { from: 30, to: 39 }, 1],
      // The second attempt received 5 bytes: progress, so its failure counts as the first again.
      [{ kind: 'block', index: 3 }, { from: 30, to: 39 }, 1],
      [{ kind: 'block', index: 3 }, { from: 35, to: 39 }, 2],
    ]);
    expect(stats.snapshot()).toMatchObject({ errors: 3, retries: 3, requests: 4 });
    expect(engine.errors).toBe(3);
    expect(engine.retries).toBe(3);
  });

  it('waits what Retry-After asks, up to retry.maxRetryAfterMs', async () => {
    const asked = new ScriptedReader([{ refuse: reset(30) }]);
    const one = engineFor(asked);
    await one.engine.fetch(blockKey(0), WHOLE, collectingSink(), signal);
    expect(one.retries[0]?.delayMs).toBe(30);

    const capped = new ScriptedReader([{ refuse: reset(60_000) }]);
    const two = engineFor(capped, { retry: { maxRetryAfterMs: 15, jitter: 0 } });
    const started = performance.now();
    await two.engine.fetch(blockKey(0), WHOLE, collectingSink(), signal);
    expect(two.retries[0]?.delayMs).toBe(15);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('returns at once when aborted during a backoff, with the abort reason, and counts nothing more', async () => {
    const reader = new ScriptedReader([{ refuse: reset(3_600_000) }]);
    const controller = new AbortController();
    const { engine, stats } = engineFor(reader, {
      retry: { maxRetryAfterMs: 3_600_000 },
      // The retry is reported just before the sleep starts: abort then.
      onRetry: () => queueMicrotask(() => controller.abort(new Error('stop now'))),
    });
    const started = performance.now();
    await expect(engine.fetch(blockKey(0), WHOLE, collectingSink(), controller.signal)).rejects.toThrow('stop now');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(reader.asked).toHaveLength(1);
    expect(stats.snapshot()).toMatchObject({ errors: 1, retries: 1, inFlight: 0 });
  });

  it('does not retry an error that says it is not retryable', async () => {
    const bug = new InvalidArgumentError('getReader: from must be a whole number');
    const reader = new ScriptedReader([{ refuse: bug }]);
    const { engine, stats, retries } = engineFor(reader);
    await expect(engine.fetch(blockKey(0), WHOLE, collectingSink(), signal)).rejects.toBe(bug);
    expect(reader.asked).toHaveLength(1);
    expect(retries).toHaveLength(0);
    expect(stats.snapshot()).toMatchObject({ errors: 1, retries: 0 });
  });

  it('never counts or retries what the owner calls fatal (a failed write), which outranks the body error', async () => {
    const diskFull = new BlockfetchError('BLOCKFETCH_DISK_WRITE', 'disk full (scripted)');
    const reader = new ScriptedReader([{ chunks: [10], thenThrow: reset() }]);
    const { engine, stats } = engineFor(reader, { isFatal: (err) => err === diskFull });
    const sink = collectingSink({
      settle: () => Promise.reject(diskFull),
    });
    await expect(engine.fetch(blockKey(0), WHOLE, sink, signal)).rejects.toBe(diskFull);
    expect(reader.asked).toHaveLength(1);
    expect(stats.snapshot()).toMatchObject({ errors: 0, retries: 0, inFlight: 0 });
  });

  it('waits for a promise the sink returns before reading on (backpressure)', async () => {
    const reader = new ScriptedReader([{ chunks: [10, 10, 80] }]);
    const { engine } = engineFor(reader);
    const order: string[] = [];
    let release: (() => void) | undefined;
    const sink = collectingSink({
      write: (chunk, offset) => {
        order.push(`write ${offset}`);
        if (offset === 10) return new Promise<void>((resolve) => (release = resolve));
        return undefined;
      },
    });
    const fetching = engine.fetch(blockKey(0), WHOLE, sink, signal);
    await new Promise<void>((resolve) => {
      const poll = (): void => (release === undefined ? void setImmediate(poll) : resolve());
      poll();
    });
    expect(order).toEqual(['write 0', 'write 10']);
    release?.();
    await fetching;
    expect(order).toEqual(['write 0', 'write 10', 'write 20']);
  });
});

describe('AttemptEngine: the per-block attempt count', () => {
  const cut = (n: number): BodyScript => ({ chunks: [n], thenThrow: reset() });

  it('starts again when an attempt made progress, so a slowly failing block still completes', async () => {
    // Four cut bodies in a row, each moving 10 bytes: more failures than attemptsPerBlock allows at once.
    const reader = new ScriptedReader([cut(10), cut(10), cut(10), cut(10)]);
    const { engine } = engineFor(reader, { retry: { attemptsPerBlock: 2, baseDelayMs: 1, jitter: 0 }, progressBytes: 10 });
    const sink = collectingSink();
    await expect(engine.fetch(blockKey(0), WHOLE, sink, signal)).resolves.toBe('done');
    expect(assembled(sink.pieces)).toEqual([...BYTES]);
  });

  it('counts only real progress: bytes short of progressBytes beyond the furthest point reached spend attempts (issue 11 item 10)', async () => {
    // Every attempt moves 10 bytes, fewer than the 11 that count: no reset.
    const reader = new ScriptedReader([cut(10), cut(10), cut(10), cut(10)]);
    const { engine, retries } = engineFor(reader, { retry: { attemptsPerBlock: 3, baseDelayMs: 1, jitter: 0 }, progressBytes: 11 });
    const error = await engine.fetch(blockKey(0), WHOLE, collectingSink(), signal).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(() => new AttemptEngine({ reader, progressBytes: 0 })).toThrow(InvalidArgumentError);
  });

  it('runs out when attempts make no progress: RetriesExhaustedError with the last failure as cause, or deferred', async () => {
    const refusals = (): BodyScript[] => [{ refuse: reset() }, { refuse: reset() }];
    const failing = engineFor(new ScriptedReader(refusals()), { retry: { attemptsPerBlock: 2, baseDelayMs: 1 } });
    const error = await failing.engine.fetch(blockKey(4), WHOLE, collectingSink(), signal).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).message).toMatch(/block 4 gave up after 2 attempts; last error: connection reset/);
    expect((error as RetriesExhaustedError).cause).toMatchObject({ code: 'BLOCKFETCH_NETWORK' });

    const deferring = engineFor(new ScriptedReader(refusals()), { retry: { attemptsPerBlock: 2, baseDelayMs: 1 }, blockExhaustion: 'defer' });
    await expect(deferring.engine.fetch(blockKey(4), WHOLE, collectingSink(), signal)).resolves.toBe('exhausted');
    // A new pass gives the block its attempts again; the run's total is kept.
    deferring.engine.newPass();
    await expect(deferring.engine.fetch(blockKey(4), WHOLE, collectingSink(), signal)).resolves.toBe('done');
    expect(deferring.engine.retries).toBe(1);
  });

  it('stops the run when its total retries are spent, whatever the block', async () => {
    const reader = new ScriptedReader([{ refuse: reset() }, { chunks: [10] }, { refuse: reset() }]);
    const { engine } = engineFor(reader, { retry: { totalRetries: 1, baseDelayMs: 1 }, blockExhaustion: 'defer' });
    await expect(engine.fetch(blockKey(0), { from: 0, to: 9 }, collectingSink(), signal)).resolves.toBe('done');
    await expect(engine.fetch(blockKey(1), { from: 10, to: 19 }, collectingSink(), signal)).rejects.toThrow(
      "scripted://file: block 1 gave up: the run's 1 retries are spent; last error: connection reset (scripted)",
    );
  });
});

describe('AttemptEngine.look and .revalidate', () => {
  it('retries the look, keyed as the look, and keeps the CLI wording when it runs out', async () => {
    let calls = 0;
    const reader = new ScriptedReader();
    reader.contentLengthAndBlockSize = () => (++calls, Promise.reject(reset()));
    const { engine, retries } = engineFor(reader, { retry: { attemptsPerBlock: 3, baseDelayMs: 1 } });
    await expect(engine.look(signal)).rejects.toThrow(/^the first request failed 3 times: connection reset/);
    expect(calls).toBe(3);
    expect(retries.map((r) => [r.key, r.range])).toEqual([
      [{ kind: 'look' }, { from: -1, to: -1 }],
      [{ kind: 'look' }, { from: -1, to: -1 }],
    ]);
  });

  it('retries a transient revalidation failure, then surfaces RemoteChangedError as is', async () => {
    const changed = new RemoteChangedError('scripted://file', [{ field: 'etag', before: '"a"', after: '"b"' }], 0);
    const reader = new ScriptedReader([], [reset(), changed]);
    const { engine, retries } = engineFor(reader);
    await expect(engine.revalidate(signal)).rejects.toBe(changed);
    expect(reader.revalidations).toBe(2);
    expect(retries.map((r) => r.key)).toEqual([{ kind: 'revalidate' }]);
  });

  it('does nothing for a Reader without revalidate', async () => {
    const reader = new ScriptedReader();
    const bare: Reader = {
      name: reader.name,
      contentLengthAndBlockSize: () => reader.contentLengthAndBlockSize(),
      digest: () => undefined,
      getReader: (from, to, s) => reader.getReader(from, to, s),
    };
    await expect(engineFor(bare).engine.revalidate(signal)).resolves.toBeUndefined();
  });
});

describe('retry.maxRetryAfterMs', () => {
  it('is the cap itself: a caller asking for 10 minutes gets 10 minutes, not the 2-minute default', () => {
    expect(backoffDelay(1, { maxRetryAfterMs: 600_000 }, 600_000)).toBe(600_000);
    expect(backoffDelay(1, { maxRetryAfterMs: 600_000 }, 900_000)).toBe(600_000);
    expect(backoffDelay(1, {}, 600_000)).toBe(120_000);
    expect(resolveRetryOptions({ maxRetryAfterMs: 600_000 }).maxRetryAfterMs).toBe(600_000);
  });

  it('is checked like every option, naming it, its value and what is allowed', () => {
    expect(() => resolveRetryOptions({ maxRetryAfterMs: -1 })).toThrow(
      'retry option maxRetryAfterMs must be a whole number of ms >= 0, got -1 (number)',
    );
    expect(() => resolveRetryOptions({ attemptsPerBlock: 0 })).toThrow('retry option attemptsPerBlock must be a whole number >= 1, got 0 (number)');
  });
});
