/**
 * The tail of a download: one connection in eight is slow (a bad route, a
 * throttled replica). A loopback server paces every connection to
 * `--rate` bytes/s, and every eighth connection it accepts to a tenth of
 * that; blockfetch (this checkout's `dist/`), a `--baseline DIR` build and
 * aria2c fetch the same file from it, alternating, each result checked by
 * sha256.
 *
 *   npm run build && npx tsx bench/tail.ts [--size 256MiB] [--rate 20MiB] [--runs 3] [--baseline DIR] [--extra '--block-size 1MiB']
 *
 * Prints a markdown table (median wall time of `--runs`) for
 * docs/benchmarks.md. Needs aria2c for its row (skipped when missing).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../src/cli/units.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '256MiB' },
    rate: { type: 'string', default: '20MiB' },
    runs: { type: 'string', default: '3' },
    baseline: { type: 'string' },
    // Extra arguments for both blockfetch builds, e.g. --extra '--block-size 1MiB'.
    extra: { type: 'string', default: '' },
  },
});
const extra = (values.extra ?? '').split(' ').filter((a) => a !== '');
const size = parseByteSize(values.size ?? '256MiB', '--size');
const rate = parseByteSize(values.rate ?? '20MiB', '--rate');
const runs = Number(values.runs);

// A file of pseudo-random bytes, generated once.
const data = Buffer.alloc(size);
for (let i = 0, x = 1; i < size; i += 4) {
  x = (x * 1103515245 + 12345) >>> 0;
  data.writeUInt32LE(x, i);
}
const sha256 = createHash('sha256').update(data).digest('hex');

let accepted = 0;
const speedOf = new WeakMap<Socket, number>();
const server = http.createServer((req, res) => {
  const socket = req.socket;
  const bytesPerSecond = speedOf.get(socket) ?? rate;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const from = m === null ? 0 : Number(m[1]);
  const to = m === null || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  const headers = { 'content-length': String(to - from + 1), 'accept-ranges': 'bytes', etag: '"tail-bench"', 'last-modified': 'Tue, 01 Dec 2026 00:00:00 GMT' };
  res.writeHead(m === null ? 200 : 206, m === null ? headers : { ...headers, 'content-range': `bytes ${from}-${to}/${size}` });
  // Paced in 64 KiB pieces: piece k leaves no earlier than start + k * 64 KiB / rate.
  const start = performance.now();
  let at = from;
  const piece = 64 * 1024;
  const next = (): void => {
    if (res.destroyed) return;
    if (at > to) {
      res.end();
      return;
    }
    const end = Math.min(at + piece, to + 1);
    const ok = res.write(data.subarray(at, end));
    at = end;
    const due = start + ((at - from) / bytesPerSecond) * 1000;
    const wait = Math.max(0, due - performance.now());
    if (ok) setTimeout(next, wait);
    else res.once('drain', () => setTimeout(next, wait));
  };
  next();
});
server.on('connection', (socket: Socket) => {
  // Every eighth connection runs at a tenth of the speed.
  speedOf.set(socket, accepted++ % 8 === 0 ? rate / 10 : rate);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`;

const dir = await mkdtemp(join(tmpdir(), 'blockfetch-tail-'));
const ours = join(process.cwd(), 'dist', 'cli', 'main.js');
const tools: { name: string; argv: (out: string) => string[] }[] = [
  { name: `blockfetch -c 8 ${extra.join(' ')}`.trim(), argv: (out) => ['node', ours, url, '-o', out, '-c', '8', '--quiet', ...extra] },
];
if (values.baseline !== undefined) {
  const theirs = join(values.baseline, 'dist', 'cli', 'main.js');
  tools.push({ name: `blockfetch -c 8 ${extra.join(' ')} (baseline ${values.baseline})`.replace('  ', ' '), argv: (out) => ['node', theirs, url, '-o', out, '-c', '8', '--quiet', ...extra] });
}
if (spawnSync('aria2c', ['--version']).status === 0) {
  tools.push({
    name: 'aria2c -x8 -s8 -k1M',
    argv: (out) => ['aria2c', '-x8', '-s8', '-k1M', '-q', '--allow-overwrite=true', '--file-allocation=none', '-d', dir, '-o', out.slice(dir.length + 1), url],
  });
}

const times = new Map<string, number[]>(tools.map((t) => [t.name, []]));
for (let run = 0; run < runs; run++) {
  for (const tool of tools) {
    const out = join(dir, 'out.bin');
    for (const leftover of ['', '.blockfetch', '.blockfetch.json', '.blockfetch.live', '.blockfetch.flock', '.aria2']) rmSync(`${out}${leftover}`, { force: true });
    accepted = 0; // each tool's first connection is the slow one
    const started = performance.now();
    // Not spawnSync: the server runs in this process's event loop.
    const argv = tool.argv(out);
    const status = await new Promise<number | null>((resolve) => {
      spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] }).on('close', (code) => resolve(code));
    });
    const seconds = (performance.now() - started) / 1000;
    const good = status === 0 && existsSync(out) && createHash('sha256').update(readFileSync(out)).digest('hex') === sha256;
    console.log(`${tool.name} run ${run + 1}: ${seconds.toFixed(2)} s${good ? '' : ' WRONG OR FAILED'}`);
    if (good) times.get(tool.name)?.push(seconds);
  }
}
server.closeAllConnections();
server.close();
rmSync(dir, { recursive: true, force: true });

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const ideal = size / (rate * (7 + 0.1));
console.log(`\n### One connection in eight at a tenth of the speed: ${values.size} at ${values.rate}/s per connection, median of ${runs}\n`);
console.log(`| tool | wall s | vs all 8 at full speed minus one (${ideal.toFixed(2)} s) |`);
console.log('| --- | ---: | ---: |');
for (const tool of tools) {
  const t = median(times.get(tool.name) ?? []);
  console.log(`| ${tool.name} | ${t.toFixed(2)} | ${(t / ideal).toFixed(2)}x |`);
}
