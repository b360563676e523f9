/**
 * s3rver (npm), a real S3-compatible server, started as a child process on a
 * free 127.0.0.1 port, behind a thin front of our own (in the test's
 * process) that records every request and can add what s3rver itself does
 * not do.
 *
 * What s3rver 3.7 does and does not (read in node_modules/s3rver/lib, and
 * checked by test/s3-server.test.ts):
 * - It serves Range requests, but `bytes=N-0` is read as "from N to the
 *   end" (its code tests the end with `||`), so `bytes=0-0` gets the whole
 *   object as a 206.
 * - It ignores `If-Match` (it implements only If-None-Match and
 *   If-Modified-Since), so a replaced object is only seen by its new ETag.
 * - It looks up the access key id (an unknown one is a 403
 *   InvalidAccessKeyId) but does NOT verify SigV4 signatures ("V4
 *   signatures have incomplete support"): a wrong secret passes.
 * - It has no `x-amz-checksum-*` and no versioning.
 * - ListObjectsV2 pages with `max-keys` and continuation tokens, which it
 *   encrypts with DES: Node 20's OpenSSL 3 refuses DES unless the process
 *   runs with `--openssl-legacy-provider`, which is why s3rver runs as a
 *   child (test/helpers/s3rver-child.cjs) rather than in the test process.
 *
 * So the front can, per option, do what real S3 does: verify signatures
 * with the same SigV4 library the client uses (`verify`), answer 412 to a
 * failed `If-Match` (`enforceIfMatch`), and send the full-object
 * `x-amz-checksum-sha256` on a HEAD with `x-amz-checksum-mode: ENABLED`
 * (`put(..., { checksum: true })`). It can also hurt the next ranged GET (cut, stall, refuse)
 * for the Reader contract. Everything else is s3rver's own answer.
 *
 * @example
 * ```ts
 * const s3 = await startS3Server({ buckets: ['data'] });
 * await s3.put('data', 'a.bin', payload(0, 999));
 * // AWS_ENDPOINT_URL_S3=s3.endpoint ...
 * await s3.close();
 * ```
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { RequestGauge } from './request-gauge.js';

/** The access key id s3rver knows out of the box (its secret is the same word). */
export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
/** s3rver's built-in secret, which the `verify` option checks signatures with by default. */
export const S3RVER_SECRET = 'S3RVER';

/** One request the front saw. */
export interface RecordedRequest {
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Body bytes the front passed on to the client for it (so far). */
  bytesSent: number;
}

/** What the next GET with a Range suffers. */
export type S3Fault =
  | { readonly kind: 'cut'; readonly after: number }
  | { readonly kind: 'stall'; readonly after: number }
  | { readonly kind: 'refuse'; readonly retryAfterSeconds: number };

/** How to start the server. */
export interface S3ServerOptions {
  /** Buckets to create. @default [] */
  readonly buckets?: readonly string[];
  /** Verify SigV4 signatures with this secret (and the session token, when given), as S3 does. @default undefined (s3rver's own: not verified) */
  readonly verify?: { readonly secretAccessKey: string; readonly sessionToken?: string; readonly region?: string };
  /** Answer 412 to a GET or HEAD whose If-Match is not the object's ETag. @default false */
  readonly enforceIfMatch?: boolean;
}

/** How {@link S3Server.put} stores an object. */
export interface PutOptions {
  /**
   * Have the front send this object's full SHA-256 as x-amz-checksum-sha256
   * on a HEAD that asks for it: `true` for the body's own, or the bytes
   * whose digest to send instead (a checksum that does not match). @default false
   */
  readonly checksum?: boolean | Uint8Array;
  /**
   * Have the front answer as a versioned bucket would: `x-amz-version-id`
   * with this id on every HEAD and GET of the object (s3rver has no
   * versions; a GET naming another `versionId` gets 404 NoSuchVersion).
   * @default undefined (no version)
   */
  readonly versionId?: string;
}

export interface S3Server {
  /** `http://127.0.0.1:PORT`: the value of AWS_ENDPOINT_URL_S3. */
  readonly endpoint: string;
  /** Every request seen, in order. */
  readonly requests: RecordedRequest[];
  /** The object requests (GET and HEAD of a key, not listings) open at once, and for how many keys. */
  readonly gauge: RequestGauge;
  /** Stores an object (an unsigned PUT through s3rver itself); resolves to its ETag. */
  put(bucket: string, key: string, body: Uint8Array, options?: PutOptions): Promise<string>;
  /** Makes the next ranged GET suffer `fault`. */
  fault(fault: S3Fault): void;
  /** Called with each request before it is served (e.g. to replace an object mid-download). */
  onRequest(listener: ((request: RecordedRequest) => void | Promise<void>) | undefined): void;
  close(): Promise<void>;
}

/** `<Error>` XML as S3 sends it. */
function s3Error(res: http.ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/xml', ...headers });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${code}</Message></Error>`);
}

/** Checks a request's SigV4 Authorization by signing the same request again with the known secret. */
async function signatureProblem(req: http.IncomingMessage, verify: NonNullable<S3ServerOptions['verify']>): Promise<string | undefined> {
  const auth = req.headers.authorization;
  if (auth === undefined) return undefined; // anonymous: s3rver serves it
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (m === null) return 'AuthorizationHeaderMalformed';
  const [, accessKeyId, , region, signedHeaderList, signature] = m as unknown as [string, string, string, string, string, string];
  if (accessKeyId !== S3RVER_ACCESS_KEY_ID) return 'InvalidAccessKeyId';
  if (verify.sessionToken !== undefined && req.headers['x-amz-security-token'] !== verify.sessionToken) return 'InvalidToken';
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const dm = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (dm === null) return 'AccessDenied';
  const signingDate = new Date(Date.UTC(Number(dm[1]), Number(dm[2]) - 1, Number(dm[3]), Number(dm[4]), Number(dm[5]), Number(dm[6])));
  const headers: Record<string, string> = {};
  for (const name of signedHeaderList.split(';')) headers[name] = String(req.headers[name] ?? '');
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? ''}`);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({
    service: 's3',
    region: verify.region ?? region,
    credentials: { accessKeyId, secretAccessKey: verify.secretAccessKey, ...(verify.sessionToken === undefined ? {} : { sessionToken: verify.sessionToken }) },
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
  const again = await signer.sign(
    { method: req.method ?? 'GET', protocol: 'http:', hostname: url.hostname, ...(url.port === '' ? {} : { port: Number(url.port) }), path: url.pathname, query, headers },
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(again.headers['authorization']))?.[1];
  return expected === signature ? undefined : 'SignatureDoesNotMatch';
}

/** Starts s3rver as a child process, and the recording front before it, each on a free port. */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'bf-s3rver-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', new URL('./s3rver-child.cjs', import.meta.url).pathname, directory, JSON.stringify(options.buckets ?? [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const firstLine = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => resolve(line));
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${String(code)} before listening`)));
  });
  const backend = (JSON.parse(firstLine) as { port: number }).port;
  const requests: RecordedRequest[] = [];
  const gauge = new RequestGauge();
  const digests = new Map<string, string>();
  const versions = new Map<string, string>();
  let fault: S3Fault | undefined;
  let listener: ((request: RecordedRequest) => void | Promise<void>) | undefined;
  const open = new Set<Socket>();

  /** The object's ETag, asked of s3rver with an unsigned HEAD; undefined when there is none. */
  const etagOf = async (path: string): Promise<string | undefined> => {
    const response = await fetch(`http://127.0.0.1:${backend}${path}`, { method: 'HEAD' });
    return response.status === 200 ? (response.headers.get('etag') ?? undefined) : undefined;
  };

  /** Passes the request on to s3rver and its answer back, through `res` (which a fault may have wrapped). */
  const forward = (req: http.IncomingMessage, res: http.ServerResponse, recorded: RecordedRequest): void => {
    const upstream = http.request({ host: '127.0.0.1', port: backend, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.on('data', (chunk: Buffer) => {
        recorded.bytesSent += chunk.length;
      });
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, bytesSent: 0 };
      requests.push(recorded);
      const objectPath = new URL(req.url ?? '/', 'http://x').pathname;
      if (!(req.url ?? '').includes('list-type=') && /^\/[^/]+\/./.test(objectPath)) gauge.track(objectPath, res);
      await listener?.(recorded);
      if (options.verify !== undefined) {
        const problem = await signatureProblem(req, options.verify);
        if (problem !== undefined) return s3Error(res, problem === 'AuthorizationHeaderMalformed' ? 400 : 403, problem);
      }
      const url = new URL(req.url ?? '/', 'http://x');
      const path = decodeURIComponent(url.pathname);
      const [, bucket = '', key = ''] = /^\/([^/]+)\/?(.*)$/.exec(path) ?? [];
      if ((req.method === 'GET' || req.method === 'HEAD') && key !== '') {
        const ifMatch = req.headers['if-match'];
        if (options.enforceIfMatch === true && ifMatch !== undefined) {
          const etag = await etagOf(url.pathname);
          if (etag !== undefined && etag !== ifMatch) return req.method === 'HEAD' ? void res.writeHead(412).end() : s3Error(res, 412, 'PreconditionFailed');
        }
        const version = versions.get(`${bucket}/${key}`);
        const asked = url.searchParams.get('versionId');
        if (asked !== null && asked !== version) return s3Error(res, 404, 'NoSuchVersion');
        if (version !== undefined) res.setHeader('x-amz-version-id', version);
        const digest = digests.get(`${bucket}/${key}`);
        if (req.method === 'HEAD' && req.headers['x-amz-checksum-mode'] === 'ENABLED' && digest !== undefined) {
          res.setHeader('x-amz-checksum-sha256', digest);
          res.setHeader('x-amz-checksum-type', 'FULL_OBJECT');
        }
        if (req.method === 'GET' && req.headers.range !== undefined && fault !== undefined) {
          const f = fault;
          fault = undefined;
          if (f.kind === 'refuse') return s3Error(res, 503, 'SlowDown', { 'retry-after': String(f.retryAfterSeconds) });
          hurt(res, f);
        }
      }
      forward(req, res, recorded);
    })().catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : undefined);
    });
  });
  server.on('connection', (socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;

  return {
    endpoint,
    requests,
    gauge,
    async put(bucket, key, body, putOptions = {}) {
      const encoded = key.split('/').map(encodeURIComponent).join('/');
      // Straight to s3rver: a PUT is the test's own doing, not a request of the code under test.
      const response = await fetch(`http://127.0.0.1:${backend}/${bucket}/${encoded}`, { method: 'PUT', body });
      if (response.status !== 200) throw new Error(`PUT ${bucket}/${key}: ${response.status} ${await response.text()}`);
      await response.arrayBuffer();
      const { checksum = false, versionId } = putOptions;
      if (versionId === undefined) versions.delete(`${bucket}/${key}`);
      else versions.set(`${bucket}/${key}`, versionId);
      if (checksum === false) digests.delete(`${bucket}/${key}`);
      else digests.set(`${bucket}/${key}`, createHash('sha256').update(checksum === true ? body : checksum).digest('base64'));
      return response.headers.get('etag') ?? '';
    },
    fault(f) {
      fault = f;
    },
    onRequest(l) {
      listener = l;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      child.kill('SIGTERM');
      await exited;
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Wraps the response so that it sends `after` bytes of body, then breaks off (cut) or goes silent (stall). */
function hurt(res: http.ServerResponse, f: Extract<S3Fault, { kind: 'cut' | 'stall' }>): void {
  let sent = 0;
  const write = res.write.bind(res) as (chunk: Buffer, done?: () => void) => boolean;
  const end = res.end.bind(res) as (chunk?: Buffer) => http.ServerResponse;
  const pass = (chunk: unknown): boolean => {
    if (sent >= f.after) return true;
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk ?? ''));
    const part = buffer.subarray(0, f.after - sent);
    sent += part.length;
    // A cut breaks the connection once the bytes before it are on their way (not before the headers are).
    const cut = sent >= f.after && f.kind === 'cut' ? () => res.socket?.destroy() : undefined;
    return part.length > 0 ? write(part, cut) : true;
  };
  res.write = ((chunk: unknown) => pass(chunk)) as typeof res.write;
  res.end = ((chunk?: unknown) => {
    if (chunk !== undefined && typeof chunk !== 'function') pass(chunk);
    // A stall never ends; a cut has already destroyed the socket.
    if (f.kind === 'cut' && !res.socket?.destroyed) end();
    return res;
  }) as typeof res.end;
}
