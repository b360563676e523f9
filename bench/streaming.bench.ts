/**
 * StreamingDownloader throughput and peak memory: streams a generated file
 * from a loopback nginx (test/helpers/nginx.ts) through HttpReader into a
 * sha256 hash, at several concurrencies, each in a fresh child process so
 * its peak RSS is its own.
 *
 *   npx tsx bench/streaming.bench.ts [sizeMiB=2048] [blockMiB=4] [concurrencies=0,1,4,8,16] [runs=1]
 *
 * Concurrency 0 is the baseline: one HttpReader body of the whole file read
 * straight into the hash, without the StreamingDownloader.
 *
 * The file is real bytes (a random 1 MiB pattern repeated, no sparse
 * holes), written into nginx's temp document root and deleted with it at the
 * end. The consumer hashes the stream itself, so the downloader's own digest
 * is off (`computeDigest: false`); the consumer's sha256 is compared with the
 * file's. Prints one JSON line per run and a Markdown table.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import type { StreamingStatus } from '../src/download/streaming-options.js';
import { HttpReader } from '../src/http/http-reader.js';
import { startNginx } from '../test/helpers/nginx.js';

const MiB = 1024 * 1024;

/** What one child run reports. */
interface RunResult {
  /** 'streaming', or 'reader' for the baseline: one HttpReader body read straight into the hash. */
  readonly kind: 'streaming' | 'reader';
  readonly concurrency: number;
  readonly blockMiB: number;
  readonly seconds: number;
  readonly mibPerSecond: number;
  readonly peakRssMiB: number;
  readonly baselineRssMiB: number;
  readonly maxBufferedMiB: number;
  readonly memoryBoundMiB: number;
  readonly outOfOrder: number;
  readonly maxOutOfOrder: number;
  readonly requests: number;
  readonly retries: number;
  /** Chunks the consumer received, and their average size in KiB. */
  readonly chunks: number;
  readonly avgChunkKiB: number;
  readonly sha256ok: boolean;
}

/** Writes `size` bytes of a repeated random 1 MiB pattern; returns the sha256. */
async function generate(path: string, size: number): Promise<string> {
  const pattern = randomBytes(MiB);
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let pos = 0; pos < size; pos += MiB) {
      const n = Math.min(MiB, size - pos);
      const piece = pattern.subarray(0, n);
      hash.update(piece);
      await file.write(piece, 0, n, pos);
    }
    await file.sync();
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

/**
 * The child: one streamed download (or, with concurrency 0, the baseline:
 * one HttpReader body of the whole file read straight into the hash),
 * reported as one JSON line on stdout.
 */
async function child(url: string, concurrency: number, blockMiB: number, expectedHex: string): Promise<void> {
  const baselineRss = process.memoryUsage.rss();
  const reader = new HttpReader({ url, blockSize: blockMiB * MiB });
  const hash = createHash('sha256');
  const started = performance.now();
  let chunks = 0;
  let status: Pick<StreamingStatus, 'size' | 'maxBufferedBytes' | 'memoryBound' | 'outOfOrder' | 'maxOutOfOrder' | 'requests' | 'retries'>;
  if (concurrency === 0) {
    const info = await reader.contentLengthAndBlockSize();
    for await (const chunk of await reader.getReader(0, info.contentLength - 1, new AbortController().signal)) {
      hash.update(chunk);
      chunks++;
    }
    status = { size: info.contentLength, maxBufferedBytes: 0, memoryBound: 0, outOfOrder: 0, maxOutOfOrder: 0, requests: 1, retries: 0 };
  } else {
    const dl = new StreamingDownloader(reader, { concurrency, computeDigest: false });
    for await (const chunk of dl) {
      hash.update(chunk);
      chunks++;
    }
    status = await dl.run();
  }
  const seconds = (performance.now() - started) / 1000;
  await reader.close();
  const result: RunResult = {
    kind: concurrency === 0 ? 'reader' : 'streaming',
    concurrency,
    blockMiB,
    seconds: round(seconds, 2),
    mibPerSecond: round(status.size / MiB / seconds, 0),
    // maxRSS is in KiB: the process's peak resident set, whole run included.
    peakRssMiB: round(process.resourceUsage().maxRSS / 1024, 0),
    baselineRssMiB: round(baselineRss / MiB, 0),
    maxBufferedMiB: round(status.maxBufferedBytes / MiB, 2),
    memoryBoundMiB: round(status.memoryBound / MiB, 2),
    outOfOrder: status.outOfOrder,
    maxOutOfOrder: status.maxOutOfOrder,
    requests: status.requests,
    retries: status.retries,
    chunks,
    avgChunkKiB: round(status.size / Math.max(1, chunks) / 1024, 1),
    sha256ok: hash.digest('hex') === expectedHex,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(url: string, concurrency: number, blockMiB: number, expectedHex: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const script = fileURLToPath(import.meta.url);
    const proc = spawn(process.execPath, [...process.execArgv, script, '--child', url, String(concurrency), String(blockMiB), expectedHex], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.once('error', reject);
    proc.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`child (concurrency ${concurrency}) exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as RunResult);
      } catch (err) {
        reject(err);
      }
    });
  });
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 2048);
  const blockMiB = Number(process.argv[3] ?? 4);
  // 0 is the baseline: HttpReader alone, one request, no StreamingDownloader.
  const concurrencies = (process.argv[4] ?? '0,1,4,8,16').split(',').map(Number);
  const runs = Number(process.argv[5] ?? 1);
  const nginx = await startNginx();
  try {
    const size = sizeMiB * MiB;
    const expectedHex = await generate(join(nginx.root, 'big.bin'), size);
    const url = nginx.url('big.bin');
    const results: RunResult[] = [];
    const loadBefore = loadavg().map((l) => l.toFixed(1)).join(' ');
    for (let run = 0; run < runs; run++) {
      for (const concurrency of concurrencies) {
        const result = await runChild(url, concurrency, blockMiB, expectedHex);
        if (!result.sha256ok) throw new Error(`sha256 mismatch at concurrency ${concurrency}`);
        console.log(JSON.stringify(result));
        results.push(result);
      }
    }
    const loadAfter = loadavg().map((l) => l.toFixed(1)).join(' ');
    console.log(`\n${sizeMiB} MiB from nginx on 127.0.0.1, ${blockMiB} MiB blocks, window 2 x concurrency; load average before ${loadBefore}, after ${loadAfter}\n`);
    console.log('| concurrency | MiB/s | seconds | peak RSS MiB (baseline) | max buffered MiB / bound | outOfOrder (max at once) | requests | avg chunk KiB |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results) {
      console.log(
        `| ${r.kind === 'reader' ? 'HttpReader alone (1 request)' : r.concurrency} | ${r.mibPerSecond} | ${r.seconds} | ${r.peakRssMiB} (${r.baselineRssMiB}) | ${r.maxBufferedMiB} / ${r.memoryBoundMiB} | ${r.outOfOrder} (${r.maxOutOfOrder}) | ${r.requests} | ${r.avgChunkKiB} |`,
      );
    }
  } finally {
    // Removes the document root, the generated file with it.
    await nginx.stop();
  }
}

if (process.argv[2] === '--child') {
  const [, , , url, concurrency, blockMiB, expectedHex] = process.argv;
  await child(url as string, Number(concurrency), Number(blockMiB), expectedHex as string);
} else {
  await main();
}
