/**
 * Stream while saving (`-o FILE --stdout`) into a slow consumer: peak RSS
 * of the blockfetch process, when the consumer got its first byte (both
 * start together, so node's start-up is in it), when the download was
 * complete on disk, and when the stream ended. The consumer is a shell pipe into a small Node
 * reader that takes `--rate` bytes per second; `--stdout` alone (the
 * StreamingDownloader, nothing on disk) runs the same way for reference.
 *
 *   npx tsx bench/tee.ts [--size 512MiB] [--rate 20MB/s] [-c 8]
 *
 * Runs this checkout's dist/ (built first), against nginx on 127.0.0.1;
 * every stream and file is checked by sha256. Needs nginx and GNU time.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { parseByteSize, parseRate } from '../src/cli/units.js';
import { startNginx } from '../test/helpers/nginx.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '512MiB' },
    rate: { type: 'string', default: '20MB/s' },
    concurrency: { type: 'string', short: 'c', default: '8' },
  },
});
const size = parseByteSize(values.size ?? '512MiB', '--size');
const rate = parseRate(values.rate ?? '20MB/s', '--rate');
const concurrency = values.concurrency ?? '8';
const MiB = 2 ** 20;

/**
 * A reader of stdin that takes `rate` bytes/s (paced per read), then prints
 * the sha256 of what it read and when its first byte came (ms since it started).
 */
const CONSUMER = `
const { createHash } = require('node:crypto');
const rate = Number(process.argv[2]);
const hash = createHash('sha256');
let started;
let firstByteMs;
let read = 0;
const born = Date.now();
process.stdin.on('data', (chunk) => {
  if (started === undefined) { started = Date.now(); firstByteMs = started - born; }
  hash.update(chunk);
  read += chunk.length;
  const ahead = read / rate * 1000 - (Date.now() - started);
  if (ahead > 0) { process.stdin.pause(); setTimeout(() => process.stdin.resume(), ahead); }
});
process.stdin.on('end', () => console.log(hash.digest('hex'), firstByteMs));
`;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function main(): Promise<void> {
  if (!existsSync('/usr/bin/time')) throw new Error('/usr/bin/time is missing: apt-get install time');
  console.error('building dist/ ...');
  if (spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const nginx = await startNginx();
  const out = await mkdtemp(join(process.cwd(), '.bench-out-'));
  try {
    const source = join(nginx.root, 'big.bin');
    const file = await open(source, 'w');
    const expected = createHash('sha256');
    const piece = Buffer.alloc(8 * MiB);
    for (let at = 0; at < size; at += piece.length) {
      const part = piece.subarray(0, Math.min(piece.length, size - at));
      randomFillSync(part);
      expected.update(part);
      await file.write(part);
    }
    await file.close();
    const sha = expected.digest('hex');
    const consumerFile = join(out, 'consumer.cjs');
    writeFileSync(consumerFile, CONSUMER);
    const cli = join(process.cwd(), 'dist/cli/main.js');
    console.log(`| mode | peak RSS MiB | first byte after s | on disk after s | stream ended after s | consumer sha256 ok |`);
    console.log(`| --- | ---: | ---: | ---: | ---: | --- |`);
    for (const mode of ['-o FILE --stdout', '--stdout'] as const) {
      const target = join(out, 'big.bin');
      await rm(target, { force: true });
      const args = mode === '--stdout' ? '--stdout' : `-o ${target} --stdout`;
      const timeLog = join(out, 'time.txt');
      const jsonLog = join(out, 'json.txt');
      const command = `/usr/bin/time -v -o ${timeLog} node ${cli} ${nginx.url('big.bin')} ${args} -c ${concurrency} --json 2>${jsonLog} | node ${consumerFile} ${rate}`;
      const started = Date.now();
      const run = spawnSync('bash', ['-o', 'pipefail', '-c', command], { encoding: 'utf8' });
      const wallS = (Date.now() - started) / 1000;
      if (run.status !== 0) throw new Error(`${mode}: exit ${run.status}: ${run.stderr}`);
      const time = spawnSync('cat', [timeLog], { encoding: 'utf8' }).stdout;
      const rssKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(time)?.[1]);
      const lines = spawnSync('cat', [jsonLog], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { type: string; message?: string; time: string });
      const first = Date.parse(lines[0]?.time ?? '');
      const wait = lines.find((l) => l.type === 'note' && /stdout's reader has taken/.test(l.message ?? ''));
      const onDisk = wait === undefined ? '-' : ((Date.parse(wait.time) - first) / 1000).toFixed(1);
      const [streamedSha, firstByteMs] = run.stdout.trim().split(' ');
      const ok = streamedSha === sha && (mode === '--stdout' || (await sha256File(target)) === sha);
      const firstByte = (Number(firstByteMs) / 1000).toFixed(2);
      console.log(`| ${mode} | ${(rssKiB / 1024).toFixed(0)} | ${firstByte} | ${onDisk} | ${wallS.toFixed(1)} | ${ok ? 'yes' : 'NO'} |`);
    }
  } finally {
    await nginx.stop();
    await rm(out, { recursive: true, force: true });
  }
}

await main();
