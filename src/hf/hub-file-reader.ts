/**
 * `HubFileReader`: the {@link Reader} of one file of one commit on the
 * Hugging Face Hub. It asks the Hub where the file is (`GET
 * /OWNER/NAME/resolve/COMMIT/PATH`, redirects not followed), checks the
 * answer against the tree listing, and reads the bytes with an
 * {@link HttpReader}:
 *
 * - an LFS file answers 302 to a signed CDN URL, with `X-Linked-Etag` (its
 *   sha256), `X-Linked-Size` and `X-Repo-Commit`: both must name what the
 *   listing said, and the CDN is read WITHOUT the token (it is never given
 *   to a reader of another origin than the Hub's);
 * - a small file is served by the Hub itself, its git blob id as ETag.
 *
 * What is pinned: the commit, in every URL (a moving branch cannot change
 * what a commit's path holds); the file's sha256 or blob id, checked by
 * the downloader before the final rename; within a run the CDN's ETag, in
 * `If-Match` on every ranged request, and a re-signed URL must serve the
 * same ETag and size. When a signed URL expires mid-download (the CDN
 * answers 403 or 410), the Hub is asked again for a fresh one and the
 * request continues there.
 */
import type { Readable } from 'node:stream';

import type { Dispatcher } from 'undici';
import { request } from '../http/undici.js';

import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import { DEFAULT_MAX_RETRY_AFTER_MS } from '../defaults.js';
import type { ContentInfo, ReadOptions, Reader } from '../download/reader.js';
import { SharedLook } from '../download/reader-parts.js';
import { BlockfetchError, HttpStatusError, RemoteChangedError, redactUrl } from '../errors.js';
import { networkError } from '../http/failures.js';
import { headerValue } from '../http/headers.js';
import { HttpReader } from '../http/http-reader.js';
import { REDIRECT_STATUSES } from '../http/redirect.js';
import { BLOCKFETCH_VERSION } from '../http/version.js';
import type { HubTreeEntry } from './hub-api.js';
import { HUB_HEADERS, hubErrorFor } from './hub-errors.js';

/** Options of {@link HubFileReader}. */
export interface HubFileReaderOptions {
  /** `{endpoint}/[datasets/|spaces/]OWNER/NAME/resolve/COMMIT/PATH`. */
  readonly resolveUrl: string;
  /** The commit the URL names: the Hub's `X-Repo-Commit` must agree. */
  readonly commit: string;
  /** The file as the tree listed it: its size, blob id and LFS sha256. */
  readonly file: HubTreeEntry;
  /** The repository, for messages (`model org/name`). */
  readonly what: string;
  /** The token, sent to the Hub's origin only. @default undefined */
  readonly token?: string;
  /** Where the token came from, for messages. @default undefined */
  readonly tokenSource?: string | undefined;
  /** The undici dispatcher; the caller owns it. */
  readonly dispatcher: Dispatcher;
  /** The first request's size and preferred block size. @default the HttpReader's */
  readonly blockSize?: number;
  /** Headers and idle timeout per request, in ms. @default the HttpReader's (30000) */
  readonly timeoutMs?: number;
  /** The longest Retry-After honoured as asked, in ms. @default 120000 */
  readonly maxRetryAfterMs?: number;
}

/** Where the Hub said the bytes are: the CDN URL it redirected to, or the resolve URL itself. */
interface Location {
  readonly url: string;
}

/** The inner reader, numbered so concurrent 403s re-resolve once. */
interface Inner {
  readonly reader: HttpReader;
  readonly generation: number;
}

/**
 * The defaults of {@link HubFileReaderOptions} that are not the HttpReader's.
 *
 * @example
 * ```ts
 * defaultHubFileReaderOptions.maxRetryAfterMs // 120000, as the downloads' backoff
 * ```
 */
export const defaultHubFileReaderOptions = Object.freeze({
  /** The longest Retry-After honoured as asked, in ms: the downloads' own cap. */
  maxRetryAfterMs: DEFAULT_MAX_RETRY_AFTER_MS,
});

/**
 * Normalizes an ETag as huggingface_hub's `_normalize_etag` does: without
 * `W/` and quotes.
 *
 * @example
 * ```ts
 * normalizeHubEtag('W/"abc"') // 'abc'
 * ```
 */
export function normalizeHubEtag(etag: string | undefined): string | undefined {
  return etag?.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}

/**
 * The digest a Hub file must have: the sha256 of an LFS file (`lfs.oid`),
 * else the git blob id (`oid`).
 *
 * @example
 * ```ts
 * hubFileDigest({ type: 'file', path: 'config.json', oid, size: 512 }) // { algorithm: 'git-sha1', hex: oid }
 * ```
 */
export function hubFileDigest(file: HubTreeEntry): ExpectedDigest {
  return file.lfs === undefined ? { algorithm: 'git-sha1', hex: file.oid } : { algorithm: 'sha256', hex: file.lfs.oid };
}

/**
 * A {@link Reader} of one Hub file at one commit; see the module comment
 * for what it checks and pins.
 *
 * @example
 * ```ts
 * const reader = new HubFileReader({ resolveUrl, commit, file, what: 'model org/name', token, dispatcher });
 * await downloadFile(reader, 'model.safetensors');
 * await reader.close();
 * ```
 */
export class HubFileReader implements Reader {
  /** The resolve URL (the token is a header, never in it). */
  readonly name: string;
  readonly #options: HubFileReaderOptions;
  readonly #hubOrigin: string;
  readonly #digest: ExpectedDigest;
  #inner: Promise<Inner> | undefined;
  /** The look, made once (again after a failure). */
  readonly #look = new SharedLook((signal) => this.#lookNow(signal));
  /** The first CDN response's identity: every re-signed URL must serve the same. */
  #pinned: RemoteIdentity | undefined;
  readonly #readers = new Set<HttpReader>();

  constructor(options: HubFileReaderOptions) {
    this.#options = options;
    this.name = redactUrl(options.resolveUrl);
    this.#hubOrigin = new URL(options.resolveUrl).origin;
    this.#digest = hubFileDigest(options.file);
  }

  /** Asks the Hub (once) and looks at the bytes; the identity is the commit's path and the file's digest. */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    return this.#look.get(signal);
  }

  /** The sha256 (LFS) or git blob id (small file) the tree listed. */
  digest(): ExpectedDigest {
    return this.#digest;
  }

  async getReader(from: number, to: number, signal: AbortSignal, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
    await this.contentLengthAndBlockSize(signal);
    return this.#withFreshUrl(signal, (reader) => reader.getReader(from, to, signal, options));
  }

  async revalidate(signal: AbortSignal): Promise<void> {
    await this.contentLengthAndBlockSize(signal);
    await this.#withFreshUrl(signal, (reader) => reader.revalidate(signal));
  }

  /** Closes every inner reader (their bodies and sockets). Idempotent. */
  async close(): Promise<void> {
    const readers = [...this.#readers];
    this.#readers.clear();
    await Promise.all(readers.map((reader) => reader.close().catch(() => undefined)));
  }

  async #lookNow(signal: AbortSignal | undefined): Promise<ContentInfo> {
    const { reader } = await this.#currentInner(signal);
    const info = await reader.contentLengthAndBlockSize(signal);
    const { file } = this.#options;
    if (info.contentLength !== file.size) {
      throw new BlockfetchError(
        'BLOCKFETCH_UNUSABLE_RESPONSE',
        `${this.name} serves ${info.contentLength} bytes, but commit ${this.#options.commit} lists ${JSON.stringify(file.path)} as ${file.size}`,
      );
    }
    this.#pinned ??= info.identity;
    // The record a resume compares: the commit's path (no signed query),
    // the size and the content's own id, the same on every run whatever
    // CDN URL serves it; the CDN's ETag is pinned inside the run.
    const identity: RemoteIdentity = Object.freeze({
      url: this.name,
      size: file.size,
      etag: `"${file.lfs?.oid ?? file.oid}"`,
      digest: this.#digest,
    });
    return Object.freeze({
      contentLength: info.contentLength,
      blockSize: info.blockSize,
      identity,
      rangesSupported: info.rangesSupported,
      pinned: true,
      ...(info.firstAnswerIdleMs === undefined ? {} : { firstAnswerIdleMs: info.firstAnswerIdleMs }),
    });
  }

  #currentInner(signal: AbortSignal | undefined): Promise<Inner> {
    if (this.#inner === undefined) {
      const inner = this.#newInner(0, signal);
      this.#inner = inner;
      inner.catch(() => {
        if (this.#inner === inner) this.#inner = undefined;
      });
    }
    return this.#inner;
  }

  /**
   * Runs `use` on the current inner reader; if the CDN refused the signed
   * URL (403/410), asks the Hub for a fresh one (once for all requests that
   * saw that refusal) and runs `use` again there.
   */
  async #withFreshUrl<T>(signal: AbortSignal, use: (reader: HttpReader) => Promise<T>): Promise<T> {
    const inner = await this.#currentInner(signal);
    try {
      return await use(inner.reader);
    } catch (err) {
      if (!(err instanceof HttpStatusError) || (err.status !== 403 && err.status !== 410)) throw err;
      const fresh = await this.#renew(inner, signal);
      return use(fresh.reader);
    }
  }

  /** A new inner reader after `stale`'s URL expired; shared by every request that saw it expire. */
  #renew(stale: Inner, signal: AbortSignal): Promise<Inner> {
    const current = this.#inner;
    if (current !== undefined) {
      // Someone already renewed past `stale`: use theirs.
      const renewed = current.then((inner) => (inner.generation > stale.generation ? inner : undefined)).catch(() => undefined);
      return renewed.then((inner) => inner ?? this.#startRenewal(stale, signal));
    }
    return this.#startRenewal(stale, signal);
  }

  #startRenewal(stale: Inner, signal: AbortSignal): Promise<Inner> {
    const next = this.#newInner(stale.generation + 1, signal);
    this.#inner = next;
    next.then(
      () => {
        this.#readers.delete(stale.reader);
        void stale.reader.close().catch(() => undefined);
      },
      () => {
        if (this.#inner === next) this.#inner = undefined;
      },
    );
    return next;
  }

  /** Asks the Hub where the bytes are and opens an HttpReader there (its first look included). */
  async #newInner(generation: number, signal: AbortSignal | undefined): Promise<Inner> {
    const location = await this.#resolve(signal);
    const sameOrigin = new URL(location.url).origin === this.#hubOrigin;
    const { token, dispatcher, blockSize, timeoutMs } = this.#options;
    const reader = new HttpReader({
      url: location.url,
      // The token goes to the Hub's own origin and nowhere else: a CDN
      // reader is made without it, so no redirect or retry can leak it.
      headers: token !== undefined && sameOrigin ? { authorization: `Bearer ${token}` } : {},
      dispatcher,
      ...(blockSize === undefined ? {} : { blockSize }),
      ...(timeoutMs === undefined ? {} : { requestTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs }),
      ...(this.#pinned === undefined ? {} : { expected: pinnedIdentity(this.#pinned, location.url) }),
    });
    this.#readers.add(reader);
    try {
      await reader.contentLengthAndBlockSize(signal);
    } catch (err) {
      this.#readers.delete(reader);
      await reader.close().catch(() => undefined);
      throw err;
    }
    return { reader, generation };
  }

  /** One GET of the resolve URL, redirects not followed: where the bytes are, checked against the listing. */
  async #resolve(signal: AbortSignal | undefined): Promise<Location> {
    const { resolveUrl, token, file, commit, dispatcher, timeoutMs } = this.#options;
    const headers: Record<string, string> = {
      'user-agent': `blockfetch/${BLOCKFETCH_VERSION}`,
      'accept-encoding': 'identity',
      // One byte: a small file is answered by the Hub itself, and its body is not wanted here.
      range: 'bytes=0-0',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    };
    let response: Dispatcher.ResponseData;
    try {
      response = await request(resolveUrl, {
        method: 'GET',
        headers,
        dispatcher,
        signal: signal ?? null,
        ...(timeoutMs === undefined ? {} : { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }),
      });
    } catch (err) {
      throw networkError(err, resolveUrl, signal);
    }
    const { statusCode: status, headers: answer } = response;
    await dumpBody(response.body);
    if (!REDIRECT_STATUSES.has(status) && status !== 200 && status !== 206 && !(status === 416 && file.size === 0)) {
      throw hubErrorFor(status, answer, resolveUrl, { what: `${this.#options.what} file ${JSON.stringify(file.path)}`, tokenSource: token === undefined ? undefined : this.#options.tokenSource }, this.#options.maxRetryAfterMs ?? defaultHubFileReaderOptions.maxRetryAfterMs);
    }
    const repoCommit = headerValue(answer, HUB_HEADERS.repoCommit)?.trim();
    if (repoCommit !== undefined && repoCommit !== commit) {
      throw new RemoteChangedError(this.name, [{ field: 'etag', before: `commit ${commit}`, after: `commit ${repoCommit} (X-Repo-Commit)` }], 0);
    }
    const linkedEtag = normalizeHubEtag(headerValue(answer, HUB_HEADERS.linkedEtag));
    const etag = linkedEtag ?? normalizeHubEtag(headerValue(answer, 'etag'));
    const expectedEtag = file.lfs?.oid ?? file.oid;
    if (etag !== undefined && etag !== expectedEtag) {
      throw new RemoteChangedError(this.name, [{ field: 'etag', before: expectedEtag, after: `${etag} (${linkedEtag === undefined ? 'ETag' : 'X-Linked-Etag'})` }], 0);
    }
    const linkedSize = headerValue(answer, HUB_HEADERS.linkedSize);
    if (linkedSize !== undefined && Number(linkedSize) !== file.size) {
      throw new RemoteChangedError(this.name, [{ field: 'size', before: String(file.size), after: `${linkedSize} (X-Linked-Size)` }], 0);
    }
    if (!REDIRECT_STATUSES.has(status)) return { url: resolveUrl };
    const location = headerValue(answer, 'location');
    let url: URL;
    try {
      url = new URL(location ?? '', resolveUrl);
    } catch (cause) {
      throw new BlockfetchError('BLOCKFETCH_REDIRECT', `${this.name} redirected to an invalid URL`, { cause });
    }
    if (location === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new BlockfetchError('BLOCKFETCH_REDIRECT', `${this.name} redirected without an http(s) Location`);
    }
    if (new URL(resolveUrl).protocol === 'https:' && url.protocol === 'http:') {
      throw new BlockfetchError('BLOCKFETCH_REDIRECT', `${this.name} redirected from https to http; refusing the downgrade`);
    }
    return { url: url.href };
  }
}

/** What a re-signed URL must serve: the first one's size and ETag (or Last-Modified without an ETag). */
function pinnedIdentity(first: RemoteIdentity, url: string): RemoteIdentity {
  return {
    url: redactUrl(url),
    size: first.size,
    ...(first.etag !== undefined ? { etag: first.etag } : first.lastModified !== undefined ? { lastModified: first.lastModified } : {}),
  };
}

async function dumpBody(body: Readable & { dump?: () => Promise<void> }): Promise<void> {
  try {
    await body.dump?.();
  } catch {
    // Only the headers were wanted.
  }
}
