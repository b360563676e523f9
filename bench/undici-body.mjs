/**
 * What reading a body costs per GiB, by way of reading it: 1 GiB of ranged
 * GETs (16 MiB each, 8 at once) from a URL, the bytes dropped.
 *  - `iter`: undici's `request()` and `for await` over its body (the HTTP
 *    reader's path before src/http/range-connections.ts);
 *  - `gen`: the same through one more async generator (as `exactBody` adds);
 *  - `dispatch`: `Agent.dispatch()` with a handler that gets each chunk in
 *    `onResponseData`, no stream and no promise per chunk;
 *  - `queue`: the same handler queueing chunks for a hand-written async iterator;
 *  - `node`: `node:http` (its parser is llhttp in C);
 *  - `raw`: one keep-alive socket per worker, the head parsed by hand, the
 *    body the socket's own chunks (a new buffer per read);
 *  - `onread`: the same, every read into one reused 64 KiB buffer (what
 *    range-connections.ts does for a body read with `lend`).
 *
 *   /usr/bin/time -f '%U user %S sys' node bench/undici-body.mjs iter|gen|dispatch|queue|node|raw URL
 *
 * URL must serve at least 1 GiB with byte ranges (nginx; see bench/compare.ts).
 * Measured 2026-12-07 from nginx on loopback, 3 runs each, user s: iter
 * 0.84-0.89, dispatch 0.71-0.73, queue 0.76-0.86, node 0.67-0.69, raw
 * 0.33-0.36 (docs/benchmarks.md, issue 10). Most of undici's cost is its
 * parser, not the stream: the body's bytes go through it as well. Later,
 * 4 runs each, user / sys s: raw 0.29-0.37 / 0.73-0.96 (108-123 MB), onread
 * 0.17-0.20 / 0.56-0.59 (65 MB): a buffer per read costs both the
 * allocation and a kernel copy into cold memory.
 */
import { Agent, request } from 'undici';
import { connect } from 'node:net';
import * as http from 'node:http';

const [, , mode, url] = process.argv;
if (!['iter', 'gen', 'dispatch', 'queue', 'raw', 'onread', 'node'].includes(mode ?? '') || url === undefined) {
  console.error('usage: node bench/undici-body.mjs iter|gen|dispatch|queue|raw|onread|node URL');
  process.exit(2);
}
const size = 2 ** 30;
const piece = 16 * 2 ** 20;
const agent = new Agent({ connections: 64 });
let next = 0;
let total = 0;

async function* passOn(source) {
  for await (const chunk of source) yield chunk;
}

/**
 * `queue`: a dispatch handler that queues chunks for a hand-written async
 * iterator (no stream, no generator), pausing the parser above 256 KiB.
 */
function queuedBody(u, headers) {
  const chunks = [];
  let queued = 0;
  let ended = false;
  let failure;
  let waiter;
  let controller;
  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  agent.dispatch(
    { origin: u.origin, path: u.pathname, method: 'GET', headers },
    {
      onRequestStart(c) { controller = c; },
      onResponseStart() {},
      onResponseData(c, chunk) {
        chunks.push(chunk);
        queued += chunk.length;
        if (queued > 262144) c.pause();
        wake();
      },
      onResponseEnd() { ended = true; wake(); },
      onResponseError(_c, err) { failure = err; wake(); },
    },
  );
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      if (chunks.length > 0) {
        const value = chunks.shift();
        queued -= value.length;
        if (controller.paused && queued <= 65536) controller.resume();
        return Promise.resolve({ value, done: false });
      }
      if (failure) return Promise.reject(failure);
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => { waiter = resolve; }).then(() => this.next());
    },
  };
}

/** `raw`: one keep-alive socket per worker, the head parsed by hand, body bytes straight from the socket. */
function rawSocket(u, reuse) {
  // `onread`: one 64 KiB buffer per socket, read into again and again (the
  // bytes are consumed before the next read), instead of a new one per read.
  const socket = reuse
    ? connect({ port: Number(u.port), host: u.hostname, onread: { buffer: Buffer.allocUnsafe(65536), callback: (n, buf) => socket.emit('data', buf.subarray(0, n)) } })
    : connect(Number(u.port), u.hostname);
  socket.setNoDelay(true);
  let pending = null; // { remaining, head, resolve, reject }
  socket.on('data', (chunk) => {
    let data = chunk;
    while (data.length > 0 && pending !== null) {
      if (pending.head !== null) {
        pending.head = pending.head.length === 0 ? data : Buffer.concat([pending.head, data]);
        const end = pending.head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.head.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        pending.remaining = Number(m[1]);
        data = pending.head.subarray(end + 4);
        pending.head = null;
      }
      const take = Math.min(data.length, pending.remaining);
      total += take;
      pending.remaining -= take;
      data = data.subarray(take);
      if (pending.remaining === 0) {
        const p = pending;
        pending = null;
        p.resolve();
      }
    }
  });
  return {
    get(headers) {
      return new Promise((resolve, reject) => {
        pending = { remaining: 0, head: Buffer.alloc(0), resolve, reject };
        socket.write(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\nrange: ${headers.range}\r\n\r\n`);
      });
    },
    close: () => socket.destroy(),
  };
}
const nodeAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

async function worker() {
  const raw = mode === 'raw' || mode === 'onread' ? rawSocket(new URL(url), mode === 'onread') : undefined;
  try { await work(raw); } finally { raw?.close(); }
}

async function work(raw) {
  for (;;) {
    const from = next;
    if (from >= size) return;
    next += piece;
    const headers = { range: `bytes=${from}-${Math.min(size, from + piece) - 1}` };
    if (mode === 'dispatch') {
      const u = new URL(url);
      await new Promise((resolve, reject) => {
        agent.dispatch(
          { origin: u.origin, path: u.pathname, method: 'GET', headers },
          {
            onRequestStart() {},
            onResponseStart() {},
            onResponseData(_controller, chunk) {
              total += chunk.length;
            },
            onResponseEnd: resolve,
            onResponseError: (_controller, err) => reject(err),
          },
        );
      });
      continue;
    }
    if (raw !== undefined) {
      await raw.get(headers);
      continue;
    }
    if (mode === 'node') {
      await new Promise((resolve, reject) => {
        http.get(url, { agent: nodeAgent, headers }, (res) => {
          res.on('data', (chunk) => { total += chunk.length; });
          res.on('end', resolve);
          res.on('error', reject);
        }).on('error', reject);
      });
      continue;
    }
    if (mode === 'queue') {
      for await (const chunk of queuedBody(new URL(url), headers)) total += chunk.length;
      continue;
    }
    const { body } = await request(url, { dispatcher: agent, headers });
    for await (const chunk of mode === 'gen' ? passOn(body) : body) total += chunk.length;
  }
}

await Promise.all(Array.from({ length: 8 }, worker));
await agent.close();
nodeAgent.destroy();
if (total !== size) throw new Error(`read ${total} bytes, not ${size}`);
