/**
 * A loopback stand-in of the Hugging Face Hub: two origins on two ports,
 * the Hub (API and resolve) and its CDN, following the real protocol as
 * huggingface_hub reads it:
 *
 * - `GET /api/{models|datasets|spaces}/OWNER/NAME/revision/REV` → `{ id, sha, … }`
 * - `GET /api/…/tree/REV[/PATH]?recursive=true` → entries `{ type, oid, size, path, lfs? }`,
 *   `pageSize` at a time, the next page in `Link: <…>; rel="next"`
 * - `POST /api/…/paths-info/REV` (form `paths=`) → the entries of those paths
 * - `GET [/datasets|/spaces]/OWNER/NAME/resolve/REV/PATH`: a small file is
 *   served here (ETag its git blob id, Range → 206); an LFS file answers 302
 *   to a signed CDN URL with `X-Linked-Etag` (sha256), `X-Linked-Size`,
 *   `X-Repo-Commit`
 * - errors as 404 with `X-Error-Code` RepoNotFound / RevisionNotFound /
 *   EntryNotFound; a gated or private repository 401s without the token
 *   (GatedRepo / RepoNotFound), any wrong token 401s with "Invalid
 *   credentials in Authorization header"; `rateLimit` answers 429 with
 *   Retry-After
 * - the CDN checks the signature and `Expires` of every URL (403 when
 *   expired or forged) against the stand-in's clock, which a test moves
 *   with {@link HubStandIn.advanceClock}; serves ranges (206), ETag the
 *   sha256, `If-Match` (412)
 *
 * Every request to either origin is recorded with its headers.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { RequestGauge } from './request-gauge.js';

/** One file of a commit. */
export interface StandInFile {
  readonly path: string;
  readonly content: Buffer;
  /** Stored with LFS: served through the CDN. */
  readonly lfs?: boolean;
}

/** One repository. */
export interface StandInRepo {
  readonly type: 'model' | 'dataset' | 'space';
  readonly id: string;
  /** Commits by sha. */
  readonly commits: Map<string, readonly StandInFile[]>;
  /** Branch or tag → commit sha. */
  readonly refs: Map<string, string>;
  /** Needs the token; without it 401 GatedRepo. */
  readonly gated?: boolean;
}

/** A recorded request. */
export interface StandInRequest {
  readonly origin: 'hub' | 'cdn';
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly status: number;
}

/** Options of {@link startHubStandIn}. */
export interface HubStandInOptions {
  readonly repos: readonly StandInRepo[];
  /** The one token the stand-in accepts. */
  readonly token: string;
  /** Tree entries per page. @default 1000 */
  readonly pageSize?: number;
  /** How long a signed CDN URL stays valid, in seconds of the stand-in's clock. @default 3600 */
  readonly urlLifetimeSeconds?: number;
  /** Answers 429 (Retry-After: `retryAfter`) to the first `times` Hub requests whose path matches. */
  readonly rateLimit?: { readonly path: RegExp; readonly times: number; readonly retryAfter: string };
  /** Small files (by path) served with these bytes instead, under the listed ETag: a corrupt copy. */
  readonly serveInstead?: ReadonlyMap<string, Buffer>;
  /** Called before each request is answered. */
  readonly onRequest?: (origin: 'hub' | 'cdn', request: IncomingMessage) => void;
  /** A CDN request for which this returns true is never answered (a stalled CDN), until the client goes away. @default never */
  readonly holdCdn?: (request: IncomingMessage) => boolean;
  /** Awaited before a CDN request is answered (to hold requests until others arrive). @default none */
  readonly beforeCdn?: (request: IncomingMessage) => Promise<void>;
}

/** A running stand-in. */
export interface HubStandIn {
  /** `http://127.0.0.1:PORT` of the Hub: HF_ENDPOINT. */
  readonly endpoint: string;
  /** `http://127.0.0.1:PORT` of the CDN. */
  readonly cdn: string;
  readonly requests: StandInRequest[];
  /** The file requests (resolve and CDN) open at once, and for how many files. */
  readonly gauge: RequestGauge;
  /** Moves the stand-in's clock (signed URLs issued before may expire). */
  advanceClock(seconds: number): void;
  /** From now on the CDN sends this ETag for a blob (as a CDN whose object was replaced would). */
  setCdnEtag(etag: (sha256: string) => string): void;
  close(): Promise<void>;
}

/** git's blob id of `content`. */
export function gitBlobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** A fake commit sha from a label. */
export function commitSha(label: string): string {
  return createHash('sha1').update(`commit ${label}`).digest('hex');
}

/** The LFS pointer file git stores in place of an LFS file. */
function lfsPointer(content: Buffer): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256Hex(content)}\nsize ${content.length}\n`);
}

function treeEntryOf(file: StandInFile): Record<string, unknown> {
  if (file.lfs !== true) return { type: 'file', oid: gitBlobId(file.content), size: file.content.length, path: file.path };
  const pointer = lfsPointer(file.content);
  return {
    type: 'file',
    oid: gitBlobId(pointer),
    size: file.content.length,
    path: file.path,
    lfs: { oid: sha256Hex(file.content), size: file.content.length, pointerSize: pointer.length },
  };
}

/** Files and the folders they imply, sorted as the Hub lists them. */
function treeOf(files: readonly StandInFile[], under: string): Record<string, unknown>[] {
  const folders = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i++) folders.add(parts.slice(0, i).join('/'));
  }
  const inside = (path: string): boolean => under === '' || path.startsWith(`${under}/`);
  const entries = [
    ...[...folders].filter(inside).map((path) => ({ type: 'directory', oid: gitBlobId(Buffer.from(path)), size: 0, path })),
    ...files.filter((f) => inside(f.path)).map(treeEntryOf),
  ];
  return entries.sort((a, b) => String(a['path']).localeCompare(String(b['path'])));
}

function parseRange(header: string | undefined, size: number): { from: number; to: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const from = Number(match[1]);
  const to = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (from >= size || to < from) return 'unsatisfiable';
  return { from, to };
}

/** Sends `content` (or the asked range of it) with `etag`, as a static file server does. */
function sendBytes(req: IncomingMessage, res: ServerResponse, content: Buffer, etag: string, extra: Record<string, string>): number {
  const ifMatch = req.headers['if-match'];
  if (ifMatch !== undefined && ifMatch !== etag) {
    res.writeHead(412, { etag, ...extra }).end();
    return 412;
  }
  const range = parseRange(req.headers.range, content.length);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${content.length}`, etag, ...extra }).end();
    return 416;
  }
  if (range === undefined) {
    res.writeHead(200, { 'content-length': String(content.length), etag, 'accept-ranges': 'bytes', ...extra }).end(content);
    return 200;
  }
  res
    .writeHead(206, {
      'content-length': String(range.to - range.from + 1),
      'content-range': `bytes ${range.from}-${range.to}/${content.length}`,
      etag,
      'accept-ranges': 'bytes',
      ...extra,
    })
    .end(content.subarray(range.from, range.to + 1));
  return 206;
}

/**
 * Starts the stand-in on two loopback ports.
 *
 * @example
 * ```ts
 * const hub = await startHubStandIn({ repos: [repo], token: 'hf_test' });
 * // HF_ENDPOINT=hub.endpoint blockfetch hf://org/model
 * await hub.close();
 * ```
 */
export async function startHubStandIn(options: HubStandInOptions): Promise<HubStandIn> {
  const secret = randomBytes(16).toString('hex');
  const requests: StandInRequest[] = [];
  const gauge = new RequestGauge();
  const pageSize = options.pageSize ?? 1000;
  const lifetime = options.urlLifetimeSeconds ?? 3600;
  let clockSkew = 0;
  let cdnEtag = (sha: string): string => `"${sha}"`;
  const now = (): number => Math.floor(Date.now() / 1000) + clockSkew;
  let rateLimited = 0;
  const blobs = new Map<string, Buffer>();
  for (const repo of options.repos) for (const files of repo.commits.values()) for (const f of files) if (f.lfs === true) blobs.set(sha256Hex(f.content), f.content);

  const record = (origin: 'hub' | 'cdn', req: IncomingMessage, status: number): void => {
    requests.push({ origin, method: req.method ?? 'GET', url: req.url ?? '', headers: { ...req.headers }, status });
  };
  const sign = (sha: string, expires: number): string => createHmac('sha256', secret).update(`${sha}:${expires}`).digest('hex');

  let cdnBase = '';
  const cdn = createServer((req, res) => {
    options.onRequest?.('cdn', req);
    gauge.track(new URL(req.url ?? '/', 'http://cdn').pathname, res);
    if (options.holdCdn?.(req) === true) return;
    if (options.beforeCdn === undefined) return serveCdn(req, res);
    void options.beforeCdn(req).then(() => serveCdn(req, res));
  });
  const serveCdn = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://cdn');
    const sha = url.pathname.replace(/^\/+/, '');
    const expires = Number(url.searchParams.get('Expires'));
    const signature = url.searchParams.get('Signature') ?? '';
    const content = blobs.get(sha);
    let status: number;
    if (content === undefined) {
      res.writeHead(404).end();
      status = 404;
    } else if (signature !== sign(sha, expires) || now() > expires) {
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
      status = 403;
    } else {
      status = sendBytes(req, res, content, cdnEtag(sha), {});
    }
    record('cdn', req, status);
  };

  const hub = createServer((req, res) => {
    const answer = (status: number, headers: Record<string, string>, body?: string | Buffer): void => {
      res.writeHead(status, headers).end(body);
      record('hub', req, status);
    };
    const fail = (status: number, code: string | undefined, message: string): void =>
      answer(status, { ...(code === undefined ? {} : { 'x-error-code': code }), 'x-error-message': message, 'content-type': 'application/json' }, JSON.stringify({ error: message }));
    options.onRequest?.('hub', req);
    const url = new URL(req.url ?? '/', 'http://hub');
    if (url.pathname.includes('/resolve/')) gauge.track(url.pathname, res);
    if (options.rateLimit !== undefined && options.rateLimit.path.test(url.pathname) && rateLimited < options.rateLimit.times) {
      rateLimited++;
      answer(429, { 'retry-after': options.rateLimit.retryAfter, 'x-error-message': 'You have been rate-limited' }, 'Too Many Requests');
      return;
    }
    const auth = req.headers.authorization;
    if (auth !== undefined && auth !== `Bearer ${options.token}`) {
      fail(401, undefined, 'Invalid credentials in Authorization header');
      return;
    }
    // /api/{kind}/OWNER/NAME/{revision|tree|paths-info}/REV[/PATH]  or  [/kind]/OWNER/NAME/resolve/REV/PATH
    const segments = url.pathname.split('/').slice(1);
    const isApi = segments[0] === 'api';
    const rest = isApi ? segments.slice(1) : segments;
    let kind = 'model';
    if (isApi) {
      kind = ({ models: 'model', datasets: 'dataset', spaces: 'space' } as Record<string, string>)[rest.shift() ?? ''] ?? '';
    } else if (rest[0] === 'datasets' || rest[0] === 'spaces') {
      kind = rest.shift() === 'datasets' ? 'dataset' : 'space';
    }
    const [owner, name, action, rawRevision, ...pathParts] = rest;
    const repo = options.repos.find((r) => r.type === kind && r.id === `${owner}/${name}`);
    if (repo === undefined) {
      fail(auth === undefined ? 401 : 404, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (repo.gated === true && auth === undefined) {
      fail(401, 'GatedRepo', 'Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.');
      return;
    }
    const revision = decodeURIComponent(rawRevision ?? '');
    const sha = repo.commits.has(revision) ? revision : repo.refs.get(revision);
    const files = sha === undefined ? undefined : repo.commits.get(sha);
    if (sha === undefined || files === undefined) {
      fail(404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
      return;
    }
    const path = pathParts.map(decodeURIComponent).join('/');
    if (isApi && action === 'revision' && req.method === 'GET') {
      answer(200, { 'content-type': 'application/json', 'x-repo-commit': sha }, JSON.stringify({ id: repo.id, sha, siblings: files.map((f) => ({ rfilename: f.path })) }));
      return;
    }
    if (isApi && action === 'tree' && req.method === 'GET') {
      const entries = treeOf(files, path);
      if (path !== '' && entries.length === 0) {
        fail(404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
        return;
      }
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = url.searchParams.get('recursive') === 'true' ? entries.slice(cursor, cursor + pageSize) : [];
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (cursor + pageSize < entries.length) {
        const next = new URL(url.href.replace('http://hub', `http://${req.headers.host}`));
        next.searchParams.set('cursor', String(cursor + pageSize));
        headers['link'] = `<${next.href}>; rel="next"`;
      }
      answer(200, headers, JSON.stringify(page));
      return;
    }
    if (isApi && action === 'paths-info' && req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const wanted = new URLSearchParams(body).getAll('paths');
        const all = treeOf(files, '');
        answer(200, { 'content-type': 'application/json' }, JSON.stringify(all.filter((e) => wanted.includes(String(e['path'])))));
      });
      return;
    }
    if (!isApi && action === 'resolve' && req.method === 'GET') {
      const file = files.find((f) => f.path === path);
      if (file === undefined) {
        fail(404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
        return;
      }
      const common = { 'x-repo-commit': sha };
      if (file.lfs === true) {
        const hex = sha256Hex(file.content);
        const expires = now() + lifetime;
        const location = `${cdnBase}/${hex}?Expires=${expires}&Signature=${sign(hex, expires)}&Key-Pair-Id=K2STANDIN`;
        answer(302, { ...common, location, 'x-linked-etag': `"${hex}"`, 'x-linked-size': String(file.content.length), etag: `"${treeEntryOf(file)['oid'] as string}"` });
        return;
      }
      const status = sendBytes(req, res, options.serveInstead?.get(file.path) ?? file.content, `"${gitBlobId(file.content)}"`, common);
      record('hub', req, status);
      return;
    }
    fail(404, undefined, 'Not Found');
  });

  const listen = (server: Server): Promise<number> =>
    new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  const cdnPort = await listen(cdn);
  cdnBase = `http://127.0.0.1:${cdnPort}`;
  const hubPort = await listen(hub);
  const close = (server: Server): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    endpoint: `http://127.0.0.1:${hubPort}`,
    cdn: cdnBase,
    requests,
    gauge,
    advanceClock: (seconds) => {
      clockSkew += seconds;
    },
    setCdnEtag: (etag) => {
      cdnEtag = etag;
    },
    close: async () => {
      await Promise.all([close(hub), close(cdn)]);
    },
  };
}
