/**
 * `HttpReader`: the `Reader` for http(s) URLs. Ranged GETs, each pinned to
 * the revision the first request saw, each response checked before a byte
 * of it is handed on. They go through the dispatcher's own HTTP/1.1
 * connections when it has them (the default one does:
 * `./range-connections.ts`, docs/design.md), else, and for whatever those
 * leave, through undici.
 *
 * One request per block, plus none for discovery: the first request is
 * already the GET of block 0 (`Range: bytes=0-(blockSize-1)`); its headers
 * give the size and identity, and its body is kept (for a few seconds, in
 * the socket) for the first `getReader` that starts inside it: one that
 * ends beyond it gets those bytes and then a pinned request for the rest.
 */
import type { Dispatcher } from 'undici';
import { request } from './undici.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import type { ContentInfo, ReadOptions, Reader } from '../download/reader.js';
import { BlockfetchError, RemoteChangedError, redactUrl, type RemoteChange } from '../errors.js';
import { destroyOnAbort, exactBody, release, type ResponseBody } from './body.js';
import { digestFromHeaders } from './digest-headers.js';
import { createDefaultDispatcher, rangeConnectionsOf } from './dispatcher.js';
import type { RangeRequester, RangeRequestOptions } from './range-connections.js';
import { networkError, statusError } from './failures.js';
import { headerValue, parseContentLength, parseContentRange } from './headers.js';
import { compareIdentity } from '../download/identity.js';
import { idleMs } from '../download/idle-time.js';
import { pinHeaders, pinKind } from './identity.js';
import { resolveHttpReaderOptions, type HttpReaderOptions, type ResolvedHttpReaderOptions } from './options.js';
import { followRedirect, REDIRECT_STATUSES } from './redirect.js';
import { SharedLook, checkReaderRange, emptyBody } from '../download/reader-parts.js';

/** A URL and the request headers that go with it (credentials dropped after a cross-origin redirect). */
interface Target {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
}

/** A response: undici's, or one of the range connections'. */
interface HttpResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: ResponseBody & { dump(): Promise<unknown> };
}

/** One request's outcome after redirects: where it ended and the response there. */
interface Exchange extends Target {
  readonly response: HttpResponse;
}

/** The first response's body, kept for the first `getReader` inside it. */
interface HeldBody {
  /** Last byte the body covers (it starts at 0). */
  readonly to: number;
  readonly body: ResponseBody;
  readonly url: string;
  readonly timer: NodeJS.Timeout;
}

/** Reads a body we do not want, so its connection can be reused; never throws. */
function discard(body: HttpResponse['body']): void {
  body.dump().catch(() => undefined);
}

/**
 * A {@link Reader} for an http or https URL.
 *
 * - The first request (in {@link HttpReader.contentLengthAndBlockSize}) is a
 *   GET of `bytes=0-(blockSize-1)`: the size comes from `Content-Range`, the
 *   identity from `ETag` and `Last-Modified`, a whole-file digest from
 *   `Repr-Digest`, `Digest`, `x-amz-checksum-sha256` or `x-goog-hash`.
 * - Every later request is pinned: `If-Match` with a strong ETag, else
 *   `If-Unmodified-Since` with Last-Modified; a 412 or a response naming
 *   another ETag or size is a {@link RemoteChangedError}, never retried. Its
 *   `bytesAtRisk` is 0: what a restart would discard is the cache's figure,
 *   and the downloader that owns the cache fills it in.
 * - Every 206 must carry exactly the range asked for, and its body must be
 *   exactly that long; anything else is a retryable error, never data.
 * - A server that answers 200 to a Range request is read as one stream
 *   (`rangesSupported: false`); it must then send a Content-Length, since a
 *   file of unknown size cannot be preallocated or resumed.
 * - Redirects are followed by hand (http/https only, no https→http,
 *   credentials dropped across origins); ranged requests go to the final
 *   URL, and when that expires (403/410) the original URL is resolved again.
 * - The reader never retries: it throws errors that say whether and when a
 *   retry may succeed (`isRetryable()`, `backoffDuration()`).
 *
 * @example
 * ```ts
 * const reader = new HttpReader({ url: 'https://example.com/big.iso', headers: { authorization: 'Bearer …' } });
 * const { contentLength, blockSize, identity } = await reader.contentLengthAndBlockSize();
 * for await (const chunk of await reader.getReader(0, blockSize - 1, AbortSignal.timeout(60_000))) write(chunk);
 * await reader.close();
 * ```
 */
export class HttpReader implements Reader {
  /** The URL with credentials removed, for messages. */
  readonly name: string;
  readonly #options: ResolvedHttpReaderOptions;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  /** The dispatcher's own HTTP/1.1 connections for ranged GETs, when it has them (the default one does). */
  readonly #ranges: RangeRequester | undefined;
  /** The URL every request starts from before redirects are followed. */
  readonly #origin: Target;
  /** Where the latest request ended after redirects: ranged requests go straight there. */
  #resolved: Target;
  /** The first look, shared by every caller until it fails. */
  readonly #look = new SharedLook((signal) => this.#discover(signal));
  #held: HeldBody | undefined;
  #digest: ExpectedDigest | undefined;
  /** Bodies handed to consumers and not yet closed, for {@link HttpReader.close}. */
  readonly #open = new Set<ResponseBody>();

  /** @throws InvalidArgumentError when an option is not acceptable (the message names it). */
  constructor(options: HttpReaderOptions) {
    this.#options = resolveHttpReaderOptions(options);
    this.name = redactUrl(this.#options.url.href);
    this.#ownsDispatcher = this.#options.dispatcher === undefined;
    this.#dispatcher = this.#options.dispatcher ?? createDefaultDispatcher(process.env, {}, { http2: this.#options.http2 });
    this.#ranges = rangeConnectionsOf(this.#dispatcher);
    this.#origin = { url: this.#options.url, headers: this.#options.headers };
    this.#resolved = this.#origin;
  }

  /**
   * Sends the first request (once; concurrent and later calls share its
   * answer, and a failed attempt is forgotten so the next call tries again).
   * With the `expected` option, throws a {@link RemoteChangedError} when the
   * remote's size, ETag, Last-Modified or digest differ from it.
   */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    return this.#look.get(signal);
  }

  /** {@inheritDoc Reader.digest} Known once `contentLengthAndBlockSize` has answered. */
  digest(): ExpectedDigest | undefined {
    return this.#digest;
  }

  /**
   * Opens a body of exactly the bytes `from..to` (inclusive) of the pinned
   * revision. The first call that starts inside the first response's range
   * is served from that response, and from a pinned request for the rest
   * if it ends beyond it (unpinned, the whole range is asked for anew).
   * When ranges are not supported only `getReader(0, contentLength - 1)` is
   * valid. An empty range
   * (`to === from - 1`) yields nothing and sends no request.
   */
  async getReader(from: number, to: number, signal: AbortSignal, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
    if (signal?.aborted) throw signal.reason;
    const info = await this.contentLengthAndBlockSize(signal);
    // An empty range (a retry after every byte already arrived, say) is
    // exactly zero bytes: no request needed.
    if (checkReaderRange(this.name, from, to, info.contentLength) === 'empty') return emptyBody(signal);
    if (!info.rangesSupported && (from !== 0 || to !== info.contentLength - 1)) {
      throw new BlockfetchError(
        'BLOCKFETCH_RANGE_NOT_SUPPORTED',
        `${this.name} does not serve byte ranges; only the whole file (0-${info.contentLength - 1}) can be read, not ${from}-${to}`,
      );
    }
    const held = this.#takeHeld();
    // A read that starts inside the kept first body is served from it; one
    // that ends beyond it gets its bytes and then those of a request for the
    // rest, pinned to the same revision (the downloader's first request is
    // bytes 0 to many blocks: dropping the body fetched block 0 twice and
    // closed its connection). Unpinned, two responses could be two
    // revisions: such a range is asked for whole below.
    const joins = held !== undefined && from <= held.to && to > held.to && info.rangesSupported && info.pinned;
    if (held && (to <= held.to || joins)) {
      destroyOnAbort(held.body, signal);
      this.#track(held.body);
      const end = Math.min(to, held.to);
      // Bytes past `end` are the rest of block 0's response: expected, dropped.
      const head = exactBody(held.body, { length: end - from + 1, skip: from, beyond: end === held.to ? 'error' : 'discard', url: held.url, signal });
      if (!joins) return head;
      // Asked for now, not when the first body ends, so that its status (a
      // 403 from an expired signed URL, a 412) is thrown here, where a
      // caller such as HubFileReader looks for it.
      let rest: AsyncIterable<Uint8Array>;
      try {
        rest = await this.#fetch(held.to + 1, to, info, signal, options?.lend === true);
      } catch (err) {
        release(held.body);
        throw err;
      }
      return joinBodies(head, rest);
    }
    if (held) release(held.body);
    return this.#fetch(from, to, info, signal, options?.lend === true);
  }

  /**
   * Confirms the remote is still the revision first seen: a pinned request
   * for byte 0 (If-Match or If-Unmodified-Since), checked like every other
   * response (status, Content-Range total, ETag, Last-Modified). Throws a
   * `RemoteChangedError` if the remote changed. A server without byte ranges
   * is asked with a pinned GET of the whole file whose headers are checked
   * the same way (status 200, ETag, Last-Modified, Content-Length) and whose
   * body is dropped unread: a file rewritten in place while it was streamed
   * shows its new identity there. Without any validator only the size can
   * be compared, which is all that is claimed then (`pinned: false`).
   */
  async revalidate(signal: AbortSignal): Promise<void> {
    const info = await this.contentLengthAndBlockSize(signal);
    if (info.contentLength === 0) return;
    const held = this.#takeHeld();
    if (held) release(held.body);
    if (!info.rangesSupported) {
      const exchange = await this.#send(this.#resolved, pinHeaders(info.identity), signal);
      const { response } = exchange;
      try {
        this.#validate(response, exchange.url.href, 0, info.contentLength - 1, info);
      } finally {
        // Only the headers were wanted; the body is a whole file's worth.
        release(response.body);
      }
      return;
    }
    for await (const chunk of await this.#fetch(0, 0, info, signal)) void chunk; // one byte
  }

  /**
   * Drops the kept first body, destroys every body handed out that is still
   * open (a consumer that never read one would otherwise hold its socket),
   * and, if the reader created its own dispatcher, closes it. Idempotent.
   */
  async close(): Promise<void> {
    const held = this.#takeHeld();
    if (held) release(held.body);
    for (const body of this.#open) release(body);
    this.#open.clear();
    if (this.#ownsDispatcher && !(this.#dispatcher as { closed?: boolean }).closed) await this.#dispatcher.close();
  }

  /**
   * One GET, following redirects by the policy in `./redirect.ts`: through
   * the dispatcher's range connections when it has them and they take the
   * answer, else through undici.
   */
  async #send(start: Target, extra: Readonly<Record<string, string>>, signal: AbortSignal | undefined, lend = false): Promise<Exchange> {
    let target = start;
    for (let hops = 0; ; hops++) {
      let response: HttpResponse;
      const headers = { ...target.headers, ...extra };
      try {
        response =
          (await this.#ranges?.request(target.url, headers, this.#rangeOptions(signal, lend))) ??
          (await request(target.url, {
            method: 'GET',
            headers,
            dispatcher: this.#dispatcher,
            signal: signal ?? null,
            headersTimeout: this.#options.requestTimeoutMs,
            // undici's body timeout is exactly "idle": it runs while waiting for
            // bytes and is suspended while the consumer is not reading.
            bodyTimeout: this.#options.idleTimeoutMs,
          }));
      } catch (err) {
        throw networkError(err, target.url.href, signal);
      }
      if (!REDIRECT_STATUSES.has(response.statusCode)) return { ...target, response };
      discard(response.body);
      if (hops >= this.#options.maxRedirects) {
        throw new BlockfetchError(
          'BLOCKFETCH_REDIRECT',
          `${this.name}: more than ${this.#options.maxRedirects} redirects (maxRedirects)`,
        );
      }
      target = followRedirect(target.url, headerValue(response.headers, 'location'), target.headers, this.#options.sensitiveHeaders);
    }
  }

  /** The range connections' form of the undici timeouts above, and whether the body may lend its chunks. */
  #rangeOptions(signal: AbortSignal | undefined, lend: boolean): RangeRequestOptions {
    return { signal, headersTimeoutMs: this.#options.requestTimeoutMs, bodyTimeoutMs: this.#options.idleTimeoutMs, lend };
  }

  async #discover(signal: AbortSignal | undefined): Promise<ContentInfo> {
    if (signal?.aborted) throw signal.reason;
    const blockSize = this.#options.blockSize;
    const idleBefore = idleMs();
    let exchange = await this.#send(this.#origin, { range: `bytes=0-${blockSize - 1}` }, signal);
    let idleWhileAsking = idleMs() - idleBefore;
    let bare416 = false;
    if (exchange.response.statusCode === 416 && headerValue(exchange.response.headers, 'content-range') === undefined) {
      bare416 = true;
      // A 416 that does not say `bytes */<size>` tells nothing about the
      // size (an empty file, or a server that mishandles Range): ask for the
      // whole file without Range, whose Content-Length does tell.
      discard(exchange.response.body);
      exchange = await this.#send(this.#origin, {}, signal);
      idleWhileAsking = idleMs() - idleBefore; // both exchanges: the look waited for each
      if (exchange.response.statusCode !== 200) {
        const { statusCode: status, headers } = exchange.response;
        discard(exchange.response.body);
        if (status === 416) {
          throw this.#badResponse(exchange.url.href, 'answered 416 without Content-Range to bytes=0-' + (blockSize - 1) + ', and 416 again to a GET without Range: its size is unknown');
        }
        throw statusError(status, headers, exchange.url.href, this.#options.maxRetryAfterMs);
      }
    }
    const { response } = exchange;
    const url = exchange.url.href;
    try {
      const first = this.#firstResponseSize(response, url, blockSize);
      const { size, bodyTo } = first;
      // `bytes=0-N` is unsatisfiable only for an empty file: a 416 to it
      // then a Content-Length of 0 is that (ranges work, there are none);
      // a longer file means the server refuses ranges it should serve.
      const rangesSupported = first.rangesSupported || (bare416 && size === 0);
      const digest = digestFromHeaders(response.headers);
      const identity = this.#identityOf(response.headers, size, digest);
      const expected = this.#options.expected;
      if (expected !== undefined) {
        const changes = compareIdentity(expected, identity);
        if (changes.length > 0) throw new RemoteChangedError(this.#origin.url.href, changes, 0);
      }
      this.#resolved = exchange;
      this.#digest = digest;
      if (bodyTo >= 0) this.#hold(response.body, bodyTo, url);
      else discard(response.body);
      return Object.freeze({
        contentLength: size,
        blockSize,
        identity,
        rangesSupported,
        pinned: pinKind(identity) !== 'none',
        firstAnswerIdleMs: idleWhileAsking,
      });
    } catch (err) {
      release(response.body);
      throw err;
    }
  }

  /** Size, range support and the last byte the body covers (-1: no body worth keeping) of the first response. */
  #firstResponseSize(
    response: HttpResponse,
    url: string,
    blockSize: number,
  ): { size: number; rangesSupported: boolean; bodyTo: number } {
    const { statusCode: status, headers } = response;
    if (status !== 200 && status !== 206 && status !== 416) {
      throw statusError(status, headers, url, this.#options.maxRetryAfterMs);
    }
    this.#checkEncoding(headers, url);
    this.#checkSizeFits(headers, url);
    const range = parseContentRange(headerValue(headers, 'content-range'));
    if (status === 200) {
      const size = parseContentLength(headerValue(headers, 'content-length'));
      if (size === undefined) {
        throw new BlockfetchError(
          'BLOCKFETCH_RANGE_NOT_SUPPORTED',
          `${redactUrl(url)} ignores Range requests and does not send a Content-Length: its size is unknown`,
          { hint: 'blockfetch needs the size to preallocate and resume; use a server that supports byte ranges' },
        );
      }
      return { size, rangesSupported: false, bodyTo: size - 1 };
    }
    // 206 or 416: either the range we asked for, or an empty file (`bytes */0`).
    if (range !== undefined && range.from === -1 && range.size === 0) {
      return { size: 0, rangesSupported: true, bodyTo: -1 };
    }
    if (status === 206 && range !== undefined && range.from === 0 && range.size === undefined) {
      throw new BlockfetchError('BLOCKFETCH_UNUSABLE_RESPONSE', `${redactUrl(url)} does not tell the file's size (Content-Range ${headerValue(headers, 'content-range')})`);
    }
    if (status !== 206 || range === undefined || range.size === undefined || range.from !== 0 || range.to !== Math.min(blockSize, range.size) - 1) {
      throw this.#badResponse(url, `answered ${status} with Content-Range ${headerValue(headers, 'content-range') ?? '(none)'} to bytes=0-${blockSize - 1}`);
    }
    this.#checkContentLength(headers, range.to + 1, url);
    return { size: range.size, rangesSupported: true, bodyTo: range.to };
  }

  #identityOf(headers: IncomingHttpHeaders, size: number, digest: ExpectedDigest | undefined): RemoteIdentity {
    const etag = headerValue(headers, 'etag');
    const lastModified = headerValue(headers, 'last-modified');
    return Object.freeze({
      url: this.name,
      size,
      ...(etag === undefined ? {} : { etag }),
      ...(lastModified === undefined ? {} : { lastModified }),
      ...(digest === undefined ? {} : { digest }),
    });
  }

  /** Remembers a body handed out until it closes. */
  #track(body: ResponseBody): void {
    this.#open.add(body);
    body.once('close', () => this.#open.delete(body));
  }

  /** Keeps the first body for a while; see {@link HttpReaderOptions.firstBodyHoldMs}. */
  #hold(body: ResponseBody, to: number, url: string): void {
    const timer = setTimeout(() => {
      if (this.#held?.body === body && this.#takeHeld()) release(body);
    }, this.#options.firstBodyHoldMs);
    timer.unref();
    this.#held = { to, body, url, timer };
  }

  /** Takes the kept body out (so no one else gets it), or undefined. */
  #takeHeld(): HeldBody | undefined {
    const held = this.#held;
    if (held === undefined) return undefined;
    this.#held = undefined;
    clearTimeout(held.timer);
    return held.body.destroyed ? undefined : held;
  }

  /** A pinned, validated request for `from..to`. */
  async #fetch(from: number, to: number, info: ContentInfo, signal: AbortSignal, lend = false): Promise<AsyncIterable<Uint8Array>> {
    const extra = {
      ...(info.rangesSupported ? { range: `bytes=${from}-${to}` } : {}),
      ...pinHeaders(info.identity),
    };
    let exchange = await this.#send(this.#resolved, extra, signal, lend);
    const status = exchange.response.statusCode;
    if ((status === 403 || status === 410) && exchange.url.href !== this.#origin.url.href) {
      // A signed URL we were redirected to has probably expired: ask the
      // original URL again. The pin headers go along, so a new revision
      // behind it answers 412 (or a different ETag) and fails closed.
      discard(exchange.response.body);
      exchange = await this.#send(this.#origin, extra, signal, lend);
    }
    const { response } = exchange;
    try {
      this.#validate(response, exchange.url.href, from, to, info);
    } catch (err) {
      release(response.body);
      throw err;
    }
    this.#resolved = { url: exchange.url, headers: exchange.headers };
    this.#track(response.body);
    return exactBody(response.body, { length: to - from + 1, beyond: 'error', url: exchange.url.href, signal });
  }

  /** Throws unless `response` is exactly `from..to` of the pinned revision. */
  #validate(response: HttpResponse, url: string, from: number, to: number, info: ContentInfo): void {
    const { statusCode: status, headers } = response;
    const identity = info.identity;
    const expectedStatus = info.rangesSupported ? 206 : 200;
    if (status === 412) {
      throw new RemoteChangedError(this.#origin.url.href, this.#preconditionChanges(headers, identity), 0);
    }
    const range = parseContentRange(headerValue(headers, 'content-range'));
    if ((status === 206 || status === 416) && range?.size !== undefined && range.size !== identity.size) {
      throw this.#changed([{ field: 'size', before: String(identity.size), after: String(range.size) }]);
    }
    if (status !== expectedStatus) {
      if (status >= 200 && status < 300 || status === 416) {
        throw this.#badResponse(url, `answered ${status} to ${info.rangesSupported ? `bytes=${from}-${to}` : 'a GET of the whole file'}`);
      }
      throw statusError(status, headers, url, this.#options.maxRetryAfterMs);
    }
    this.#checkEncoding(headers, url);
    // A response that does not carry the identity the first one had is not
    // evidence of that revision, whatever its bytes are: a server (or a
    // cache in front of it) that drops the ETag may also have ignored the
    // If-Match that came with the request.
    const etag = headerValue(headers, 'etag');
    if (identity.etag !== undefined && etag !== identity.etag) {
      throw this.#changed([{ field: 'etag', before: identity.etag, after: etag ?? '(none sent)' }]);
    }
    if (pinKind(identity) !== 'etag') {
      // Without a strong ETag, Last-Modified is the best evidence left.
      const lastModified = headerValue(headers, 'last-modified');
      if (identity.lastModified !== undefined && lastModified !== identity.lastModified) {
        throw this.#changed([{ field: 'lastModified', before: identity.lastModified, after: lastModified ?? '(none sent)' }]);
      }
    }
    if (status === 200) {
      const length = parseContentLength(headerValue(headers, 'content-length'));
      if (length !== undefined && length !== identity.size) {
        throw this.#changed([{ field: 'size', before: String(identity.size), after: String(length) }]);
      }
      return;
    }
    if (range === undefined || range.from !== from || range.to !== to || range.size === undefined) {
      throw this.#badResponse(url, `answered Content-Range ${headerValue(headers, 'content-range') ?? '(none)'} to bytes=${from}-${to}`);
    }
    this.#checkContentLength(headers, to - from + 1, url);
  }

  /** What a 412 tells: the pinned value, and the current one if the server sent it. */
  #preconditionChanges(headers: IncomingHttpHeaders, identity: RemoteIdentity): RemoteChange[] {
    if (pinKind(identity) === 'etag') {
      return [{ field: 'etag', before: identity.etag ?? '', after: headerValue(headers, 'etag') ?? '(412 Precondition Failed)' }];
    }
    return [
      {
        field: 'lastModified',
        before: identity.lastModified ?? '',
        after: headerValue(headers, 'last-modified') ?? '(412 Precondition Failed)',
      },
    ];
  }

  #changed(changes: RemoteChange[]): RemoteChangedError {
    return new RemoteChangedError(this.#origin.url.href, changes, 0);
  }

  #badResponse(url: string, what: string): BlockfetchError {
    return new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(url)} ${what}`);
  }

  /** A Content-Length, when sent, must be exactly the range's length. */
  #checkContentLength(headers: IncomingHttpHeaders, expected: number, url: string): void {
    const raw = headerValue(headers, 'content-length');
    if (raw === undefined) return;
    if (parseContentLength(raw) !== expected) {
      throw this.#badResponse(url, `sent Content-Length ${raw} for a range of ${expected} bytes`);
    }
  }

  /**
   * A size past 2^53 - 1 bytes (8 PiB) cannot be counted exactly in a
   * JavaScript number: refuse it for good rather than retry a response that
   * only looks malformed.
   */
  #checkSizeFits(headers: IncomingHttpHeaders, url: string): void {
    const range = /\/(\d+)\s*$/.exec(headerValue(headers, 'content-range') ?? '')?.[1];
    const length = /^\s*(\d+)\s*$/.exec(headerValue(headers, 'content-length') ?? '')?.[1];
    for (const digits of [range, length]) {
      if (digits !== undefined && !Number.isSafeInteger(Number(digits))) {
        throw new BlockfetchError('BLOCKFETCH_UNUSABLE_RESPONSE', `${redactUrl(url)} says the file is ${digits} bytes, more than the ${Number.MAX_SAFE_INTEGER} blockfetch can address`, {
          hint: 'check the URL: no real file is that large',
        });
      }
    }
  }

  /** A compressed body has other offsets and another length than the file: refuse it. */
  #checkEncoding(headers: IncomingHttpHeaders, url: string): void {
    const encoding = headerValue(headers, 'content-encoding')?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      throw new BlockfetchError(
        'BLOCKFETCH_UNUSABLE_RESPONSE',
        `${redactUrl(url)} sent a ${encoding}-encoded body although only identity was accepted; byte ranges of it are not the file's`,
      );
    }
  }
}

/**
 * `head`'s chunks, then `rest`'s. Ending early (an error in `head`, or the
 * consumer's `return()`) closes `rest` too, even if it was never read.
 */
async function* joinBodies(head: AsyncIterable<Uint8Array>, rest: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  const restIterator = rest[Symbol.asyncIterator]();
  let restStarted = false;
  try {
    yield* head;
    restStarted = true;
    yield* { [Symbol.asyncIterator]: () => restIterator };
  } finally {
    if (!restStarted) await restIterator.return?.();
  }
}
