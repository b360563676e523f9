/**
 * The few Hub API calls a download needs, as huggingface_hub makes them
 * (`hf_api.py`): resolve a revision to its commit, describe one path, and
 * list a commit's files (paginated with `Link: <…>; rel="next"`, as its
 * `utils/_pagination.py` follows them). The token goes in `Authorization`
 * to the Hub's own origin only; a redirect or a next page elsewhere gets
 * none. A rate limit (429) or a server error is retried with the
 * download's backoff, honouring Retry-After.
 */
import type { IncomingHttpHeaders } from 'node:http';

import type { Dispatcher } from 'undici';
import { request } from '../http/undici.js';

import { backoffDelay, defaultRetryOptions, sleep, type RetryOptions } from '../download/backoff.js';
import { BlockfetchError, redactUrl } from '../errors.js';
import { networkError } from '../http/failures.js';
import { headerValue } from '../http/headers.js';
import { followRedirect, REDIRECT_STATUSES } from '../http/redirect.js';
import { BLOCKFETCH_VERSION } from '../http/version.js';
import { quoteLikePython, type HfLocation } from './hf-url.js';
import { hubErrorFor, type HubRequestContext } from './hub-errors.js';

/** One file or folder of a commit, as the tree and paths-info APIs describe it. */
export interface HubTreeEntry {
  readonly type: 'file' | 'directory';
  /** The path inside the repository, `/`-separated. */
  readonly path: string;
  /** The git object id: for a file, its blob id (`git-sha1` of its bytes, or of its LFS pointer). */
  readonly oid: string;
  /** Size in bytes (of the real file for an LFS file). */
  readonly size: number;
  /** Set for an LFS file: the sha256 of its bytes and their size. */
  readonly lfs?: { readonly oid: string; readonly size: number };
}

/** Options of {@link HubApi}. */
export interface HubApiOptions {
  /** The Hub's base URL (`HF_ENDPOINT`). */
  readonly endpoint: string;
  /** The token, sent to the endpoint's origin only. @default undefined (anonymous) */
  readonly token?: string;
  /** Where the token came from, for messages. @default undefined */
  readonly tokenSource?: string | undefined;
  /** The undici dispatcher; the caller owns it. */
  readonly dispatcher: Dispatcher;
  /** Retries of a rate-limited or failing call. @default defaultRetryOptions */
  readonly retry?: RetryOptions;
  /** Told of every retry before its wait. @default undefined */
  readonly onRetry?: (retry: { readonly attempt: number; readonly delayMs: number; readonly error: BlockfetchError }) => void;
  /** How long to wait for headers and for body bytes, in ms. @default 30000 */
  readonly timeoutMs?: number;
}

/**
 * The defaults of {@link HubApiOptions}.
 *
 * @example
 * ```ts
 * defaultHubApiOptions.maxPages // 10000
 * ```
 */
export const defaultHubApiOptions = Object.freeze({
  timeoutMs: 30_000,
  /** A listing longer than this many pages is refused rather than followed forever. */
  maxPages: 10_000,
  /** Redirects followed per call (the Hub redirects a renamed repository). */
  maxRedirects: 5,
});

/** The Hub's API path segment for each repository kind. */
const API_KIND = Object.freeze({ model: 'models', dataset: 'datasets', space: 'spaces' });

const SHA1_HEX = /^[0-9a-f]{40}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * A client of the Hub's API for one endpoint and token.
 *
 * @example
 * ```ts
 * const api = new HubApi({ endpoint: 'https://huggingface.co', dispatcher });
 * const commit = await api.resolveRevision(parseHfUrl('hf://openai/whisper-tiny'));
 * const files = await api.listFiles(parseHfUrl('hf://openai/whisper-tiny'), commit);
 * ```
 */
export class HubApi {
  readonly #options: HubApiOptions;
  readonly #origin: string;

  constructor(options: HubApiOptions) {
    this.#options = options;
    this.#origin = new URL(options.endpoint).origin;
  }

  /** `OWNER/NAME` and its kind, for messages. */
  static describe(location: HfLocation): string {
    return `${location.repoType} ${location.repoId}`;
  }

  /**
   * The commit `location.revision` (default `main`) names now:
   * `GET /api/{kind}/OWNER/NAME/revision/REV`, its `sha`.
   */
  async resolveRevision(location: HfLocation, signal?: AbortSignal): Promise<string> {
    const revision = location.revision ?? 'main';
    const url = `${this.#apiBase(location)}/revision/${quoteLikePython(revision, '')}`;
    const what = `${HubApi.describe(location)}@${revision}`;
    const { body } = await this.#json(url, what, signal);
    const sha = (body as { sha?: unknown } | null)?.sha;
    if (typeof sha !== 'string' || !SHA1_HEX.test(sha)) {
      throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(url)} did not name a commit (no 40-hex "sha" in its answer)`);
    }
    return sha;
  }

  /**
   * What `path` is at `commit`: `POST /api/{kind}/OWNER/NAME/paths-info/COMMIT`
   * (huggingface_hub's `get_paths_info`). Undefined when no such path.
   */
  async pathInfo(location: HfLocation, commit: string, path: string, signal?: AbortSignal): Promise<HubTreeEntry | undefined> {
    const url = `${this.#apiBase(location)}/paths-info/${commit}`;
    const form = new URLSearchParams({ paths: path, expand: 'false' }).toString();
    const { body } = await this.#json(url, `${HubApi.describe(location)}@${commit}`, signal, {
      method: 'POST',
      body: form,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    if (!Array.isArray(body)) throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(url)} did not answer a JSON array`);
    return body.map((item) => treeEntry(item, url)).find((entry) => entry.path === path);
  }

  /**
   * Every file under `path` (`''`: the whole repository) at `commit`:
   * `GET /api/{kind}/OWNER/NAME/tree/COMMIT[/PATH]?recursive=true`, page
   * after page. Folders are left out.
   */
  async listFiles(location: HfLocation, commit: string, path = '', signal?: AbortSignal): Promise<HubTreeEntry[]> {
    let next: string | undefined = `${this.#apiBase(location)}/tree/${commit}${path === '' ? '' : `/${quoteLikePython(path, '')}`}?recursive=true&expand=false`;
    const files: HubTreeEntry[] = [];
    for (let page = 0; next !== undefined; page++) {
      if (page >= defaultHubApiOptions.maxPages) {
        throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(next)}: more than ${defaultHubApiOptions.maxPages} pages of files; refusing to follow more`);
      }
      const answer: { body: unknown; headers: IncomingHttpHeaders; url: string } = await this.#json(next, `${HubApi.describe(location)}@${commit}`, signal);
      if (!Array.isArray(answer.body)) throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(answer.url)} did not answer a JSON array`);
      for (const item of answer.body) {
        const entry = treeEntry(item, answer.url);
        if (entry.type === 'file') files.push(entry);
      }
      next = nextPage(headerValue(answer.headers, 'link'), answer.url);
    }
    return files;
  }

  #apiBase(location: HfLocation): string {
    return `${this.#options.endpoint}/api/${API_KIND[location.repoType]}/${location.repoId}`;
  }

  /** One API call answered in JSON, retried while its failure is retryable. */
  async #json(
    url: string,
    what: string,
    signal: AbortSignal | undefined,
    init: { readonly method?: 'GET' | 'POST'; readonly body?: string; readonly headers?: Record<string, string> } = {},
  ): Promise<{ body: unknown; headers: IncomingHttpHeaders; url: string }> {
    const retry = { ...defaultRetryOptions, ...this.#options.retry };
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#jsonOnce(url, what, signal, init, retry.maxRetryAfterMs);
      } catch (err) {
        if (!(err instanceof BlockfetchError) || !err.retryable || attempt >= retry.attemptsPerBlock || signal?.aborted === true) throw err;
        const delayMs = backoffDelay(attempt, retry, err.retryAfterMs);
        this.#options.onRetry?.({ attempt, delayMs, error: err });
        await sleep(delayMs, signal);
      }
    }
  }

  async #jsonOnce(
    url: string,
    what: string,
    signal: AbortSignal | undefined,
    init: { readonly method?: 'GET' | 'POST'; readonly body?: string; readonly headers?: Record<string, string> },
    maxRetryAfterMs: number,
  ): Promise<{ body: unknown; headers: IncomingHttpHeaders; url: string }> {
    let target = new URL(url);
    let headers: Record<string, string> = { accept: 'application/json', 'user-agent': `blockfetch/${BLOCKFETCH_VERSION}`, ...init.headers };
    // The token only ever goes to the Hub's own origin.
    if (this.#options.token !== undefined && target.origin === this.#origin) headers['authorization'] = `Bearer ${this.#options.token}`;
    const timeout = this.#options.timeoutMs ?? defaultHubApiOptions.timeoutMs;
    for (let hops = 0; ; hops++) {
      let response: Dispatcher.ResponseData;
      try {
        response = await request(target, {
          method: init.method ?? 'GET',
          headers,
          ...(init.body === undefined ? {} : { body: init.body }),
          dispatcher: this.#options.dispatcher,
          signal: signal ?? null,
          headersTimeout: timeout,
          bodyTimeout: timeout,
        });
      } catch (err) {
        throw networkError(err, target.href, signal);
      }
      const { statusCode: status } = response;
      if (REDIRECT_STATUSES.has(status) && hops < defaultHubApiOptions.maxRedirects) {
        await response.body.dump().catch(() => undefined);
        const next = followRedirect(target, headerValue(response.headers, 'location'), headers, ['authorization']);
        target = next.url;
        headers = { ...next.headers };
        continue;
      }
      if (status < 200 || status > 299) {
        await response.body.dump().catch(() => undefined);
        const context: HubRequestContext = { what, tokenSource: headers['authorization'] === undefined ? undefined : this.#options.tokenSource };
        throw hubErrorFor(status, response.headers, target.href, context, maxRetryAfterMs);
      }
      let text: string;
      try {
        text = await response.body.text();
      } catch (err) {
        throw networkError(err, target.href, signal);
      }
      try {
        return { body: JSON.parse(text) as unknown, headers: response.headers, url: target.href };
      } catch {
        throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(target.href)} answered ${status} with a body that is not JSON`);
      }
    }
  }
}

/** Checks one item of a tree or paths-info answer; a malformed one is a bad response, not a file. */
function treeEntry(item: unknown, url: string): HubTreeEntry {
  const bad = (what: string): BlockfetchError => new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${redactUrl(url)} listed an entry with ${what}`);
  if (typeof item !== 'object' || item === null) throw bad('no object');
  const { type, path, oid, size, lfs } = item as Record<string, unknown>;
  if (type !== 'file' && type !== 'directory') throw bad(`type ${JSON.stringify(type)}`);
  if (typeof path !== 'string' || path === '') throw bad('no path');
  if (type === 'directory') return { type, path, oid: typeof oid === 'string' ? oid : '', size: 0 };
  if (typeof oid !== 'string' || !SHA1_HEX.test(oid)) throw bad(`an oid that is not 40 hex digits (${JSON.stringify(path)})`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad(`no valid size (${JSON.stringify(path)})`);
  if (lfs === undefined || lfs === null) return { type, path, oid, size };
  const { oid: lfsOid, size: lfsSize } = lfs as Record<string, unknown>;
  if (typeof lfsOid !== 'string' || !SHA256_HEX.test(lfsOid)) throw bad(`an lfs.oid that is not a sha256 (${JSON.stringify(path)})`);
  if (lfsSize !== size) throw bad(`an lfs.size ${String(lfsSize)} that is not its size ${size} (${JSON.stringify(path)})`);
  return { type, path, oid, size, lfs: { oid: lfsOid, size } };
}

/** The `rel="next"` URL of a Link header (RFC 8288), resolved against the page's URL. */
function nextPage(link: string | undefined, base: string): string | undefined {
  if (link === undefined) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (match === null) continue;
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(match[2] ?? '')) return new URL(match[1] ?? '', base).href;
  }
  return undefined;
}

