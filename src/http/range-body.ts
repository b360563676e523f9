/**
 * The body of a response on a range connection (./range-connections.ts):
 * fed with the socket's chunks, read with `for await`, paused while a
 * consumer is not reading, and, when its consumer lends them, giving each
 * read buffer back once the consumer asked for the next chunk.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { ResponseBody } from './body.js';

/** The most of a body {@link RangeBody.dump} reads to keep its connection; a longer rest closes it. */
const DUMP_LIMIT = 128 * 1024;

/** What a {@link RangeBody} asks of its connection. */
export interface BodyControl {
  pause(): void;
  resume(): void;
  /** The consumer gave up before the end: close the connection. */
  abort(): void;
  /** Every byte arrived; `extra`: more bytes followed them. */
  done(extra: boolean): void;
}

/**
 * A response body (by Content-Length, chunked, or until the connection
 * closes), fed with the socket's chunks and read with `for await`. It pauses the socket while more than its high-water
 * mark (given by the connection) waits for a consumer that is not reading. It offers the parts of a `Readable` the
 * HTTP reader uses (`destroy`, `destroyed`, `'close'`, `dump`).
 *
 * @example
 * ```ts
 * const response = await connections.request(url, { range: 'bytes=0-99' }, timeouts);
 * for await (const chunk of response!.body) use(chunk); // exactly Content-Length bytes, or it throws
 * ```
 */
export class RangeBody extends EventEmitter implements ResponseBody, AsyncIterableIterator<Uint8Array> {
  readonly #control: BodyControl;
  /** Set when the body lends its chunks: where a read buffer goes once its chunk is done with. */
  readonly #giveBack: ((buffer: Buffer) => void) | undefined;
  /** Bytes held for a consumer that is not reading before the socket is paused. */
  readonly #highWaterBytes: number;
  #chunks: Buffer[] = [];
  /** The read buffer each queued chunk is a view of, when it is one of ours. */
  #owners: (Buffer | undefined)[] = [];
  /** The read buffer of the chunk `next()` handed out last, until the consumer asks for another. */
  #lent: Buffer | undefined;
  #first = 0;
  #queued = 0;
  /** Bytes of the body not yet arrived. */
  #remaining: number;
  #failure: unknown;
  #failed = false;
  #destroyed = false;
  #closed = false;
  #dumping = false;
  #paused = false;
  #arrivedAll = false;
  #wake: (() => void) | undefined;

  /** @internal Made by `RangeConnections` (./range-connections.ts). */
  constructor(length: number, giveBack: ((buffer: Buffer) => void) | undefined, highWaterBytes: number, control: BodyControl) {
    super();
    this.#remaining = length;
    this.#giveBack = giveBack;
    this.#highWaterBytes = highWaterBytes;
    this.#control = control;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * @internal The end of a body whose length was not known in advance (the
   * last chunk, or the server closing the connection); `extra`: bytes
   * followed it on the socket.
   */
  ended(extra: boolean): void {
    if (this.#arrivedAll || this.#failed) return;
    this.#remaining = 0;
    this.#arrived(extra);
  }

  /** @internal Whether the socket is paused for this body. */
  get paused(): boolean {
    return this.#paused;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * @internal A socket chunk, or the rest of the head's (maybe empty) right
   * after the head. Bytes past the body's end spoil the connection.
   */
  push(chunk: Buffer, owner?: Buffer): void {
    if (this.#arrivedAll) return;
    const take = chunk.length <= this.#remaining ? chunk : chunk.subarray(0, this.#remaining);
    this.#remaining -= take.length;
    if (take.length > 0 && !this.#dumping && !this.#destroyed) {
      this.#chunks.push(take);
      this.#owners.push(owner);
      this.#queued += take.length;
      if (this.#queued > this.#highWaterBytes && !this.#paused) {
        this.#paused = true;
        this.#control.pause();
      }
    } else if (owner !== undefined) {
      this.#giveBack?.(owner); // nothing of it is kept
    }
    if (this.#remaining === 0) this.#arrived(take.length < chunk.length);
    else if (take.length > 0) this.#wakeReader();
  }

  /** @internal The connection failed before the end. */
  fail(err: unknown): void {
    if (this.#remaining === 0 || this.#failed) return;
    this.#failed = true;
    this.#failure = err ?? Object.assign(new Error('the response body was closed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    this.#wakeReader();
    this.#close();
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    // Asking for the next chunk is the consumer saying it is done with the last.
    this.#returnLent();
    if (this.#first < this.#chunks.length) {
      const value = this.#chunks[this.#first] as Buffer;
      if (this.#giveBack !== undefined) this.#lent = this.#owners[this.#first];
      this.#chunks[this.#first] = EMPTY;
      this.#owners[this.#first++] = undefined;
      if (this.#first === this.#chunks.length) {
        this.#chunks = [];
        this.#owners = [];
        this.#first = 0;
      }
      this.#queued -= value.length;
      if (this.#first > 1024 && this.#first * 2 > this.#chunks.length) {
        // A queue that never empties (a rate-limited consumer) is compacted.
        this.#chunks = this.#chunks.slice(this.#first);
        this.#owners = this.#owners.slice(this.#first);
        this.#first = 0;
      }
      if (this.#paused && this.#queued <= this.#highWaterBytes / 2) {
        this.#paused = false;
        if (!this.#arrivedAll) this.#control.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#failed) return Promise.reject(this.#failure);
    if (this.#destroyed || this.#remaining === 0) {
      this.#destroyed = true;
      this.#close();
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
    }).then(() => this.next());
  }

  /** Stopping early (a `break` out of `for await`): the consumer is done with the last chunk; closes the connection. */
  return(): Promise<IteratorResult<Uint8Array>> {
    this.#returnLent();
    this.destroy();
    return Promise.resolve({ value: undefined, done: true });
  }

  /**
   * Drops what is left. Before the end, the connection is closed and a
   * pending read rejects with `error` (or a premature-close error).
   */
  destroy(error?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#dropQueued();
    if (this.#remaining > 0 && !this.#failed) {
      this.#failed = true;
      this.#failure = error ?? Object.assign(new Error('the response body was destroyed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      this.#control.abort();
    }
    this.#wakeReader();
    this.#close();
    return this;
  }

  /**
   * Reads the rest and drops it, keeping the connection, when at most 128
   * KiB are left (an error page, a redirect's body); closes it otherwise.
   */
  dump(): Promise<void> {
    if (this.#remaining > DUMP_LIMIT || this.#failed) {
      this.destroy();
      return Promise.resolve();
    }
    this.#dumping = true;
    if (this.#arrivedAll) {
      this.#destroyed = true;
      this.#close();
    }
    this.#dropQueued();
    if (this.#paused) {
      this.#paused = false;
      if (!this.#arrivedAll) this.#control.resume();
    }
    return new Promise<void>((resolve) => {
      if (this.#closed) resolve();
      else this.once('close', resolve);
    });
  }

  #arrived(extra: boolean): void {
    this.#arrivedAll = true;
    this.#control.done(extra);
    if (this.#dumping) this.#destroyed = true;
    this.#wakeReader();
    if (this.#dumping || this.#destroyed) this.#close();
  }

  /** Gives back the read buffer of the chunk last handed out (lending bodies only). */
  #returnLent(): void {
    const lent = this.#lent;
    if (lent === undefined) return;
    this.#lent = undefined;
    this.#giveBack?.(lent);
  }

  /**
   * Drops the chunks not yet read (their buffers go back: no one saw them).
   * The last chunk handed out is forgotten, not given back: whoever ends
   * the body from outside (`destroy()`, a reader's `close()`) cannot know
   * that its consumer is done with it.
   */
  #dropQueued(): void {
    this.#lent = undefined;
    if (this.#giveBack !== undefined) {
      for (let i = this.#first; i < this.#owners.length; i++) {
        const owner = this.#owners[i];
        if (owner !== undefined) this.#giveBack(owner);
      }
    }
    this.#chunks = [];
    this.#owners = [];
    this.#first = 0;
    this.#queued = 0;
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }
}

const EMPTY = Buffer.alloc(0);
