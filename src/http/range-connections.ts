/**
 * blockfetch's own HTTP/1.1 connections for the one request it sends by the
 * thousand: a GET (ranged, of the same URL) whose answer is plain bytes.
 *
 * Why: undici parses every byte of a body through its WebAssembly parser,
 * copies it into the parser's memory, and hands it on through a stream; per
 * GiB that is about 0.5 CPU s more than reading the socket (bench/undici-body.mjs:
 * 0.84-0.89 user s through undici's body, 0.33-0.36 reading the socket
 * here, 2026-12-07). Once the head is parsed, a Content-Length body is
 * exactly the next N bytes of the socket, so here it is handed on as the
 * socket's own chunks (chunked and close-delimited bodies are read here
 * too, so that a faulty one fails the same way on both paths).
 *
 * The scope is deliberately small. Anything else is answered `undefined`
 * (the caller sends the request through undici instead, which is what it
 * did before this existed), and the origin is left to undici from then on:
 * a Transfer-Encoding other than chunked, a 101, a
 * head that does not parse or is longer than {@link MAX_HEAD_BYTES},
 * conflicting Content-Lengths, a header value with CR, LF or NUL in it.
 * Proxies and HTTP/2 never come here: {@link createDefaultDispatcher} makes
 * these connections only when it makes a plain `Agent`.
 *
 * Errors are the ones undici's path ends in: socket errors as they are
 * (`networkError` maps them), timeouts as `BLOCKFETCH_TIMEOUT`.
 *
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { BlockfetchError, redactUrl } from '../errors.js';
import { RangeBody } from './range-body.js';
import { ChunkedDecoder } from './chunked-decoder.js';

let tls: typeof import('node:tls') | undefined;

/** `node:tls`, loaded at the first https connection: plain-http runs skip its 4-10 ms of start-up. */
function loadTls(): typeof import('node:tls') {
  tls ??= createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  return tls;
}

/**
 * The longest response head accepted (status line and headers); longer goes to undici.
 *
 * @example
 * ```ts
 * if (head.length > MAX_HEAD_BYTES) return undefined; // undici's to read
 * ```
 */
export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * The size of the buffers a plain TCP connection reads into for a body that
 * keeps its chunks (Node's own read size): each chunk holds its whole
 * buffer for as long as the consumer keeps it.
 */
const READ_BYTES = 64 * 1024;

/**
 * The size of the buffers a plain TCP connection reads into for a lending
 * body (`RangeRequestOptions.lend`), whose buffers are read into again. At
 * full loopback speed a read then takes what the socket holds, up to
 * 1 MiB, instead of 64 KiB: a third as many reads, and a third as many
 * chunks through the body, the reader and the sink. 1 GiB from nginx at c8:
 * user CPU 1.39-1.60 s to 0.62-0.75 s (docs/benchmarks.md, fifth session).
 * The price: reading more per wakeup lets the kernel grow the receive
 * window, so more is in flight when a kill comes (docs/index-format.md).
 */
const LENDING_READ_BYTES = 1024 * 1024;

/**
 * Lending read buffers kept for reuse, shared by all connections (each
 * also holds the one its socket reads into next).
 */
const SPARE_READ_BUFFERS = 8;

/** How {@link RangeConnections} connects. */
export interface RangeConnectionsOptions {
  /** PEM CA certificates to trust instead of Node's own (`--cacert`). */
  readonly ca?: string;
  /** false: accept any certificate (`-k`). @default true */
  readonly rejectUnauthorized?: boolean;
  /** How long a connect (and TLS handshake) may take. */
  readonly connectTimeoutMs: number;
  /** How long an unused connection is kept open. */
  readonly keepAliveTimeoutMs: number;
  /** Connections per origin at most (idle and in use); past it, undici takes the request. */
  readonly maxConnectionsPerOrigin: number;
}

/** One request's timeouts and signal. */
export interface RangeRequestOptions {
  readonly signal?: AbortSignal | undefined;
  /** From the request written to the whole head received. */
  readonly headersTimeoutMs: number;
  /**
   * The consumer is done with each chunk of the body once it asks for the
   * next (`ReadOptions.lend`): the connection reads later bytes into the
   * same buffers. @default false
   */
  readonly lend?: boolean;
  /** The longest wait for the next body bytes while the consumer is reading. */
  readonly bodyTimeoutMs: number;
}

/** Whatever sends ranged GETs the way {@link RangeConnections} does (it, or a view of it that watches the heads). */
export interface RangeRequester {
  /** See {@link RangeConnections.request}. */
  request(url: URL, headers: Readonly<Record<string, string>>, options: RangeRequestOptions): Promise<RangeResponse | undefined>;
}

/** A response head and its body. */
export interface RangeResponse {
  readonly statusCode: number;
  /** Lower-case names; a repeated header is an array, as undici gives them. */
  readonly headers: IncomingHttpHeaders;
  readonly body: RangeBody;
}

/** A parsed head, or why it is left to undici. */
type Head =
  | {
      readonly kind: 'head';
      readonly statusCode: number;
      readonly headers: IncomingHttpHeaders;
      /** How the body ends: after `length` bytes, after the last chunk, or when the server closes the connection. */
      readonly framing: 'length' | 'chunked' | 'close';
      /** The body's length for `'length'` framing. */
      readonly length: number;
      readonly keepAlive: boolean;
    }
  | { readonly kind: 'informational' }
  | { readonly kind: 'unsuitable'; readonly why: string };

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
/**
 * Request headers that change how a request is framed or what the
 * connection becomes: undici refuses or handles them, so a request with
 * one goes there.
 */
const UNDICI_DECIDES: ReadonlySet<string> = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'expect', 'upgrade', 'te', 'trailer']);
/** A header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const UNSAFE_VALUE = /[\r\n\0]/;

/**
 * Parses a response head (the bytes before the blank line, without it).
 * Strict where a lenient reading could frame the body wrongly.
 *
 * @example
 * ```ts
 * parseHead('HTTP/1.1 206 Partial Content\r\nContent-Length: 5')
 * // { kind: 'head', statusCode: 206, headers: { 'content-length': '5' }, framing: 'length', length: 5, keepAlive: true }
 * parseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip') // { kind: 'unsuitable', why: 'transfer-encoding' }
 * ```
 */
export function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) return { kind: 'unsuitable', why: 'status line' };
  const minor = status[1];
  const statusCode = Number(status[2]);
  if (statusCode === 101 || statusCode < 100) return { kind: 'unsuitable', why: `status ${statusCode}` };
  if (statusCode < 200) return { kind: 'informational' };
  const headers: Record<string, string | string[]> = {};
  for (let i = 1; i < lines.length; i++) {
    const match = HEADER_LINE.exec(lines[i] as string);
    if (match === null) return { kind: 'unsuitable', why: 'header line' }; // obs-fold, a bare CR, no colon
    const name = (match[1] as string).toLowerCase();
    const value = match[2] as string;
    const before = headers[name];
    headers[name] = before === undefined ? value : Array.isArray(before) ? [...before, value] : [before, value];
  }
  const connection = String(headers['connection'] ?? '').toLowerCase();
  const keepAlive = minor === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  if (statusCode === 204 || statusCode === 304) return { kind: 'head', statusCode, headers, framing: 'length', length: 0, keepAlive };
  const length = headers['content-length'];
  const coding = headers['transfer-encoding'];
  if (coding !== undefined) {
    // Both framings at once is how responses are smuggled: never guess.
    if (typeof coding !== 'string' || coding.trim().toLowerCase() !== 'chunked' || length !== undefined || minor !== '1') {
      return { kind: 'unsuitable', why: 'transfer-encoding' };
    }
    return { kind: 'head', statusCode, headers, framing: 'chunked', length: Infinity, keepAlive };
  }
  // No length and no Transfer-Encoding: the body is all the server sends
  // until it closes the connection (RFC 9112, 6.3).
  if (length === undefined) return { kind: 'head', statusCode, headers, framing: 'close', length: Infinity, keepAlive: false };
  if (typeof length !== 'string' || !/^\d{1,15}$/.test(length)) return { kind: 'unsuitable', why: 'content-length' };
  return { kind: 'head', statusCode, headers, framing: 'length', length: Number(length), keepAlive };
}

function ignore(): void {}

/** A socket on its way to becoming idle again, or closed. */
interface Connection {
  readonly socket: Socket;
  readonly key: string;
  /** It has carried a whole response: a failure before the next one's first byte may only mean the server closed it while idle. */
  reused: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  onIdleEvent: (() => void) | undefined;
  /** Where the bytes the socket reads go: the exchange under way, or the idle pool's watch. */
  onBytes: ((chunk: Buffer, owner: Buffer | undefined) => void) | undefined;
  /**
   * The body under way lends its chunks: the socket reads into
   * {@link LENDING_READ_BYTES} buffers, given back and read into again.
   * Only a plain TCP socket reads into buffers of ours (`onread`); TLS
   * sockets read as Node does.
   */
  lends: boolean;
  /**
   * Bytes per ms of its last response of at least {@link RATED_RESPONSE_BYTES},
   * from the request written to the body's end; undefined before one.
   */
  bytesPerMs: number | undefined;
}

/** The least response, in bytes, whose speed rates its connection (a head or a small body says little). */
const RATED_RESPONSE_BYTES = 256 * 1024;

/** A failure on a kept-alive connection before any byte of the answer: the request is sent again on a new one. */
class StaleConnection extends Error {}

/**
 * Keep-alive HTTP/1.1 connections per origin for ranged GETs, made by the
 * default dispatcher beside its undici `Agent` (see the module comment for
 * what comes here and what goes to undici).
 *
 * @example
 * ```ts
 * const connections = new RangeConnections({ connectTimeoutMs: 10_000, keepAliveTimeoutMs: 10_000, maxConnectionsPerOrigin: 64 });
 * const response = await connections.request(new URL('http://127.0.0.1:8080/a.bin'), { range: 'bytes=0-99' },
 *   { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 });
 * if (response === undefined) { ... send it through undici ... }
 * else for await (const chunk of response.body) use(chunk);
 * connections.destroy();
 * ```
 */
export class RangeConnections implements RangeRequester {
  readonly #options: RangeConnectionsOptions;
  readonly #idle = new Map<string, Connection[]>();
  /** Origins that answered something this module leaves to undici. */
  readonly #undiciOnly = new Set<string>();
  readonly #busy = new Set<Connection>();
  /** Open connections per origin (idle and busy), capped at `maxConnectionsPerOrigin`. */
  readonly #open = new Map<string, number>();
  /** Lending read buffers given back, for any connection's next reads. */
  readonly #spare: Buffer[] = [];
  #closed = false;

  constructor(options: RangeConnectionsOptions) {
    this.#options = options;
  }

  /**
   * Sends `GET url` with `headers` and resolves with the response head once
   * it arrived, or `undefined` when this request is undici's to send
   * (nothing of it has been used; the caller sends it again there).
   * Rejects on a network failure, a timeout or an abort.
   */
  async request(url: URL, headers: Readonly<Record<string, string>>, options: RangeRequestOptions): Promise<RangeResponse | undefined> {
    const key = `${url.protocol}//${url.host}`;
    if (this.#closed || this.#undiciOnly.has(key) || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined;
    if (url.username !== '' || url.password !== '') return undefined;
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
    for (const [name, value] of Object.entries(headers)) {
      if (!TOKEN.test(name) || UNSAFE_VALUE.test(value) || UNDICI_DECIDES.has(name.toLowerCase())) return undefined;
      lines.push(`${name}: ${value}`);
    }
    const head = `${lines.join('\r\n')}\r\n\r\n`;
    options.signal?.throwIfAborted();
    for (;;) {
      const idle = this.#takeIdle(key);
      // Past the cap, undici (whose Agent has the same cap) takes the request.
      if (idle === undefined && (this.#open.get(key) ?? 0) >= this.#options.maxConnectionsPerOrigin) return undefined;
      const connection = idle ?? (await this.#connect(url, key, options));
      try {
        const response = await this.#exchange(connection, url, head, options);
        if (response === undefined) this.#undiciOnly.add(key);
        return response;
      } catch (err) {
        if (err instanceof StaleConnection) continue; // only kept-alive connections throw it, so this ends
        throw err;
      }
    }
  }

  /** Closes the idle connections, and the others once their response ends; later requests go to undici. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const connection of list) connection.socket.destroy();
    this.#idle.clear();
  }

  /** Closes every connection, idle or in use; later requests go to undici. Idempotent. */
  destroy(): void {
    this.close();
    for (const connection of this.#busy) connection.socket.destroy();
    this.#busy.clear();
  }

  /**
   * The idle connection for the next request: the fastest by its last
   * response, one not yet rated before any, the most recently idle among
   * equals. A connection on a slow route (a throttled replica, a bad path)
   * then carries a request only when no other is free.
   */
  #takeIdle(key: string): Connection | undefined {
    const list = this.#idle.get(key);
    if (list === undefined || list.length === 0) return undefined;
    let at = list.length - 1;
    for (let i = list.length - 2; i >= 0; i--) {
      if ((list[i]?.bytesPerMs ?? Number.POSITIVE_INFINITY) > (list[at]?.bytesPerMs ?? Number.POSITIVE_INFINITY)) at = i;
    }
    const [connection] = list.splice(at, 1);
    if (connection === undefined) return undefined;
    clearTimeout(connection.idleTimer);
    const onIdleEvent = connection.onIdleEvent;
    if (onIdleEvent !== undefined) {
      connection.socket.off('end', onIdleEvent).off('close', onIdleEvent).off('error', onIdleEvent);
    }
    connection.onIdleEvent = undefined;
    connection.onBytes = undefined;
    connection.socket.ref();
    this.#busy.add(connection);
    return connection;
  }

  /** Closes a connection that will not be used again. */
  #drop(connection: Connection): void {
    this.#busy.delete(connection);
    connection.socket.destroy();
  }

  /** Puts a connection that ended a response cleanly back for the next request. */
  #putIdle(connection: Connection): void {
    const socket = connection.socket;
    if (this.#closed || socket.destroyed) {
      this.#drop(connection);
      return;
    }
    this.#busy.delete(connection);
    connection.reused = true;
    // Anything the server does to an idle connection (closes it, sends
    // bytes nobody asked for) makes it unusable.
    const drop = (): void => {
      socket.destroy();
      const list = this.#idle.get(connection.key);
      const at = list?.indexOf(connection) ?? -1;
      if (list !== undefined && at >= 0) list.splice(at, 1);
      clearTimeout(connection.idleTimer);
    };
    connection.onIdleEvent = drop;
    connection.onBytes = drop;
    socket.on('end', drop).on('close', drop).on('error', drop);
    connection.idleTimer = setTimeout(drop, this.#options.keepAliveTimeoutMs);
    connection.idleTimer.unref();
    socket.unref();
    const list = this.#idle.get(connection.key);
    if (list === undefined) this.#idle.set(connection.key, [connection]);
    else list.push(connection);
  }

  /** A read buffer a lending body is done with, for the next lending reads (a smaller one, read before the body began, is dropped). */
  #giveBack(buffer: Buffer): void {
    if (buffer.length === LENDING_READ_BYTES && this.#spare.length < SPARE_READ_BUFFERS) this.#spare.push(buffer);
  }

  /** A new connection (TCP, then TLS for https), within the connect timeout and the signal. */
  #connect(url: URL, key: string, options: RangeRequestOptions): Promise<Connection> {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    return new Promise<Connection>((resolve, reject) => {
      const { ca, rejectUnauthorized } = this.#options;
      const spare = this.#spare;
      // Set just below; the socket reads nothing before it connects.
      let connection: Connection | undefined;
      const socket =
        url.protocol === 'https:'
          ? loadTls().connect({
              host,
              port,
              ALPNProtocols: ['http/1.1'],
              ...(isIP(host) === 0 ? { servername: host } : {}),
              ...(ca === undefined ? {} : { ca }),
              ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized }),
            })
          : connectTcp({
              host,
              port,
              // Each read into a buffer of ours: for a lending body a spare
              // one given back, else a new one (which a body that does not
              // lend keeps, as it would Node's own).
              onread: {
                buffer: () =>
                  connection?.lends === true ? (spare.pop() ?? Buffer.allocUnsafeSlow(LENDING_READ_BYTES)) : Buffer.allocUnsafeSlow(READ_BYTES),
                callback: (bytes: number, buffer: Uint8Array): boolean => {
                  const owner = buffer as Buffer;
                  connection?.onBytes?.(owner.subarray(0, bytes), owner);
                  return true; // a body pauses the socket itself
                },
              },
            });
      const made: Connection = { socket, key, reused: false, idleTimer: undefined, onIdleEvent: undefined, onBytes: undefined, lends: false, bytesPerMs: undefined };
      connection = made;
      if (url.protocol === 'https:') socket.on('data', (chunk: Buffer) => made.onBytes?.(chunk, undefined));
      const signal = options.signal;
      const done = (err: unknown): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', done);
        socket.off(url.protocol === 'https:' ? 'secureConnect' : 'connect', onConnect);
        if (err === undefined) {
          this.#busy.add(made);
          this.#open.set(key, (this.#open.get(key) ?? 0) + 1);
          socket.once('close', () => {
            const left = (this.#open.get(key) ?? 1) - 1;
            if (left > 0) this.#open.set(key, left);
            else this.#open.delete(key);
          });
          resolve(made);
          return;
        }
        socket.destroy();
        reject(err);
      };
      const onConnect = (): void => done(undefined);
      const onAbort = (): void => done(signal?.reason);
      const timer = setTimeout(() => {
        done(new BlockfetchError('BLOCKFETCH_TIMEOUT', `${redactUrl(url.href)}: no connection within ${this.#options.connectTimeoutMs} ms`));
      }, this.#options.connectTimeoutMs);
      // Every failure is handled where it matters (the exchange, the idle
      // pool); this keeps one arriving between them from being unhandled.
      socket.on('error', ignore);
      socket.setNoDelay(true);
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', onConnect);
      socket.on('error', done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Writes the request on `connection` and reads its head; the body follows on the returned {@link RangeBody}. */
  #exchange(connection: Connection, url: URL, request: string, options: RangeRequestOptions): Promise<RangeResponse | undefined> {
    const { socket } = connection;
    const signal = options.signal;
    const name = redactUrl(url.href);
    return new Promise<RangeResponse | undefined>((resolve, reject) => {
      let head: Buffer | undefined;
      let body: RangeBody | undefined;
      let framing: 'length' | 'chunked' | 'close' = 'length';
      let decoder: ChunkedDecoder | undefined;
      let answered = false; // any byte of the response arrived
      const started = performance.now();
      let received = 0; // bytes of the response, head included
      let over = false; // the exchange finished or failed: its timers and hooks are off
      let timer: NodeJS.Timeout | undefined;

      const detach = (): void => {
        over = true;
        clearTimeout(timer);
        timer = undefined;
        connection.onBytes = undefined;
        socket.off('end', onEnd).off('close', onClose).off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      /**
       * The exchange failed: the connection cannot be used again. `lost`: the
       * connection broke (not a timeout or an abort), which on a kept-alive
       * connection before any answer means only that the server closed it.
       */
      const fail = (err: unknown, lost = false): void => {
        detach();
        this.#drop(connection);
        if (body !== undefined) body.fail(err);
        else if (lost && connection.reused && !answered) reject(new StaleConnection());
        else reject(err);
      };
      const onError = (err: Error): void => fail(err, true);
      /** The server's FIN: the end of a close-delimited body, else a connection lost. */
      const onEnd = (): void => {
        if (body !== undefined && framing === 'close') {
          body.ended(false); // its end; the connection is closed by `finish`
          return;
        }
        onClose();
      };
      /** The socket closed with no FIN seen (a reset, or closed on our side): never a body's end. */
      const onClose = (): void => {
        const closed = Object.assign(new Error('the connection closed'), { code: 'ECONNRESET' });
        fail(body === undefined ? closed : Object.assign(closed, { message: 'the connection closed before the body ended' }), true);
      };
      const onAbort = (): void => fail(signal?.reason);
      /** (Re)starts the one timer of the exchange: the head's deadline, then the body's idle timeout. */
      const startTimer = (ms: number, what: string): void => {
        if (over) return;
        clearTimeout(timer);
        timer = setTimeout(() => fail(new BlockfetchError('BLOCKFETCH_TIMEOUT', `${name}: ${what} for ${ms} ms`)), ms);
      };
      /** The body is complete: the connection goes back to the pool, reading again, or is closed. */
      const finish = (extra: boolean, keepAlive: boolean): void => {
        detach();
        if (extra || !keepAlive) {
          this.#drop(connection);
        } else {
          // A body that filled its queue with its last bytes paused the socket.
          socket.resume();
          if (received >= RATED_RESPONSE_BYTES) connection.bytesPerMs = received / Math.max(1, performance.now() - started);
          this.#putIdle(connection);
        }
      };
      const onData = (chunk: Buffer, owner: Buffer | undefined): void => {
        answered = true;
        received += chunk.length;
        if (body !== undefined) {
          if (!body.paused) timer?.refresh();
          feed(body, chunk, owner);
          return;
        }
        if (head !== undefined) owner = undefined; // the head is a copy now
        head = head === undefined ? chunk : Buffer.concat([head, chunk]);
        for (;;) {
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) {
            if (head.length > MAX_HEAD_BYTES) leave();
            return;
          }
          if (end > MAX_HEAD_BYTES) {
            leave();
            return;
          }
          const parsed = parseHead(head.toString('latin1', 0, end));
          const rest = head.subarray(end + 4);
          if (parsed.kind === 'unsuitable') {
            leave();
            return;
          }
          if (parsed.kind === 'informational') {
            head = rest;
            continue;
          }
          const { statusCode, headers, length, keepAlive } = parsed;
          framing = parsed.framing;
          startTimer(options.bodyTimeoutMs, 'no body bytes arrived');
          connection.lends = options.lend === true;
          const giveBack = connection.lends ? (buffer: Buffer) => this.#giveBack(buffer) : undefined;
          // Paused past two reads' worth waiting for the consumer (128 KiB),
          // or one lending read's: 2 MiB per connection made no difference
          // but memory (bench/tee.ts, fifth session).
          const highWaterBytes = connection.lends ? LENDING_READ_BYTES : 2 * READ_BYTES;
          body = new RangeBody(length, giveBack, highWaterBytes, {
            pause: () => {
              if (over) return;
              socket.pause();
              clearTimeout(timer);
            },
            resume: () => {
              if (over) return;
              startTimer(options.bodyTimeoutMs, 'no body bytes arrived');
              socket.resume();
            },
            abort: () => fail(undefined),
            done: (extra) => finish(extra, keepAlive),
          });
          // Decoded pieces of one read may be queued together: none of them
          // may give the read buffer back while another is unread, so a
          // chunked body never lends.
          if (framing === 'chunked') decoder = new ChunkedDecoder((data) => body?.push(data));
          resolve({ statusCode, headers, body });
          feed(body, rest, owner);
          return;
        }
      };
      /** A socket chunk of the body (in `owner`, a read buffer of ours), through the chunked framing when it has one. */
      const feed = (target: RangeBody, chunk: Buffer, owner: Buffer | undefined): void => {
        if (decoder === undefined) {
          target.push(chunk, owner);
          return;
        }
        const fed = decoder.feed(chunk);
        if (fed.kind === 'end') target.ended(fed.extra > 0);
        else if (fed.kind === 'error') fail(new Error(fed.why));
      };
      /** Not ours to read: close the connection, and the caller asks undici. */
      const leave = (): void => {
        detach();
        this.#drop(connection);
        resolve(undefined);
      };

      if (signal?.aborted) {
        fail(signal.reason);
        return;
      }
      connection.onBytes = onData;
      socket.on('end', onEnd).on('close', onClose).on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
      startTimer(options.headersTimeoutMs, 'no response head arrived');
      socket.write(request);
    });
  }
}
