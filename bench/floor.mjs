/**
 * The floor: the least a plain Node program does to download a file with
 * ranged requests, to measure blockfetch against. No index, no retries, no
 * revision pinning, no bookkeeping: a `node:http` keep-alive agent, the file
 * cut into fixed pieces, N workers each taking the next piece, every socket
 * chunk written at its position, one fsync at the end.
 *
 *   node bench/floor.mjs URL OUT [--concurrency 8] [--piece 8MiB]
 *
 * bench/compare.ts runs it beside blockfetch, aria2c and curl. It exits 1 on
 * any failure (a status that is not 206, a short body); it never resumes.
 * Plain JavaScript on purpose: no loader or transpiler is timed with it.
 */
import { request, Agent } from 'node:http';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const MiB = 2 ** 20;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: 'string', default: '8' },
    piece: { type: 'string', default: String(8 * MiB) },
  },
});
const [url, out] = positionals;
if (url === undefined || out === undefined) {
  console.error('usage: floor URL OUT [--concurrency N] [--piece BYTES]');
  process.exit(2);
}
const concurrency = Number(values.concurrency);
const pieceSize = /MiB$/i.test(values.piece) ? Number.parseInt(values.piece, 10) * MiB : Number(values.piece);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });

function get(headers, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method, headers }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function main() {
  const head = await get({}, 'HEAD');
  head.resume();
  const size = Number(head.headers['content-length']);
  if (!Number.isSafeInteger(size)) throw new Error(`no Content-Length from ${url}`);
  const file = await open(out, 'w');
  try {
    await file.truncate(size);
    let next = 0;
    const worker = async () => {
      for (;;) {
        const from = next;
        if (from >= size) return;
        next += pieceSize;
        const to = Math.min(from + pieceSize, size) - 1;
        const res = await get({ range: `bytes=${from}-${to}` });
        if (res.statusCode !== 206) throw new Error(`status ${res.statusCode} for bytes ${from}-${to}`);
        let at = from;
        for await (const chunk of res) {
          await file.write(chunk, 0, chunk.length, at);
          at += chunk.length;
        }
        if (at !== to + 1) throw new Error(`short body for bytes ${from}-${to}: ended at ${at}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await file.sync();
  } finally {
    await file.close();
    agent.destroy();
  }
}

main().catch((err) => {
  console.error(`floor: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
