/**
 * A bench server whose file is generated, not stored: any size up to
 * petabytes, nothing on disk, every byte computable by the client's
 * checker. Optionally shaped like a real origin:
 *
 *   node bench/gen-server.mjs [--size 1GiB-in-bytes] [--rate BYTES_PER_S] [--head-delay MS]
 *                             [--slow-every N] [--slow-factor 10]
 *
 *  - `--rate`: each CONNECTION is paced by a token bucket of that many
 *    bytes per second (burst 256 KiB), as a CDN or bucket caps a stream;
 *  - `--head-delay`: this many ms before each response head (time to
 *    first byte);
 *  - `--slow-every N`: every Nth connection accepted (the 1st, N+1th...)
 *    runs at `rate / slow-factor` (a bad route, a throttled replica).
 *
 * `GET /<anything>` serves the file of `--size` bytes; `GET /size/<bytes>`
 * serves a file of that size (same content function), so one server
 * serves 1 GiB and 1 TiB. Single byte ranges, HEAD, ETag and
 * Last-Modified, like a static server. `GET /__served` answers the body
 * bytes handed to sockets so far (what nginx's $body_bytes_sent counts),
 * for "fetched twice" after a kill; `GET /__reset` makes the next client
 * connection the first again (each tool's first is the slow one).
 *
 * Prints its base URL (`http://127.0.0.1:PORT/`) on the first stdout line.
 * Plain JavaScript, run by `node` in its own process, so its CPU is never
 * counted with a client's and no event loop is shared with a harness that
 * blocks in spawnSync.
 *
 * The content (see {@link byteRangeViews}): byte `o` is `RING[o % PERIOD]`,
 * PERIOD an odd number just over 1 MiB, so no two power-of-two blocks
 * below PERIOD blocks apart hold the same bytes, and every piece served is
 * a view of one prebuilt buffer (no copy, no per-byte work).
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** The content's period: odd, just over 1 MiB. */
export const PERIOD = 1048573;
/** The longest piece handed to a socket at once. */
const PIECE = 256 * 1024;

/** PERIOD + PIECE bytes of xorshift32 output, repeating with period PERIOD. */
function makeRing() {
  const ring = Buffer.allocUnsafe(PERIOD + PIECE);
  let x = 2463534242;
  for (let i = 0; i < PERIOD; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    ring[i] = x & 0xff;
  }
  ring.copy(ring, PERIOD, 0, PIECE);
  return ring;
}
const RING = makeRing();

/**
 * The bytes `from`..`to` (inclusive) of the generated file, as views of
 * at most {@link PIECE} bytes each, in order: what the server sends, and
 * what a checker hashes.
 */
export function* byteRangeViews(from, to) {
  for (let at = from; at <= to; ) {
    const n = Math.min(PIECE, to + 1 - at);
    const start = at % PERIOD;
    yield RING.subarray(start, start + n);
    at += n;
  }
}

/** Starts the server; resolves to `{ url, server, served() }`. */
export async function startGenServer({ size, rate = 0, headDelayMs = 0, slowEvery = 0, slowFactor = 10 }) {
  let accepted = 0;
  let served = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/__served') {
      res.end(JSON.stringify({ served }));
      return;
    }
    if (req.url === '/__reset') {
      // The next client connection is the "first" again (the slow one).
      accepted = 0;
      res.end('{}');
      return;
    }
    // A connection's speed is set at its first file request, so the
    // harness's own control requests never count as the slow one.
    if (rate > 0 && req.socket.bucket === undefined) {
      const slow = slowEvery > 0 && accepted % slowEvery === 0;
      accepted++;
      req.socket.bucket = new TokenBucket(slow ? rate / slowFactor : rate);
    }
    const sized = /^\/size\/(\d+)/.exec(req.url ?? '');
    const total = sized === null ? size : Number(sized[1]);
    const socket = req.socket;
    const bucket = socket.bucket;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let from = 0;
    let to = total - 1;
    if (range !== null) {
      if (range[1] === '') {
        from = Math.max(0, total - Number(range[2]));
      } else {
        from = Number(range[1]);
        if (range[2] !== '') to = Math.min(to, Number(range[2]));
      }
      if (from > to || from >= total) {
        res.writeHead(416, { 'content-range': `bytes */${total}` }).end();
        return;
      }
    }
    const headers = {
      'content-length': String(to - from + 1),
      'accept-ranges': 'bytes',
      etag: `"gen-${total}"`,
      'last-modified': 'Tue, 01 Dec 2026 00:00:00 GMT',
      'content-type': 'application/octet-stream',
    };
    const status = range === null ? 200 : 206;
    if (range !== null) headers['content-range'] = `bytes ${from}-${to}/${total}`;
    const views = byteRangeViews(from, to);
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(status, headers);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      pump();
    };
    // Writes pieces while the bucket has tokens and the socket takes them.
    const pump = () => {
      for (;;) {
        if (res.destroyed) return;
        const next = views.next();
        if (next.done) {
          res.end();
          return;
        }
        const piece = next.value;
        served += piece.length;
        const wait = bucket === undefined ? 0 : bucket.take(piece.length);
        if (!res.write(piece)) {
          // Drained, then whatever of the debt is left.
          res.once('drain', () => setTimeout(pump, bucket === undefined ? 0 : bucket.take(0)));
          return;
        }
        if (wait > 0) {
          setTimeout(pump, wait);
          return;
        }
      }
    };
    if (headDelayMs > 0) setTimeout(send, headDelayMs);
    else send();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, server, served: () => served };
}

/** Bytes per second with a burst of 256 KiB; `take` says how long to wait before the next take. */
class TokenBucket {
  constructor(rate) {
    this.rate = rate;
    this.burst = 256 * 1024;
    this.tokens = this.burst;
    this.last = performance.now();
  }

  /** Takes `n` tokens (going into debt), and returns the ms until the debt is paid. */
  take(n) {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.rate) * 1000;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: String(2 ** 30) },
      rate: { type: 'string', default: '0' },
      'head-delay': { type: 'string', default: '0' },
      'slow-every': { type: 'string', default: '0' },
      'slow-factor': { type: 'string', default: '10' },
    },
  });
  const { url } = await startGenServer({
    size: Number(values.size),
    rate: Number(values.rate),
    headDelayMs: Number(values['head-delay']),
    slowEvery: Number(values['slow-every']),
    slowFactor: Number(values['slow-factor']),
  });
  console.log(url);
}
