/**
 * HttpReader alone, against nginx on loopback: how fast can it pull bytes,
 * and what does it cost in CPU and memory, with no disk writes in the way?
 *
 *   npx tsx bench/http-reader.bench.ts [sizeMiB=1024] [runs=2]
 *
 * For each (block size, concurrency) it reads the whole file with that many
 * getReader() bodies open at once and throws the bytes away, checking only
 * the count. `curl -o /dev/null` of the same URL is the single-stream
 * baseline. Peak RSS is sampled every 20 ms. Prints a markdown table (the
 * median run of each row) for docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { HttpReader } from '../src/http/http-reader.js';
import { startNginx } from '../test/helpers/nginx.js';
import { payload } from '../test/helpers/payload.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 2);
const SIZE = sizeMiB * MiB;

interface Row {
  label: string;
  seconds: number;
  mibPerSecond: number;
  cpuSeconds: number;
  peakRssMiB: number;
  requests: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function readWhole(url: string, blockSize: number, concurrency: number): Promise<Omit<Row, 'label'>> {
  const reader = new HttpReader({ url, blockSize });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const info = await reader.contentLengthAndBlockSize();
  let next = 0;
  let received = 0;
  let requests = 1;
  const signal = new AbortController().signal;
  const worker = async (): Promise<void> => {
    while (next < info.contentLength) {
      const from = next;
      const to = Math.min(from + blockSize, info.contentLength) - 1;
      next = to + 1;
      if (from !== 0) requests++;
      for await (const chunk of await reader.getReader(from, to, signal)) received += chunk.length;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  clearInterval(sampler);
  await reader.close();
  if (received !== info.contentLength) throw new Error(`read ${received} of ${info.contentLength} bytes`);
  return {
    seconds,
    mibPerSecond: SIZE / MiB / seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    peakRssMiB: peak / MiB,
    requests,
  };
}

async function main(): Promise<void> {
  const nginx = await startNginx();
  try {
    // Written in 16 MiB pieces so the generator never holds the whole file.
    const file = await open(join(nginx.root, 'big.bin'), 'w');
    for (let at = 0; at < SIZE; at += 16 * MiB) await file.write(payload(at, Math.min(at + 16 * MiB, SIZE) - 1), 0, undefined, at);
    await file.close();
    const url = nginx.url('big.bin');
    spawnSync('curl', ['-s', '-o', '/dev/null', url]); // page cache warm-up

    const rows: Row[] = [];
    const curlTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      const out = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{time_total}', url], { encoding: 'utf8' });
      curlTimes.push(Number(out.stdout));
    }
    const curlSeconds = median(curlTimes);
    const configs: [number, number][] = [
      [16, 1],
      [16, 4],
      [16, 8],
      [4, 8],
      [1, 8],
      [64, 8],
    ];
    for (const [blockMiB, concurrency] of configs) {
      const results: Omit<Row, 'label'>[] = [];
      for (let i = 0; i < runs; i++) results.push(await readWhole(url, blockMiB * MiB, concurrency));
      results.sort((a, b) => a.seconds - b.seconds);
      const mid = results[Math.floor(results.length / 2)]!;
      rows.push({ label: `${blockMiB} MiB x ${concurrency}`, ...mid });
    }
    console.log(`HttpReader, ${sizeMiB} MiB from nginx on 127.0.0.1, bytes discarded, median of ${runs}\n`);
    console.log('| blocks x open requests | requests | time | throughput | CPU (user+sys) | peak RSS |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    console.log(`| curl, one stream | 1 | ${curlSeconds.toFixed(2)} s | ${(sizeMiB / curlSeconds).toFixed(0)} MiB/s | (separate process) | - |`);
    for (const r of rows) {
      console.log(
        `| ${r.label} | ${r.requests} | ${r.seconds.toFixed(2)} s | ${r.mibPerSecond.toFixed(0)} MiB/s | ${r.cpuSeconds.toFixed(2)} s | ${r.peakRssMiB.toFixed(0)} MiB |`,
      );
    }
  } finally {
    await nginx.stop();
  }
}

await main();
