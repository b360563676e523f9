/**
 * How long the same command takes to get going again after `kill -9`, with
 * each lock backend:
 *
 *   npx tsx bench/lock-resume.ts [--runs 3]
 *
 * For each backend (forced through BLOCKFETCH_LOCK_BACKEND) and run: start
 * `blockfetch URL -o FILE --rate 4MiB/s` against the fault server on
 * 127.0.0.1, wait until it has saved an index, kill it with SIGKILL, then
 * time the same command without a rate limit from spawn to exit, and note
 * whether it said it was waiting for the lock. The rest of the download is
 * the same few MiB for both backends, so the difference is the lock wait.
 * Prints a markdown table.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startCli, waitFor } from '../test/cli-helpers.js';
import { startFaultServer } from '../test/helpers/fault-server.js';
import { payload } from '../test/helpers/payload.js';

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
const size = 24 * 2 ** 20;
const server = await startFaultServer({ content: payload(0, size - 1) });
const dir = await mkdtemp(join(tmpdir(), 'bf-lock-resume-'));
const rows: string[] = [];
try {
  for (const backend of ['flock', 'mkdir'] as const) {
    const env = { BLOCKFETCH_LOCK_BACKEND: backend };
    for (let run = 0; run < runs; run++) {
      const target = join(dir, `${backend}-${run}.bin`);
      const args = [server.url, '-o', target, '--block-size', '1MiB', '-c', '4'];
      const first = startCli([...args, '--rate', '4MiB/s'], { cwd: dir, env });
      await waitFor(() => existsSync(`${target}.blockfetch.json`), 30_000);
      first.child.kill('SIGKILL');
      await first.done;
      const started = performance.now();
      const second = await runCli(args, { cwd: dir, env });
      const ms = performance.now() - started;
      if (second.code !== 0) throw new Error(`${backend} run ${run}: exit ${second.code}: ${second.stderr}`);
      if ((await stat(target)).size !== size) throw new Error(`${backend} run ${run}: wrong size`);
      const waited = second.stderr.includes('waiting up to');
      rows.push(`| ${backend} | ${run + 1} | ${(ms / 1000).toFixed(2)} s | ${waited ? 'yes' : 'no'} |`);
      console.error(rows.at(-1));
    }
  }
} finally {
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
console.log('| backend | run | resume after kill -9, to the end | waited for the lock |\n| --- | --- | --- | --- |');
console.log(rows.join('\n'));
