/**
 * What undici's body stream costs per GiB: reads 1 GiB of ranged GETs (16
 * MiB each, 8 at once) from a URL and drops the bytes, three ways:
 *  - `iter`: `request()` and `for await` over its body (the HTTP reader's path);
 *  - `gen`: the same through one more async generator (as `exactBody` adds);
 *  - `dispatch`: `Agent.dispatch()` with a handler that gets each chunk in
 *    `onResponseData`, no stream and no promise per chunk.
 *
 *   /usr/bin/time -f '%U user %S sys' node bench/undici-body.mjs iter|gen|dispatch URL
 *
 * URL must serve at least 1 GiB with byte ranges (nginx; see bench/compare.ts).
 * Measured 2026-12-07 from nginx on loopback, 3 runs each: dispatch 0.67-0.71
 * user s, iter 0.88-0.92, gen 0.85-0.94 (docs/benchmarks.md, issue 10).
 */
import { Agent, request } from 'undici';

const [, , mode, url] = process.argv;
if (!['iter', 'gen', 'dispatch'].includes(mode ?? '') || url === undefined) {
  console.error('usage: node bench/undici-body.mjs iter|gen|dispatch URL');
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

async function worker() {
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
    const { body } = await request(url, { dispatcher: agent, headers });
    for await (const chunk of mode === 'gen' ? passOn(body) : body) total += chunk.length;
  }
}

await Promise.all(Array.from({ length: 8 }, worker));
await agent.close();
if (total !== size) throw new Error(`read ${total} bytes, not ${size}`);
