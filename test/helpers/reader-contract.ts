/**
 * The `Reader` contract (src/download/reader.ts) as one test suite that any
 * implementation can be run against: HttpReader over the fault server and
 * over nginx, FileReader over temp files, and the FakeReader the
 * downloaders' tests use (test/reader-contract.test.ts), so that no Reader,
 * and no fake standing in for one, can drift from what the downloaders rely
 * on.
 *
 * It talks to a Reader only through the interface, and checks stable error
 * codes and retry answers, never messages.
 *
 * @example
 * ```ts
 * readerContract('FakeReader', {
 *   faults: ['cut', 'long', 'stall', 'refuse'],
 *   sourceFaults: 'transient',
 *   advertisesDigest: true,
 *   make: async (content) => fakeSubject(content),
 * });
 * ```
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExpectedDigest } from '../../src/cache/types.js';
import type { Reader } from '../../src/download/reader.js';
import { BlockfetchError, retryResponseOf } from '../../src/errors.js';
import { payload } from './payload.js';

/**
 * What the source of the NEXT body request (not the first look) does wrong:
 * - `cut`: sends `after` bytes of the range, then ends or breaks off;
 * - `long`: sends the range and `extra` bytes more;
 * - `stall`: sends `after` bytes, then nothing until the request is aborted;
 * - `refuse`: refuses transiently and asks to be retried after `retryAfterMs`
 *   (a whole number of seconds, so that HTTP's Retry-After can say it).
 */
export type ReaderFault =
  | { readonly kind: 'cut'; readonly after: number }
  | { readonly kind: 'long'; readonly extra: number }
  | { readonly kind: 'stall'; readonly after: number }
  | { readonly kind: 'refuse'; readonly retryAfterMs: number };

/** One Reader under test, over some content, and the handle to hurt its source. */
export interface ReaderSubject {
  readonly reader: Reader;
  /** Makes the next body request suffer `fault`; called after the first look. */
  fault(fault: ReaderFault): Promise<void>;
  /** Releases everything the subject holds (servers, files, the reader). */
  close(): Promise<void>;
}

/** How to run the contract against one kind of Reader. */
export interface ReaderContractOptions {
  /** A Reader over exactly `content`, advertising (or given) `digest` when one is passed. */
  make(content: Buffer, options?: { readonly digest?: ExpectedDigest }): Promise<ReaderSubject>;
  /** The faults {@link ReaderSubject.fault} can produce; a case needing another is not registered. */
  readonly faults: readonly ReaderFault['kind'][];
  /**
   * What a cut or long source is for this Reader: `'transient'` (a network
   * hiccup: a retryable failure, or a short count) or `'changes'` (a local
   * file can only be cut or lengthened by changing it: a `BLOCKFETCH_REMOTE_CHANGED`).
   */
  readonly sourceFaults: 'transient' | 'changes';
  /** True when `make` can make the Reader know a digest (else only its absence is checked). */
  readonly advertisesDigest: boolean;
}

/** What reading one range gave: the bytes yielded before it ended, and the error it ended with, if any. */
export interface ReadOutcome {
  readonly bytes: Buffer;
  readonly error: unknown;
}

/** Reads `from..to` to its end, collecting bytes and the failure (from `getReader` or the body) instead of throwing. */
export async function readRange(
  reader: Reader,
  from: number,
  to: number,
  signal: AbortSignal = new AbortController().signal,
): Promise<ReadOutcome> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of await reader.getReader(from, to, signal)) parts.push(Uint8Array.from(chunk));
    return { bytes: Buffer.concat(parts), error: undefined };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
}

/** How long an aborted request may take to end. The timeouts of every Reader are far longer. */
const PROMPT_MS = 2000;

const SIZE = 100_000;
const CONTENT = payload(0, SIZE - 1);

function sha256(content: Buffer): ExpectedDigest {
  return { algorithm: 'sha256', hex: createHash('sha256').update(content).digest('hex') };
}

/** Registers the contract suite for the Reader `options.make` builds. */
export function readerContract(name: string, options: ReaderContractOptions): void {
  const supports = (kind: ReaderFault['kind']): boolean => options.faults.includes(kind);

  describe(`Reader contract: ${name}`, () => {
    const made: ReaderSubject[] = [];
    const fresh = async (content: Buffer = CONTENT, digest?: ExpectedDigest): Promise<ReaderSubject> => {
      const subject = await options.make(content, digest === undefined ? {} : { digest });
      made.push(subject);
      return subject;
    };
    afterEach(async () => {
      await Promise.all(made.splice(0).map((s) => s.close().catch(() => undefined)));
    });

    it('yields exactly the bytes of a range: first byte, last byte, a middle range, the whole file', async () => {
      const { reader } = await fresh();
      const info = await reader.contentLengthAndBlockSize();
      expect(info.contentLength).toBe(SIZE);
      expect(Number.isSafeInteger(info.blockSize) && info.blockSize >= 1).toBe(true);
      for (const [from, to] of [
        [0, 0],
        [SIZE - 1, SIZE - 1],
        [1234, 56_789],
        [0, SIZE - 1],
      ] as const) {
        const got = await readRange(reader, from, to);
        expect(got.error).toBeUndefined();
        expect(got.bytes.length).toBe(to - from + 1);
        expect(got.bytes.equals(CONTENT.subarray(from, to + 1))).toBe(true);
      }
    });

    it('an empty range yields no bytes, on a non-empty file and on a 0-byte one', async () => {
      const { reader } = await fresh();
      await reader.contentLengthAndBlockSize();
      for (const from of [0, 500, SIZE]) expect(await readRange(reader, from, from - 1)).toEqual({ bytes: Buffer.alloc(0), error: undefined });
      // A middle range still reads correctly after the empty ones.
      expect((await readRange(reader, 10, 19)).bytes.equals(CONTENT.subarray(10, 20))).toBe(true);

      const empty = (await fresh(Buffer.alloc(0))).reader;
      expect((await empty.contentLengthAndBlockSize()).contentLength).toBe(0);
      expect(await readRange(empty, 0, -1)).toEqual({ bytes: Buffer.alloc(0), error: undefined });
      const outside = await readRange(empty, 0, 0);
      expect(outside.error).toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
    });

    it('a range outside the file is rejected as an invalid argument, never retried', async () => {
      const { reader } = await fresh();
      await reader.contentLengthAndBlockSize();
      for (const [from, to] of [
        [SIZE - 10, SIZE], // one byte past the end
        [SIZE + 1, SIZE], // an "empty range" past the end
        [-1, 10],
        [5, 3], // backwards by more than one
        [1.5, 10],
      ] as const) {
        const got = await readRange(reader, from, to);
        expect(got.bytes.length).toBe(0);
        expect(got.error).toBeInstanceOf(BlockfetchError);
        expect(got.error).toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
        expect(retryResponseOf(got.error).isRetryable()).toBe(false);
      }
    });

    it('contentLengthAndBlockSize gives the same answer on every call', async () => {
      const { reader } = await fresh();
      const first = await reader.contentLengthAndBlockSize();
      await readRange(reader, 0, 99);
      const [second, third] = await Promise.all([reader.contentLengthAndBlockSize(), reader.contentLengthAndBlockSize()]);
      expect(second).toEqual(first);
      expect(third).toEqual(first);
      expect(first.identity.size).toBe(SIZE);
    });

    it('digest() is undefined when none is known', async () => {
      const { reader } = await fresh();
      await reader.contentLengthAndBlockSize();
      expect(reader.digest()).toBeUndefined();
    });

    if (options.advertisesDigest) {
      it('digest() is the whole-file digest once the reader has looked', async () => {
        const digest = sha256(CONTENT);
        const { reader } = await fresh(CONTENT, digest);
        await reader.contentLengthAndBlockSize();
        expect(reader.digest()).toEqual(digest);
      });
    }

    it('an aborted signal rejects getReader at once, with its reason', async () => {
      const { reader } = await fresh();
      await reader.contentLengthAndBlockSize();
      const controller = new AbortController();
      const reason = new Error('stopped before (contract)');
      controller.abort(reason);
      await expect(reader.getReader(0, 999, controller.signal)).rejects.toBe(reason);
    });

    it('aborting during a body ends it promptly: no further chunk, the read rejects', async () => {
      const { reader } = await fresh();
      await reader.contentLengthAndBlockSize();
      const controller = new AbortController();
      const reason = new Error('stopped during (contract)');
      const body = (await reader.getReader(0, SIZE - 1, controller.signal))[Symbol.asyncIterator]();
      const first = await body.next();
      expect(first.done).toBe(false);
      controller.abort(reason);
      const started = performance.now();
      const next = await body.next().then(
        (r) => ({ r, err: undefined }),
        (err: unknown) => ({ r: undefined, err }),
      );
      expect(performance.now() - started).toBeLessThan(PROMPT_MS);
      expect(next.r).toBeUndefined();
      expect(isAbort(next.err, reason)).toBe(true);
    });

    if (supports('stall')) {
      it('aborting a stalled body ends it promptly', async () => {
        const subject = await fresh();
        await subject.reader.contentLengthAndBlockSize();
        // Use up the first response, which may hold the start of any range
        // (HttpReader keeps it), so the read below is a request of its own.
        for await (const chunk of await subject.reader.getReader(0, 0, new AbortController().signal)) expect(chunk.length).toBe(1);
        await subject.fault({ kind: 'stall', after: 1000 });
        const controller = new AbortController();
        const reason = new Error('stopped a stall (contract)');
        const body = (await subject.reader.getReader(2000, SIZE - 1, controller.signal))[Symbol.asyncIterator]();
        // The signal that the stall began: the 1000 bytes before it have arrived.
        let received = 0;
        while (received < 1000) {
          const r = await body.next();
          if (r.done === true) throw new Error('the stalled body ended');
          expect(Buffer.from(r.value).equals(CONTENT.subarray(2000 + received, 2000 + received + r.value.length))).toBe(true);
          received += r.value.length;
        }
        expect(received).toBe(1000);
        const pending = body.next().then(
          (r) => ({ r, err: undefined }),
          (err: unknown) => ({ r: undefined, err }),
        );
        const started = performance.now();
        controller.abort(reason);
        const next = await pending;
        expect(performance.now() - started).toBeLessThan(PROMPT_MS);
        expect(next.r).toBeUndefined();
        expect(isAbort(next.err, reason)).toBe(true);
      });
    }

    if (supports('cut')) {
      it('a short body is counted short or failed, never reported complete', async () => {
        const subject = await fresh();
        await subject.reader.contentLengthAndBlockSize();
        await subject.fault({ kind: 'cut', after: 3000 });
        const got = await readRange(subject.reader, 1000, 50_999);
        // Whatever was yielded is the start of the range, in place.
        expect(got.bytes.equals(CONTENT.subarray(1000, 1000 + got.bytes.length))).toBe(true);
        if (got.error === undefined) {
          expect(got.bytes.length).toBeLessThan(50_000);
        } else {
          expectSourceFault(got.error, options.sourceFaults);
        }
      });
    }

    if (supports('long')) {
      it('a long body never yields more than the range, and fails', async () => {
        const subject = await fresh();
        await subject.reader.contentLengthAndBlockSize();
        await subject.fault({ kind: 'long', extra: 500 });
        // The end of the file, so that a "long" file source can grow there.
        const got = await readRange(subject.reader, SIZE - 20_000, SIZE - 1);
        expect(got.bytes.length).toBeLessThanOrEqual(20_000);
        expect(got.bytes.equals(CONTENT.subarray(SIZE - 20_000, SIZE - 20_000 + got.bytes.length))).toBe(true);
        expectSourceFault(got.error, options.sourceFaults);
      });
    }

    if (supports('refuse')) {
      it('a transient refusal is retryable and carries the delay the source asked for', async () => {
        const subject = await fresh();
        await subject.reader.contentLengthAndBlockSize();
        await subject.fault({ kind: 'refuse', retryAfterMs: 2000 });
        // Past the first block, which an HttpReader may serve from its first response.
        const got = await readRange(subject.reader, 50_000, 50_099);
        expect(got.bytes.length).toBe(0);
        expect(got.error).toBeInstanceOf(BlockfetchError);
        const response = retryResponseOf(got.error);
        expect(response.isRetryable()).toBe(true);
        expect(response.backoffDuration()).toBe(2000);
        // The refusal was for one request: the next one is served.
        const again = await readRange(subject.reader, 50_000, 50_099);
        expect(again.error).toBeUndefined();
        expect(again.bytes.equals(CONTENT.subarray(50_000, 50_100))).toBe(true);
      });
    }
  });
}

/** A cut or long source fails the body the way `expected` says it must. */
function expectSourceFault(error: unknown, expected: ReaderContractOptions['sourceFaults']): void {
  expect(error).toBeInstanceOf(BlockfetchError);
  if (expected === 'transient') {
    expect(error).toMatchObject({ code: 'BLOCKFETCH_BODY_LENGTH' });
    expect(retryResponseOf(error).isRetryable()).toBe(true);
  } else {
    expect(error).toMatchObject({ code: 'BLOCKFETCH_REMOTE_CHANGED' });
    expect(retryResponseOf(error).isRetryable()).toBe(false);
  }
}

/** The reason itself, or an abort error that says it was one (undici's, Node's, blockfetch's). */
function isAbort(err: unknown, reason: Error): boolean {
  if (err === reason) return true;
  if (!(err instanceof Error)) return false;
  return err.name === 'AbortError' || (err as { code?: unknown }).code === 'BLOCKFETCH_ABORTED' || err.cause === reason;
}
