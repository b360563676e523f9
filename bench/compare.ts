/**
 * blockfetch against curl, aria2c and the floor (bench/floor.mjs, a plain
 * Node range writer): the same file, the same nginx, one run.
 *
 *   npx tsx bench/compare.ts [--size 2GiB] [--runs 3] [--concurrency 8] [--block-size SIZE]
 *                            [--tools curl,aria2c,floor,blockfetch] [--scenarios full,kill,change]
 *                            [--baseline DIR]   (DIR's dist/cli/main.js as the tool `baseline`)
 *
 * `--block-size` is passed to blockfetch only when given (else its own
 * default is measured); `--tools` and `--scenarios` pick a subset.
 *
 * Three scenarios, each checked by sha256, not assumed:
 *  1. full download: wall time, CPU seconds per GiB (user + sys), peak RSS,
 *     from GNU time (`/usr/bin/time`), median of `--runs`;
 *  2. kill -9 at about half of the median full-download time, then the same
 *     command again: bytes nginx sent in all (from its access log) against
 *     the file size, so "fetched twice" is measured, not guessed;
 *  3. the file replaced on the server part-way: the exit code and whether
 *     the result is the old file, the new file, or a mix of both.
 * Prints markdown tables for docs/benchmarks.md. Needs nginx, aria2c, curl.
 * blockfetch runs from `dist/` (built first), as an installed package would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { parseByteSize } from '../src/cli/units.js';
import { startNginx, type NginxServer } from '../test/helpers/nginx.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '2GiB' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '8' },
    'block-size': { type: 'string' },
    tools: { type: 'string', default: 'curl,aria2c,floor,blockfetch' },
    scenarios: { type: 'string', default: 'full,kill,change' },
    // Another checkout's build (its dist/cli/main.js), run beside ours as
    // the tool `baseline`: what one change bought, in the same run.
    baseline: { type: 'string' },
  },
});
const size = parseByteSize(values.size ?? '2GiB', '--size');
const runs = Number(values.runs);
const concurrency = Number(values.concurrency);
const blockSizeArgs = values['block-size'] === undefined ? [] : ['--block-size', String(parseByteSize(values['block-size'], '--block-size'))];
const wantedTools = new Set((values.tools ?? '').split(','));
const scenarios = new Set((values.scenarios ?? '').split(','));

interface Tool {
  /** Its key in `--tools`. */
  readonly key: string;
  readonly name: string;
  /** The command that downloads `url` to `out` (resuming if `out`'s partial state exists). */
  command(url: string, out: string): string[];
  /** Every file the tool leaves beside `out` while it works. */
  leftovers(out: string): string[];
}

const cli = join(process.cwd(), 'dist', 'cli', 'main.js');
const floor = join(process.cwd(), 'bench', 'floor.mjs');
const allTools: Tool[] = [
  {
    key: 'curl',
    name: 'curl (1 connection)',
    command: (url, out) => ['curl', '-sS', '-f', '-C', '-', '-o', out, url],
    leftovers: () => [],
  },
  {
    key: 'aria2c',
    name: `aria2c -x${concurrency} -s${concurrency}`,
    command: (url, out) => [
      'aria2c', '-q', `-x${concurrency}`, `-s${concurrency}`, '--allow-overwrite=false', '--auto-file-renaming=false',
      '--continue=true', '-d', dirname(out), '-o', out.slice(dirname(out).length + 1), url,
    ],
    leftovers: (out) => [`${out}.aria2`],
  },
  {
    key: 'floor',
    name: `floor (plain Node, ${concurrency} workers, 8 MiB pieces)`,
    // It cannot resume: in the kill scenario its second run starts over.
    command: (url, out) => ['node', floor, url, out, '--concurrency', String(concurrency)],
    leftovers: () => [],
  },
  {
    key: 'blockfetch',
    name: `blockfetch -c ${concurrency}${blockSizeArgs.length > 0 ? ` --block-size ${values['block-size']}` : ''}`,
    command: (url, out) => ['node', cli, url, '-o', out, '-c', String(concurrency), ...blockSizeArgs, '--quiet'],
    // The data file, the index, and the lock file (whichever of the two it sits beside).
    leftovers: (out) => ['', '.json', '.flock', '.json.flock'].map((suffix) => `${out}.blockfetch${suffix}`),
  },
];
if (values.baseline !== undefined) {
  const baselineCli = join(values.baseline, 'dist', 'cli', 'main.js');
  const ours = allTools.find((t) => t.key === 'blockfetch');
  if (ours !== undefined) {
    allTools.push({
      ...ours,
      key: 'baseline',
      name: `${ours.name} (baseline ${values.baseline})`,
      command: (url, out) => ['node', baselineCli, url, '-o', out, '-c', String(concurrency), ...blockSizeArgs, '--quiet'],
    });
    wantedTools.add('baseline');
  }
}
const tools = allTools.filter((t) => wantedTools.has(t.key));

interface Measured {
  readonly wallS: number;
  /** Wall time plus a `sync` right after: until the file is on disk, not just in the page cache. */
  readonly durableS: number;
  readonly cpuS: number;
  readonly maxRssMiB: number;
  readonly exitCode: number;
}

function timed(argv: string[]): Measured {
  const timeFile = join(tmpdir(), `bench-time-${process.pid}`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
  const [wall, user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  // curl and aria2c never fsync; blockfetch fsyncs before its index may
  // claim a block. A sync after each run puts them on the same footing.
  const syncStart = performance.now();
  spawnSync('sync');
  const syncS = (performance.now() - syncStart) / 1000;
  return { wallS: wall!, durableS: wall! + syncS, cpuS: user! + sys!, maxRssMiB: rssKiB! / 1024, exitCode: r.status ?? -1 };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Writes `bytes` of random data (a fresh 64 MiB pattern, salted per chunk)
 * to `tmp`, and returns its sha256. Renaming it over the served file is the
 * caller's step, so that a new revision appears at one instant.
 */
async function writeRandomFile(tmp: string, bytes: number, salt: number): Promise<string> {
  const hash = createHash('sha256');
  const pattern = randomFillSync(Buffer.alloc(64 * MiB));
  const fh = await open(tmp, 'w');
  try {
    for (let off = 0; off < bytes; off += pattern.length) {
      const chunk = pattern.subarray(0, Math.min(pattern.length, bytes - off));
      chunk.writeUInt32LE(off / MiB + salt, 0); // no two chunks alike, no two revisions alike
      hash.update(chunk);
      await fh.write(chunk, 0, chunk.length, off);
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

async function removeAll(paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => rm(p, { force: true })));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Bytes nginx has sent so far (its own $body_bytes_sent, summed over its access log). */
async function bytesServed(nginx: NginxServer): Promise<number> {
  return (await nginx.requests()).reduce((sum, r) => sum + r.bytesSent, 0);
}

/**
 * Overwrites `target` with `source`'s bytes IN PLACE (same inode, same size),
 * as `dd conv=notrunc` or an rsync --inplace deploy would: requests already
 * being served read old bytes up to some point and new ones after it.
 */
async function rewriteInPlace(source: string, target: string): Promise<void> {
  const from = await open(source, 'r');
  const to = await open(target, 'r+');
  try {
    const buf = Buffer.allocUnsafe(16 * MiB);
    for (let off = 0; ; off += buf.length) {
      const { bytesRead } = await from.read(buf, 0, buf.length, off);
      if (bytesRead === 0) break;
      await to.write(buf, 0, bytesRead, off);
    }
  } finally {
    await from.close();
    await to.close();
  }
  await rm(source, { force: true });
}

async function main(): Promise<void> {
  for (const bin of ['/usr/bin/time', '/usr/bin/aria2c', '/usr/bin/curl']) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install time aria2 curl`);
  }
  console.error('building dist/ ...');
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('build failed');

  const nginx = await startNginx();
  const outDir = await mkdtemp(join(process.cwd(), '.bench-out-')); // same filesystem as a real target
  const cleanUp = async (): Promise<void> => {
    await nginx.stop();
    await rm(outDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
  }
  const source = join(nginx.root, 'big.bin');
  const url = nginx.url('big.bin');
  try {
    console.error(`writing a ${size} byte file ...`);
    const expected = await writeRandomFile(`${source}.next`, size, 0);
    await rename(`${source}.next`, source);
    spawnSync('sync'); // the source's own dirty pages must not be charged to the first tool
    const out = join(outDir, 'big.bin');

    // 1. full downloads
    const full = new Map<string, Measured[]>();
    for (let run = 0; run < runs; run++) {
      for (const tool of tools) {
        await removeAll([out, ...tool.leftovers(out)]);
        const m = timed(tool.command(url, out));
        const ok = m.exitCode === 0 && (await sha256File(out)) === expected;
        if (!ok) throw new Error(`${tool.name}: exit ${m.exitCode} or wrong bytes`);
        full.set(tool.name, [...(full.get(tool.name) ?? []), m]);
        console.error(
          `${tool.name} run ${run + 1}: ${m.wallS.toFixed(2)} s (${m.durableS.toFixed(2)} s with sync), ${m.cpuS.toFixed(2)} CPU s, ${m.maxRssMiB.toFixed(0)} MiB`,
        );
      }
    }
    const gib = size / GiB;
    const base = median(full.get(tools[0]!.name)!.map((m) => m.wallS));
    console.log(`\n### Full download: ${(size / MiB).toFixed(0)} MiB from nginx on 127.0.0.1, median of ${runs}\n`);
    console.log('| tool | wall s | MiB/s | vs curl | wall s until on disk (+ sync) | CPU s per GiB | peak RSS MiB |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const tool of tools) {
      const ms = full.get(tool.name)!;
      const wall = median(ms.map((m) => m.wallS));
      console.log(
        `| ${tool.name} | ${wall.toFixed(2)} | ${(size / MiB / wall).toFixed(0)} | ${(base / wall).toFixed(2)}x | ${median(ms.map((m) => m.durableS)).toFixed(2)} | ${(median(ms.map((m) => m.cpuS)) / gib).toFixed(2)} | ${median(ms.map((m) => m.maxRssMiB)).toFixed(0)} |`,
      );
    }

    // 2. kill -9 at about half-time, then the same command again
    if (scenarios.has('kill')) {
    console.log('\n### Killed (SIGKILL) at about 50 % of its own median time, then run again\n');
    console.log('| tool | bytes served in all / file size | fetched twice (MiB) | result |');
    console.log('| --- | ---: | ---: | --- |');
    for (const tool of tools) {
      await removeAll([out, ...tool.leftovers(out)]);
      const servedBefore = await bytesServed(nginx);
      const half = (median(full.get(tool.name)!.map((m) => m.wallS)) * 1000) / 2;
      const [cmd, ...args] = tool.command(url, out);
      const child = spawn(cmd!, args, { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, half));
      if (child.exitCode !== null) {
        console.log(`| ${tool.name} | - | - | finished before the kill (at ${(half / 1000).toFixed(1)} s): not measured |`);
        continue;
      }
      child.kill('SIGKILL');
      await exited(child);
      const second = spawnSync(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'] });
      await new Promise((r) => setTimeout(r, 200)); // let nginx write the last log lines
      const served = (await bytesServed(nginx)) - servedBefore;
      const ok = second.status === 0 && (await sha256File(out)) === expected;
      console.log(
        `| ${tool.name} | ${(served / size).toFixed(3)} | ${((served - size) / MiB).toFixed(0)} | ${ok ? 'identical' : `exit ${second.status}, WRONG BYTES`} |`,
      );
    }

    }

    // 3. the file changes part-way through: replaced by a new inode (a
    // rename, as most deploys do), or rewritten in place (same inode).
    let revision = 1;
    let current = expected;
    for (const mode of scenarios.has('change') ? (['replaced (rename, new inode)', 'rewritten in place (same inode)'] as const) : []) {
      console.log(`\n### The file ${mode} at about 30 % of the download\n`);
      console.log('| tool | exit code | result |');
      console.log('| --- | ---: | --- |');
      for (const tool of tools) {
        await removeAll([out, ...tool.leftovers(out)]);
        const old = current;
        const next = await writeRandomFile(`${source}.next`, size, revision++ * 1_000_000);
        const at = median(full.get(tool.name)!.map((m) => m.wallS)) * 1000 * 0.3;
        const [cmd, ...args] = tool.command(url, out);
        const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        await new Promise((r) => setTimeout(r, at));
        if (mode.startsWith('replaced')) {
          // A new inode with a new mtime: nginx's ETag ("mtime-size") changes at this instant.
          await rename(`${source}.next`, source);
        } else {
          await rewriteInPlace(`${source}.next`, source);
        }
        current = next;
        const code = await exited(child);
        const got = existsSync(out) ? await sha256File(out) : '(no file)';
        const verdict =
          got === old
            ? 'old revision, intact'
            : got === current
              ? 'new revision, intact'
              : got === '(no file)'
                ? 'no file (partial kept)'
                : `**${code === 0 ? 'exit 0 with a ' : ''}MIXED / CORRUPT file**`;
        const why = code !== 0 && stderr ? `: \`${stderr.trim().split('\n')[0]!.slice(0, 100)}\`` : '';
        console.log(`| ${tool.name} | ${code} | ${verdict}${why} |`);
      }
    }
    const s = await stat(source);
    console.error(`done (${s.size} bytes served per revision)`);
  } finally {
    await cleanUp();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
