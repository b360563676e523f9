/**
 * A set of files (issue 12): blockfetch -i against aria2c -i, the same
 * input file, the same nginx on 127.0.0.1, the same number of connections.
 *
 *   npx tsx bench/sets.ts [--small 100] [--small-size 1MiB] [--large 2] [--large-size 256MiB]
 *                         [--connections 16] [--files 4]
 *
 * The set: `--small` files of `--small-size` and `--large` of `--large-size`
 * (random bytes, generated in nginx's temporary document root), listed
 * large first in one aria2c-format input file with an `out=` line each, so
 * that small files have to get past the large ones.
 *
 * Connections: blockfetch `-c C -j J` opens at most C requests across the
 * set; aria2c's `-x`/`-s` are per file, so it gets `-j J -x C/J -s C/J`:
 * at most C in all, as many files at once. (aria2c splits a file only into
 * pieces of at least `--min-split-size`, 20 MiB by default, so its small
 * files take one connection each; blockfetch's take one request too, their
 * whole size being less than one block.)
 *
 * Measured by GNU time (`/usr/bin/time`, the child's own resource usage):
 * wall time, CPU (user + sys) and peak RSS; then a `sync`, timed, since
 * blockfetch fsyncs and aria2c does not. Every output file is checked by
 * sha256. One run per tool: the numbers are a sample, not a median.
 * blockfetch runs from `dist/` (built first), as an installed package would.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { parseByteSize } from '../src/cli/units.js';
import { startNginx } from '../test/helpers/nginx.js';

const MiB = 2 ** 20;

const { values } = parseArgs({
  options: {
    small: { type: 'string', default: '100' },
    'small-size': { type: 'string', default: '1MiB' },
    large: { type: 'string', default: '2' },
    'large-size': { type: 'string', default: '256MiB' },
    connections: { type: 'string', default: '16' },
    files: { type: 'string', default: '4' },
  },
});
const smallCount = Number(values.small);
const smallSize = parseByteSize(values['small-size'] as string, '--small-size');
const largeCount = Number(values.large);
const largeSize = parseByteSize(values['large-size'] as string, '--large-size');
const connections = Number(values.connections);
const filesAtOnce = Number(values.files);
if (connections % filesAtOnce !== 0) throw new Error('--connections must be a multiple of --files (aria2c counts connections per file)');
const perFile = connections / filesAtOnce;

interface Measured {
  readonly wallS: number;
  readonly syncS: number;
  readonly cpuS: number;
  readonly maxRssMiB: number;
  readonly exitCode: number;
}

function timed(argv: string[], cwd: string): Measured {
  const timeFile = join(tmpdir(), `bench-sets-time-${process.pid}`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, ...argv], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  const [wall, user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  const syncStart = performance.now();
  spawnSync('sync');
  return { wallS: wall!, syncS: (performance.now() - syncStart) / 1000, cpuS: user! + sys!, maxRssMiB: rssKiB! / 1024, exitCode: r.status ?? -1 };
}

/** Writes `size` random bytes to `path` and returns their sha256. */
async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(Math.min(size, 16 * MiB));
    for (let written = 0; written < size; ) {
      const n = Math.min(buf.length, size - written);
      randomFillSync(buf, 0, n);
      hash.update(buf.subarray(0, n));
      await file.write(buf, 0, n, written);
      written += n;
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function main(): Promise<void> {
  for (const bin of ['/usr/bin/time', '/usr/bin/aria2c']) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install time aria2`);
  }
  console.error('building dist/ ...');
  if (spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const nginx = await startNginx();
  const work = await mkdtemp(join(process.cwd(), '.bench-sets-')); // the targets' filesystem, as a real run's
  try {
    const names = [
      ...Array.from({ length: largeCount }, (_, i) => ({ name: `large-${i}.bin`, size: largeSize })),
      ...Array.from({ length: smallCount }, (_, i) => ({ name: `small-${String(i).padStart(3, '0')}.bin`, size: smallSize })),
    ];
    console.error(`writing ${largeCount} x ${values['large-size']} and ${smallCount} x ${values['small-size']} ...`);
    const expected = new Map<string, string>();
    for (const { name, size } of names) expected.set(name, await writeRandomFile(join(nginx.root, name), size));
    const list = join(work, 'list.txt');
    await writeFile(list, names.map(({ name }) => `${nginx.url(name)}\n  out=${name}\n`).join(''));
    spawnSync('sync');

    const tools = [
      {
        name: `blockfetch -c ${connections} -j ${filesAtOnce}`,
        argv: [process.execPath, join(process.cwd(), 'dist/cli/main.js'), '-i', list, '-q', '-c', String(connections), '-j', String(filesAtOnce)],
      },
      {
        name: `aria2c -j ${filesAtOnce} -x ${perFile} -s ${perFile}`,
        argv: ['aria2c', '-q', '-i', list, '-j', String(filesAtOnce), `-x${perFile}`, `-s${perFile}`, '--allow-overwrite=false', '--auto-file-renaming=false'],
      },
    ];
    const rows: string[] = [];
    for (const tool of tools) {
      const dir = await mkdtemp(join(work, 'out-'));
      console.error(`${tool.name} ...`);
      const m = timed(tool.argv, dir);
      let ok = 0;
      for (const [name, hex] of expected) if ((await sha256File(join(dir, name)).catch(() => '')) === hex) ok++;
      rows.push(
        `| ${tool.name} | ${m.exitCode} | ${ok}/${expected.size} | ${m.wallS.toFixed(2)} | ${(m.wallS + m.syncS).toFixed(2)} | ${m.cpuS.toFixed(2)} | ${Math.round(m.maxRssMiB)} |`,
      );
      await rm(dir, { recursive: true, force: true });
    }
    const total = largeCount * largeSize + smallCount * smallSize;
    console.log(`${smallCount} x ${values['small-size']} + ${largeCount} x ${values['large-size']} (${(total / MiB).toFixed(0)} MiB), ${connections} connections in all, ${filesAtOnce} files at once; one run each\n`);
    console.log('| tool | exit | sha256 ok | wall s | wall + sync s | CPU s (user+sys) | peak RSS MiB |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const row of rows) console.log(row);
  } finally {
    await nginx.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
