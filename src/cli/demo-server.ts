/**
 * A small HTTP file server for the `npm start` demo: serves ONE file from
 * disk on 127.0.0.1 (port 0) with the parts of HTTP that blockfetch relies
 * on: single byte ranges (206 + Content-Range), a strong ETag, Last-Modified,
 * `If-Match` / `If-Unmodified-Since` (412 when they fail) and HEAD.
 *
 * It is deliberately not the test suite's fault server: that one lives in
 * `test/` (not part of the built package) and holds scripted faults the
 * demo does not need. This one streams from the file, so serving a 1 GiB
 * file takes no memory.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** A running demo server. */
export interface DemoServer {
  /** The file's URL, e.g. `http://127.0.0.1:40123/demo.bin`. */
  readonly url: string;
  /** The strong ETag it serves the file with. */
  readonly etag: string;
  /** Requests answered so far (any status). */
  requests(): number;
  /** Body bytes sent so far (what the network carried). */
  bytesSent(): number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts serving `path` at `/<its name>` on 127.0.0.1, on a free port.
 *
 * @example
 * ```ts
 * const server = await startDemoServer('/tmp/x/demo.bin');
 * // blockfetch server.url ...
 * await server.close();
 * ```
 */
export async function startDemoServer(path: string): Promise<DemoServer> {
  const info = await stat(path);
  const size = info.size;
  const name = basename(path);
  // Strong, and changes whenever the file does: size and mtime in ns.
  const etag = `"${size.toString(16)}-${info.mtimeMs.toString(16).replace('.', '')}"`;
  const lastModified = info.mtime.toUTCString();
  let requests = 0;
  let sent = 0;

  const server = http.createServer((req, res) => {
    requests++;
    serve(req, res).catch(() => res.destroy());
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url !== `/${encodeURIComponent(name)}`) return end(res, 404);
    if (req.method !== 'GET' && req.method !== 'HEAD') return end(res, 405, { allow: 'GET, HEAD' });
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== '*' && !ifMatch.split(',').some((t) => t.trim() === etag)) return end(res, 412);
    const ius = req.headers['if-unmodified-since'];
    if (ius !== undefined && Date.parse(ius) < Math.floor(info.mtimeMs / 1000) * 1000) return end(res, 412);

    const headers: Record<string, string | number> = {
      'accept-ranges': 'bytes',
      etag,
      'last-modified': lastModified,
      'content-type': 'application/octet-stream',
    };
    let from = 0;
    let to = size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range !== undefined) {
      const parsed = parseRange(range, size);
      if (parsed === 'unsatisfiable') return end(res, 416, { 'content-range': `bytes */${size}` });
      if (parsed !== undefined) {
        [from, to] = parsed;
        status = 206;
        headers['content-range'] = `bytes ${from}-${to}/${size}`;
      }
    }
    headers['content-length'] = size === 0 ? 0 : to - from + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const body = createReadStream(path, { start: from, end: to, highWaterMark: 256 * 1024 });
    body.on('data', (chunk: string | Buffer) => {
      sent += chunk.length;
    });
    await pipeline(body, res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${encodeURIComponent(name)}`,
    etag,
    requests: () => requests,
    bytesSent: () => sent,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function end(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-length': 0 });
  res.end();
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; `undefined` (serve it all) for anything else, as RFC 9110 allows. */
function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const from = Number(match[1]);
  const to = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (from >= size || to < from) return 'unsatisfiable';
  return [from, to];
}
