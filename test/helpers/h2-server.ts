/**
 * A TLS file server on 127.0.0.1 that speaks HTTP/2 (ALPN `h2`) and, for
 * clients that do not offer it, HTTP/1.1 (node:http2 with `allowHTTP1`). It
 * serves one file with byte ranges, a strong ETag and If-Match, and records
 * the HTTP version of every request, so a test can tell which protocol a
 * client really negotiated.
 *
 * @example
 * ```ts
 * const server = await startH2Server({ content, tls: await selfSignedCertificate() });
 * // ... download server.url with --http2 --cacert ...
 * expect(server.versions).toContain('2.0');
 * await server.close();
 * ```
 */
import https from 'node:https';
import http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running server. */
export interface H2Server {
  readonly url: string;
  /** The HTTP version of each request received, in order: `'2.0'` or `'1.1'`. */
  readonly versions: string[];
  /** How many TLS connections were opened. */
  readonly connections: () => number;
  close(): Promise<void>;
}

const ETAG = '"h2-1"';

/** Starts the server; always `close()` it. */
export async function startH2Server(options: {
  readonly content: Buffer;
  readonly tls: { readonly key: string; readonly cert: string };
  /** Offer only HTTP/1.1 (a node:https server), as a server without h2 would. @default false */
  readonly http1Only?: boolean;
}): Promise<H2Server> {
  const { content } = options;
  const versions: string[] = [];
  let connections = 0;
  const handler = (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse): void => {
    versions.push(req.httpVersion);
    if (req.url !== '/file') {
      res.writeHead(404).end();
      return;
    }
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== ETAG) {
      res.writeHead(412).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['range'] ?? ''));
    const headers = { etag: ETAG, 'accept-ranges': 'bytes' };
    if (m === null) {
      res.writeHead(200, { ...headers, 'content-length': String(content.length) }).end(content);
      return;
    }
    const from = Number(m[1]);
    const to = Math.min(Number(m[2]), content.length - 1);
    if (from >= content.length) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${content.length}` }).end();
      return;
    }
    res
      .writeHead(206, { ...headers, 'content-range': `bytes ${from}-${to}/${content.length}`, 'content-length': String(to - from + 1) })
      .end(content.subarray(from, to + 1));
  };
  const tls = { key: options.tls.key, cert: options.tls.cert };
  const server =
    options.http1Only === true
      ? https.createServer(tls, handler as (req: IncomingMessage, res: ServerResponse) => void)
      : http2.createSecureServer({ ...tls, allowHTTP1: true }, handler);
  server.on('secureConnection', () => connections++);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (socket: import('node:net').Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/file`,
    versions,
    connections: () => connections,
    close: async () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
