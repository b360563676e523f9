/**
 * HTTP/2 against HTTP/1.1, measured: one file from caddy over TLS on
 * 127.0.0.1, downloaded by `downloadFile` with N requests at once in three
 * ways:
 *
 * - `h1`: HTTP/1.1, N connections (the default);
 * - `h2`: `--http2` as shipped: N streams on one h2 connection (the
 *   default dispatcher with `http2`, which raises a connection's pipelining
 *   once ALPN chose h2);
 * - `h2-conns`: h2 with one stream per connection, N connections (undici
 *   `allowH2` on the default agent, whose pipelining is 1);
 * - `h2-mux`: N streams on one connection by a plain undici Agent with
 *   `allowH2` and `pipelining: N` (which would also pipeline HTTP/1.1).
 *
 *   npx tsx bench/http2.ts [--size 512MiB] [--runs 3] [--concurrency 1,8,16] [--modes h1,h2,h2-conns]
 *
 * The modes alternate inside each round, and each round starts with the
 * next mode, so that a machine whose load changes over the run, and a place
 * in the order that helps or hurts, weigh on all of them alike. At c1 the
 * h2 modes are one configuration (one stream on one connection): their
 * difference is the noise of the run.
 * Prints, per mode and concurrency, the median wall time, MB/s (10^6 bytes
 * per second) and the client's CPU seconds (user + sys) per GiB; every
 * result is checked by sha256. Needs caddy (Debian: apt-get install caddy)
 * and openssl. The server's CPU is not counted: caddy runs on the same two
 * cores, so a faster client leaves it more.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, type Dispatcher } from 'undici';

import { parseByteSize } from '../src/cli/units.js';
import { downloadFile } from '../src/download-file.js';
import { createDefaultDispatcher, defaultAgentOptions } from '../src/http/dispatcher.js';
import { payload } from '../test/helpers/payload.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '512MiB' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,8,16' },
    modes: { type: 'string', default: 'h1,h2,h2-conns' },
  },
});
const size = parseByteSize(values.size ?? '512MiB', '--size');
const runs = Number(values.runs);
const concurrencies = (values.concurrency ?? '').split(',').map(Number);
type Mode = 'h1' | 'h2' | 'h2-conns' | 'h2-mux';
const modes = (values.modes ?? '').split(',') as Mode[];

/** A free port on 127.0.0.1 for caddy. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes `size` bytes of the self-describing payload, 16 MiB at a time; returns its sha256. */
async function writePayload(path: string): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let at = 0; at < size; at += 16 * MiB) {
      const piece = payload(at, Math.min(size, at + 16 * MiB) - 1);
      hash.update(piece);
      await file.write(piece, 0, piece.length, at);
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

/** Starts caddy's file server over TLS with a self-signed certificate; resolves once it accepts connections. */
async function startCaddy(root: string, work: string): Promise<{ url: string; ca: string; child: ChildProcess }> {
  const key = join(work, 'key.pem');
  const cert = join(work, 'cert.pem');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const port = await freePort();
  const caddyfile = join(work, 'Caddyfile');
  await writeFile(
    caddyfile,
    `{\n\tadmin off\n\tauto_https disable_redirects\n}\nhttps://127.0.0.1:${port} {\n\ttls ${cert} ${key}\n\troot * ${root}\n\tfile_server\n}\n`,
  );
  // HOME and XDG dirs inside the work dir: caddy writes nothing outside it.
  const env = { ...process.env, HOME: work, XDG_DATA_HOME: join(work, 'data'), XDG_CONFIG_HOME: join(work, 'config') };
  const child = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const ca = await readFile(cert, 'utf8');
  const url = `https://127.0.0.1:${port}/file.bin`;
  const agent = new Agent({ connect: { ca } });
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`caddy exited: ${log}`);
      try {
        const { statusCode, body } = await agent.request({ origin: `https://127.0.0.1:${port}`, path: '/file.bin', method: 'HEAD' });
        await body.dump();
        if (statusCode === 200) break;
      } catch {
        // not listening yet
      }
      if (i > 200) throw new Error(`caddy did not start: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await agent.close();
  }
  return { url, ca, child };
}

function dispatcherFor(mode: Mode, ca: string, concurrency: number): Dispatcher {
  if (mode === 'h1') return createDefaultDispatcher({}, { ca });
  if (mode === 'h2') return createDefaultDispatcher({}, { ca }, { http2: true });
  const { connectTimeoutMs, ...pool } = defaultAgentOptions;
  const pipelining = mode === 'h2-mux' ? concurrency : 1;
  return new Agent({ ...pool, allowH2: true, pipelining, connect: { timeout: connectTimeoutMs, ca } });
}

interface Sample {
  readonly wallS: number;
  readonly cpuS: number;
}

async function once(mode: Mode, concurrency: number, url: string, ca: string, out: string, digest: string): Promise<Sample> {
  await rm(out, { force: true });
  const dispatcher = dispatcherFor(mode, ca, concurrency);
  const cpu = process.cpuUsage();
  const started = performance.now();
  try {
    await downloadFile(url, out, { dispatcher, concurrency, overwrite: true });
  } finally {
    await dispatcher.close();
  }
  const wallS = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuS = (used.user + used.system) / 1e6;
  const got = await sha256File(out);
  if (got !== digest) throw new Error(`${mode} c${concurrency}: sha256 ${got}, expected ${digest}`);
  await rm(out, { force: true });
  return { wallS, cpuS };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bf-bench-http2-'));
  const root = join(work, 'www');
  await (await import('node:fs/promises')).mkdir(root);
  let caddy: ChildProcess | undefined;
  try {
    const digest = await writePayload(join(root, 'file.bin'));
    const started = await startCaddy(root, work);
    caddy = started.child;
    const out = join(work, 'out.bin');
    const samples = new Map<string, Sample[]>();
    const load = () => (spawnSync('cat', ['/proc/loadavg']).stdout?.toString().split(' ').slice(0, 3).join(' ') ?? '?');
    console.error(`# ${size / MiB} MiB from caddy over TLS on 127.0.0.1; ${runs} round(s); load average at start: ${load()}`);
    for (let round = 0; round < runs; round++) {
      // Each round starts with another mode (h1 h2 h2-mux, then h2 h2-mux h1, …):
      // a place in the order that is better or worse for a reason of its own
      // (the previous run's writeback, a neighbour's load) falls on each mode alike.
      const order = modes.map((_, i) => modes[(i + round) % modes.length] as Mode);
      for (const concurrency of concurrencies) {
        for (const mode of order) {
          const sample = await once(mode, concurrency, started.url, started.ca, out, digest);
          const key = `${mode} c${concurrency}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.error(`round ${round + 1}: ${key}: ${sample.wallS.toFixed(2)} s, ${((size / 1e6) / sample.wallS).toFixed(0)} MB/s, ${(sample.cpuS / (size / GiB)).toFixed(2)} CPU s/GiB`);
        }
      }
    }
    console.error(`# load average at the end: ${load()}`);
    console.log(`| mode | c | wall s (median of ${runs}) | MB/s | CPU s/GiB | every wall s |`);
    console.log('| --- | ---: | ---: | ---: | ---: | --- |');
    for (const concurrency of concurrencies) {
      for (const mode of modes) {
        const list = samples.get(`${mode} c${concurrency}`) ?? [];
        const wall = median(list.map((s) => s.wallS));
        const cpu = median(list.map((s) => s.cpuS));
        console.log(
          `| ${mode} | ${concurrency} | ${wall.toFixed(2)} | ${((size / 1e6) / wall).toFixed(0)} | ${(cpu / (size / GiB)).toFixed(2)} | ${list.map((s) => s.wallS.toFixed(2)).join(' / ')} |`,
        );
      }
    }
  } finally {
    caddy?.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

await main();
