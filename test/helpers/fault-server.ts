/**
 * A scriptable HTTP(S) file server on 127.0.0.1, port 0, for tests of
 * anything that downloads: correct Range / 206 / ETag / If-Match /
 * If-Unmodified-Since semantics by default, and faults on demand.
 *
 * @example
 * ```ts
 * const server = await startFaultServer({ content: payload(0, 1_048_575) });
 * server.script((req) => (req.index % 10 === 9 ? { kind: 'cut', after: 1000 } : undefined));
 * // ... download server.url ...
 * expect(server.requests[1]?.headers['if-match']).toBe(server.etag);
 * await server.close();
 * ```
 *
 * Recipes:
 * - change the file after N requests:
 *   `server.script((req) => { if (req.index === N) server.setContent(other, { etag: '"v2"' }); })`
 * - 503 with Retry-After: `{ kind: 'status', status: 503, headers: { 'retry-after': '1' } }`
 * - a signed URL that expires: `startFaultServer({ content, signedUrlUses: 3 })`
 * - a cross-origin redirect: a second server whose script returns
 *   `{ kind: 'redirect', location: first.url }`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** What the server serves: a Buffer, or a generator of any slice (for files too big to hold). */
export type Content = Buffer | { readonly size: number; bytes(from: number, to: number): Buffer };

/** One request as the server saw it. */
export interface RecordedRequest {
  /** 0 for the first request the server received, then 1, 2, … */
  readonly index: number;
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  /** Request headers, lower-case names. */
  readonly headers: IncomingHttpHeaders;
}

/**
 * What to do with one request instead of (or on top of) the normal answer.
 * - `status`: answer this status with these headers and body;
 * - `reset`: destroy the socket without answering (a connection reset);
 * - `cut`: the normal headers, `after` body bytes, then close the socket;
 * - `stall`: the normal headers, `after` body bytes, then nothing, forever;
 * - `ignore-range`: 200 with the whole file, as a server without range support;
 * - `wrong-range`: a 206 for the range shifted by `shift` bytes (headers and body agree);
 * - `extra`: the range asked for and `bytes` more, without Content-Length (close-delimited);
 * - `redirect`: a redirect (302 unless `status`) to `location`;
 * - `hang`: read the request and never answer (no headers);
 * - `normal`: the normal answer with `headers` overridden last (a `null`
 *   value removes a header; without Content-Length the body is chunked),
 *   with `ignoreRange` a 200 instead of a 206, and with `delayMs` that long
 *   before the head (a server across a network).
 */
export type Fault =
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  | { readonly kind: 'reset' }
  | { readonly kind: 'cut'; readonly after: number }
  | { readonly kind: 'stall'; readonly after: number }
  | { readonly kind: 'ignore-range' }
  | { readonly kind: 'wrong-range'; readonly shift: number }
  | { readonly kind: 'extra'; readonly bytes: number }
  | { readonly kind: 'redirect'; readonly location: string; readonly status?: number }
  | { readonly kind: 'hang' }
  | {
      readonly kind: 'normal';
      readonly headers?: Record<string, string | readonly string[] | null>;
      readonly ignoreRange?: boolean;
      readonly delayMs?: number;
    };

/** Decides per request; return nothing for the normal answer. May call `setContent`. */
export type Script = (request: RecordedRequest) => Fault | undefined | void;

/** The identity headers of the content; `null` leaves the header out. */
export interface RevisionOptions {
  /** @default a strong ETag that changes with every `setContent`: `"r<n>-<size>"` */
  readonly etag?: string | null;
  /** @default a fixed date that moves one minute forward with every `setContent` */
  readonly lastModified?: string | null;
}

/** How to start a {@link FaultServer}. */
export interface FaultServerOptions extends RevisionOptions {
  /** The file. */
  readonly content: Content;
  /** The file's path. @default '/file' */
  readonly path?: string;
  /** Extra headers on every answer for the file (e.g. `repr-digest`). @default {} */
  readonly headers?: Readonly<Record<string, string>>;
  /** Serve HTTPS with this key and certificate (see {@link selfSignedCertificate}). */
  readonly tls?: { readonly key: string; readonly cert: string };
  /**
   * Simulate an object store's signed URLs: the file's path answers 302 to a
   * fresh `/signed/<n>?X-Amz-Signature=…` URL, which serves the file for
   * this many requests and answers 403 after that.
   */
  readonly signedUrlUses?: number;
}

/** A running server; see the module comment. */
export interface FaultServer {
  /** The file's full URL, e.g. `http://127.0.0.1:41234/file`. */
  readonly url: string;
  /** `http://127.0.0.1:<port>` (or https). */
  readonly origin: string;
  /** The current ETag (undefined when the server sends none). */
  readonly etag: string | undefined;
  /** The current Last-Modified (undefined when the server sends none). */
  readonly lastModified: string | undefined;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Replaces the file (a new revision): new ETag and Last-Modified unless given. */
  setContent(content: Content, options?: RevisionOptions): void;
  /** Sets (or with `undefined` clears) the script consulted for each request. */
  script(fn: Script | undefined): void;
  /** Stops the server and destroys every open connection (stalled ones too). */
  close(): Promise<void>;
}

function sizeOf(content: Content): number {
  return Buffer.isBuffer(content) ? content.length : content.size;
}

function slice(content: Content, from: number, to: number): Buffer {
  return Buffer.isBuffer(content) ? content.subarray(from, to + 1) : content.bytes(from, to);
}

/** Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n`; 'unsatisfiable', or undefined to ignore the header. */
function parseRange(header: string | undefined, size: number): { from: number; to: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // malformed or multi-range: ignored, 200
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { from: Math.max(0, size - n), to: size - 1 };
  }
  const from = Number(m[1]);
  const to = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < from) return undefined;
  if (from >= size) return 'unsatisfiable';
  return { from, to };
}

/** RFC 9110 §13.1.1: If-Match uses the strong comparison; `*` matches any existing file. */
function ifMatchFails(header: string | undefined, etag: string | undefined): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return false;
  if (etag === undefined || etag.startsWith('W/')) return true;
  return !header.split(',').some((tag) => tag.trim() === etag);
}

/** RFC 9110 §13.1.4: evaluated only without If-Match, and only when Last-Modified is known. */
function ifUnmodifiedSinceFails(header: string | undefined, lastModified: string | undefined): boolean {
  if (header === undefined || lastModified === undefined) return false;
  const since = Date.parse(header);
  if (Number.isNaN(since)) return false;
  return Date.parse(lastModified) > since;
}

/**
 * Writes `from..to` of `content` in 64 KiB pieces with backpressure, so a
 * 256 MiB generated file is never in memory; stops after `limit` bytes.
 * Resolves true when all was written, false when the client went away.
 */
async function writeBody(res: ServerResponse, content: Content, from: number, to: number, limit = Infinity): Promise<boolean> {
  const end = Math.min(to, from + limit - 1);
  for (let at = from; at <= end; at += 65_536) {
    if (res.destroyed) return false;
    const piece = slice(content, at, Math.min(at + 65_535, end));
    if (!res.write(piece)) {
      const ok = await new Promise<boolean>((resolve) => {
        const done = (value: boolean) => () => {
          res.off('drain', onDrain);
          res.off('close', onClose);
          resolve(value);
        };
        const onDrain = done(true);
        const onClose = done(false);
        res.once('drain', onDrain);
        res.once('close', onClose);
      });
      if (!ok) return false;
    }
  }
  return true;
}

const BASE_DATE = Date.parse('2026-01-01T00:00:00Z');

/** Starts a server on 127.0.0.1, port 0. Always `close()` it (afterAll / finally). */
export async function startFaultServer(options: FaultServerOptions): Promise<FaultServer> {
  const path = options.path ?? '/file';
  const extraHeaders = options.headers ?? {};
  let content = options.content;
  let revision = 1;
  const etagFor = (o: RevisionOptions): string | undefined =>
    o.etag === null ? undefined : (o.etag ?? `"r${revision}-${sizeOf(content)}"`);
  const lastModifiedFor = (o: RevisionOptions): string | undefined =>
    o.lastModified === null ? undefined : (o.lastModified ?? new Date(BASE_DATE + revision * 60_000).toUTCString());
  let etag = etagFor(options);
  let lastModified = lastModifiedFor(options);
  let script: Script | undefined;
  const requests: RecordedRequest[] = [];
  const signedUses = new Map<string, number>();
  let signedCount = 0;

  const fileHeaders = (): Record<string, string> => ({
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    ...(etag === undefined ? {} : { etag }),
    ...(lastModified === undefined ? {} : { 'last-modified': lastModified }),
    ...extraHeaders,
  });

  /** An array value sends the header once per element (as GCS sends two `x-goog-hash` lines). */
  const applyOverrides = (
    headers: Record<string, string>,
    overrides: Record<string, string | readonly string[] | null>,
  ): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = { ...headers };
    for (const [name, value] of Object.entries(overrides)) {
      if (value === null) delete out[name.toLowerCase()];
      else out[name.toLowerCase()] = typeof value === 'string' ? value : [...value];
    }
    return out;
  };

  /** The normal answer for the file, with a fault applied to it if any. */
  async function serveFile(req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): Promise<void> {
    const size = sizeOf(content);
    if (fault?.kind === 'normal' && fault.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    const served = content; // a setContent during the body does not change this answer
    const headers = fileHeaders();
    if (
      ifMatchFails(req.headers['if-match'], etag) ||
      (req.headers['if-match'] === undefined && ifUnmodifiedSinceFails(req.headers['if-unmodified-since'], lastModified))
    ) {
      res.writeHead(412, { ...(etag === undefined ? {} : { etag }), 'content-length': '0' });
      res.end();
      return;
    }
    const ignoreRange = fault?.kind === 'ignore-range' || (fault?.kind === 'normal' && fault.ignoreRange === true);
    let range = ignoreRange ? undefined : parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}`, 'content-length': '0' });
      res.end();
      return;
    }
    if (fault?.kind === 'wrong-range' && range !== undefined) {
      const from = Math.min(Math.max(0, range.from + fault.shift), size - 1);
      range = { from, to: Math.min(size - 1, from + (range.to - range.from)) };
    }
    const from = range?.from ?? 0;
    const to = range?.to ?? size - 1;
    const status = range === undefined ? 200 : 206;
    if (range !== undefined) headers['content-range'] = `bytes ${from}-${to}/${size}`;
    if (fault?.kind === 'extra') {
      headers['connection'] = 'close';
    } else {
      headers['content-length'] = String(to - from + 1);
    }
    res.writeHead(status, fault?.kind === 'normal' && fault.headers ? applyOverrides(headers, fault.headers) : headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    if (fault?.kind === 'cut') {
      await writeBody(res, served, from, to, fault.after);
      // Let the bytes leave first, so the client sees a short body, then close.
      const socket = res.socket;
      if (socket) await new Promise<void>((resolve) => socket.write('', () => resolve()));
      socket?.destroy();
      return;
    }
    if (fault?.kind === 'stall') {
      await writeBody(res, served, from, to, fault.after);
      return; // never ends: close() destroys the socket
    }
    if (!(await writeBody(res, served, from, to))) return;
    if (fault?.kind === 'extra') {
      const more = Buffer.alloc(fault.bytes, 0xee);
      res.write(more);
    }
    res.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const recorded: RecordedRequest = Object.freeze({
      index: requests.length,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
    });
    requests.push(recorded);
    const fault = script?.(recorded) ?? undefined;
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'hang') return; // close() destroys the socket
    if (fault?.kind === 'status') {
      const body = fault.body ?? '';
      res.writeHead(fault.status, { 'content-length': String(Buffer.byteLength(body)), ...fault.headers });
      res.end(body);
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': '0' });
      res.end();
      return;
    }
    const pathname = new URL(recorded.url, 'http://x').pathname;
    if (pathname === path && options.signedUrlUses !== undefined) {
      const token = String(++signedCount);
      signedUses.set(token, 0);
      res.writeHead(302, { location: `/signed/${token}?X-Amz-Signature=s${token}`, 'content-length': '0' });
      res.end();
      return;
    }
    if (pathname.startsWith('/signed/') && options.signedUrlUses !== undefined) {
      const token = pathname.slice('/signed/'.length);
      const uses = signedUses.get(token);
      if (uses === undefined || uses >= options.signedUrlUses) {
        res.writeHead(403, { 'content-length': '13' });
        res.end('token expired');
        return;
      }
      signedUses.set(token, uses + 1);
      await serveFile(req, res, fault);
      return;
    }
    if (pathname !== path) {
      res.writeHead(404, { 'content-length': '9' });
      res.end('not found');
      return;
    }
    await serveFile(req, res, fault);
  }

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, listener) : http.createServer(listener);
  // Tests control timing; Node's own timeouts would end stalls on their own.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  return {
    url: `${origin}${path}`,
    origin,
    get etag() {
      return etag;
    },
    get lastModified() {
      return lastModified;
    },
    requests,
    setContent(next: Content, o: RevisionOptions = {}): void {
      content = next;
      revision++;
      etag = etagFor(o);
      lastModified = lastModifiedFor(o);
    },
    script(fn: Script | undefined): void {
      script = fn;
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/**
 * A throwaway self-signed certificate for `127.0.0.1` (subjectAltName
 * IP:127.0.0.1), made with the `openssl` command in a temp dir that is
 * removed again. Pass `cert` as `ca` to the client.
 */
export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-tls-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
      '-keyout', key, '-out', cert,
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
