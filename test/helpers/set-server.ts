/**
 * A small HTTP file server on 127.0.0.1 serving several files, for tests of
 * sets: byte ranges with a strong ETag and Last-Modified, a 404 for any
 * other path, every request recorded by path, and the number of requests
 * open at once (its maximum is what a connection budget must bound).
 *
 * `bytesPerSecond` paces a path's bodies (in 16 KiB chunks), so that a big
 * file is still running while a small one finishes, and a test can stop a
 * run in the middle of a set.
 *
 * @example
 * ```ts
 * const server = await startSetServer({ '/a.bin': payload(0, 99), '/b.bin': payload(100, 199) });
 * // ... download server.url('/a.bin') ...
 * expect(server.maxOpen).toBeLessThanOrEqual(4);
 * await server.close();
 * ```
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How one path is served. */
export interface SetServerFile {
  readonly content: Buffer;
  /** Pace the body at about this many bytes per second. @default unpaced */
  readonly bytesPerSecond?: number;
  /** Extra response headers (e.g. Content-Disposition). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A running server. */
export interface SetServer {
  /** The full URL of `path`. */
  url(path: string): string;
  /** Requests received, by path, in arrival order. */
  readonly requests: Map<string, { readonly range: string | undefined; readonly headers: IncomingHttpHeaders }[]>;
  /** Requests received in all. */
  total(): number;
  /** Requests open right now. */
  readonly open: number;
  /** The most requests ever open at once. */
  readonly maxOpen: number;
  /** Paths in the order their last response ended. */
  readonly finishedOrder: string[];
  close(): Promise<void>;
}

const LAST_MODIFIED = new Date('2026-01-02T03:04:05Z').toUTCString();
const CHUNK = 16 * 1024;

/** Starts the server with `files` by path. */
export async function startSetServer(files: Readonly<Record<string, Buffer | SetServerFile>>): Promise<SetServer> {
  const table = new Map<string, SetServerFile>(Object.entries(files).map(([path, f]) => [path, Buffer.isBuffer(f) ? { content: f } : f]));
  const requests = new Map<string, { range: string | undefined; headers: IncomingHttpHeaders }[]>();
  const finishedOrder: string[] = [];
  let open = 0;
  let maxOpen = 0;
  let total = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    total++;
    const list = requests.get(path) ?? [];
    list.push({ range: req.headers.range, headers: req.headers });
    requests.set(path, list);
    open++;
    maxOpen = Math.max(maxOpen, open);
    let closed = false;
    const done = (): void => {
      if (closed) return;
      closed = true;
      open--;
    };
    res.on('close', done);
    const file = table.get(path);
    if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const size = file.content.length;
    const etag = `"${path.replace(/\W/g, '')}-${size}"`;
    const base = { etag, 'last-modified': LAST_MODIFIED, 'accept-ranges': 'bytes', ...file.headers };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== etag) {
      res.writeHead(412);
      res.end();
      return;
    }
    let from = 0;
    let to = size - 1;
    if (range !== null) {
      from = Number(range[1]);
      to = range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      if (from >= size) {
        res.writeHead(416, { ...base, 'content-range': `bytes */${size}` });
        res.end();
        return;
      }
      res.writeHead(206, { ...base, 'content-length': String(to - from + 1), 'content-range': `bytes ${from}-${to}/${size}` });
    } else {
      res.writeHead(200, { ...base, 'content-length': String(size) });
    }
    const body = file.content.subarray(from, to + 1);
    res.on('finish', () => finishedOrder.push(path));
    if (file.bytesPerSecond === undefined) {
      res.end(body);
      return;
    }
    let at = 0;
    const pace = CHUNK / file.bytesPerSecond * 1000;
    const send = (): void => {
      if (closed) return;
      const chunk = body.subarray(at, at + CHUNK);
      at += chunk.length;
      if (at >= body.length) {
        res.end(chunk);
        return;
      }
      res.write(chunk);
      setTimeout(send, pace);
    };
    send();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    requests,
    total: () => total,
    get open() {
      return open;
    },
    get maxOpen() {
      return maxOpen;
    },
    finishedOrder,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
