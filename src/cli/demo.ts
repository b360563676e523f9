/**
 * `npm start`: blockfetch end to end, with no internet.
 *
 * 1. Generates a file of about 1 GiB in a temp dir (fast: a random pattern
 *    whose period is not a multiple of any block size, so a block written to
 *    the wrong place changes the digest), hashing it as it goes.
 * 2. Serves it from 127.0.0.1 with Range, ETag and If-Match (demo-server.ts).
 * 3. Runs the real `blockfetch` command as a child process, 8 connections,
 *    with `--sha256`; interrupts it with SIGINT once the server has sent
 *    40% of the file.
 * 4. Shows `blockfetch inspect` of the partial download, resumes with the
 *    same command, and prints a summary: time, throughput, and the bytes
 *    fetched twice: what the server sent beyond the file's size (blocks in
 *    flight at the interrupt, which are fetched again whole, plus what the
 *    resumed run's first response sent of block 0 before it was dropped).
 *
 * Everything (child, server, temp dir) is cleaned up on exit, on error and
 * on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { randomFillSync } from 'node:crypto';
import { open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startDemoServer, type DemoServer } from './demo-server.js';
import { inspectDownload } from './inspect.js';
import { formatBytes, formatDuration, formatRate } from './units.js';

/** The demo's settings; `BLOCKFETCH_DEMO_SIZE` (e.g. `256MiB` as bytes) overrides the size for a quicker run. */
const SIZE = Number(process.env['BLOCKFETCH_DEMO_SIZE'] ?? 2 ** 30);
const INTERRUPT_AT = 0.4;
const CONCURRENCY = 8;

/** The pattern repeats every 16 MiB + 4099 bytes: not a multiple of any power-of-two block size. */
const PATTERN_BYTES = 16 * 2 ** 20 + 4099;

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** How to run the CLI: the built `main.js` with node, or `main.ts` through tsx when running from source. */
function cliCommand(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return { command: process.execPath, args: ['--import', import.meta.resolve('tsx'), join(here, '..', 'main.ts')] };
  }
  return { command: process.execPath, args: [join(here, '..', 'main.js')] };
}

/** Writes `size` bytes of a repeated random pattern to `path`; resolves to their sha256. */
async function generate(path: string, size: number): Promise<string> {
  const pattern = randomFillSync(Buffer.alloc(PATTERN_BYTES));
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let offset = 0; offset < size; ) {
      const start = offset % PATTERN_BYTES;
      const chunk = pattern.subarray(start, Math.min(PATTERN_BYTES, start + (size - offset)));
      hash.update(chunk);
      await file.write(chunk, 0, chunk.length, offset);
      offset += chunk.length;
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

/** Runs the CLI with `args`, its output on our terminal; resolves to its exit code. */
function runCli(args: string[], children: Set<ChildProcess>, onSpawn?: (child: ChildProcess) => void): Promise<number> {
  const { command, args: prefix } = cliCommand();
  const child = spawn(command, [...prefix, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.add(child);
  onSpawn?.(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
  });
}

/**
 * Sends SIGINT to `child` once the server has sent `fraction` of the file.
 * Watching the server (which this process owns) rather than the index makes
 * the moment exact however fast the machine is: the index is saved about
 * once a second, which on a fast machine is a large share of a 1 GiB file.
 */
function interruptAt(child: ChildProcess, server: DemoServer, size: number, fraction: number): { stop(): void } {
  const timer = setInterval(() => {
    if (server.bytesSent() >= size * fraction) {
      clearInterval(timer);
      child.kill('SIGINT');
    }
  }, 10);
  return { stop: () => clearInterval(timer) };
}

async function main(): Promise<number> {
  const children = new Set<ChildProcess>();
  let interrupted = false;
  let server: DemoServer | undefined;
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-demo-'));
  let cleaning: Promise<void> | undefined;
  // Idempotent. Children are killed AND awaited before the directory is
  // removed: a child still writing its index would make rm fail half way.
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await Promise.all(
        [...children].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      );
      await server?.close();
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    })());
  // Ctrl-C reaches the child too (same process group): it saves its index
  // and exits; the demo then removes everything. SIGTERM and SIGHUP (a
  // closed terminal, a CI timeout) must not leave 2 GiB in the temp dir either.
  const exitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const signal of Object.keys(exitCodes) as (keyof typeof exitCodes)[]) {
    process.once(signal, () => {
      interrupted = true;
      say(`\ndemo: ${signal}; cleaning up`);
      void cleanup()
        .catch((err: unknown) => process.stderr.write(`demo: cleanup failed: ${String(err)}; remove ${dir} by hand\n`))
        .finally(() => process.exit(exitCodes[signal]));
    });
  }

  try {
    say(`blockfetch demo: a ${formatBytes(SIZE)} download over loopback, interrupted and resumed`);
    say(`  temp dir: ${dir} (removed at the end)`);
    const source = join(dir, 'source.bin');
    let t = performance.now();
    const sha256 = await generate(source, SIZE);
    say(`  generated ${formatBytes(SIZE)} in ${formatDuration(performance.now() - t)}; sha256 ${sha256}`);
    server = await startDemoServer(source);
    say(`  serving it at ${server.url} (Range, strong ETag ${server.etag}, If-Match)`);

    const target = join(dir, 'downloaded.bin');
    const args = [server.url, '-o', target, '-c', String(CONCURRENCY), '--sha256', sha256];
    say();
    // test/demo.test.ts sends SIGTERM on this line: by now the signal
    // handlers are installed, and the child is spawned in the same tick.
    say(`step 1: blockfetch ${server.url} -o ${target} -c ${CONCURRENCY} --sha256 …   (SIGINT at ~${INTERRUPT_AT * 100}%)`);
    const started = performance.now();
    let watcher: ReturnType<typeof interruptAt> | undefined;
    const first = await runCli(args, children, (child) => {
      watcher = interruptAt(child, server as DemoServer, SIZE, INTERRUPT_AT);
    });
    watcher?.stop();
    if (interrupted) return 130;
    const firstMs = performance.now() - started;
    const sentBeforeResume = server.bytesSent();
    if (first === 0) {
      say(`  -> finished in ${formatDuration(firstMs)}, before the interrupt landed: nothing to resume on this machine`);
      return 0;
    }
    if (first !== 130) {
      say(`demo: the first run ended with exit status ${first}, expected 130 (interrupted)`);
      return 1;
    }
    say(`  -> exit status 130 after ${formatDuration(firstMs)}; the server had sent ${formatBytes(sentBeforeResume)}`);

    say();
    say(`step 2: blockfetch inspect ${target}`);
    const inspectExit = await runCli(['inspect', target], children);
    if (interrupted) return 130;
    if (inspectExit !== 0) return inspectExit;
    const partial = await inspectDownload(target);

    say();
    say('step 3: the same command again resumes');
    t = performance.now();
    const second = await runCli(args, children);
    const secondMs = performance.now() - t;
    if (interrupted) return 130;
    if (second !== 0) {
      say(`demo: the resumed run ended with exit status ${second}`);
      return second;
    }

    say();
    say(`step 4: blockfetch verify ${target} --sha256 …`);
    const verifyExit = await runCli(['verify', target, '--sha256', sha256], children);
    if (interrupted) return 130;
    if (verifyExit !== 0) return verifyExit;

    const totalMs = firstMs + secondMs;
    const sent = server.bytesSent();
    const fetchedTwice = Math.max(0, sent - SIZE);
    say();
    say('summary');
    say(`  file:             ${formatBytes(SIZE)}, sha256 verified (by the download itself and by verify)`);
    say(`  interrupted at:   ${((partial.doneBytes * 100) / SIZE).toFixed(1)}% on disk (${formatBytes(partial.doneBytes)} saved in the index)`);
    say(`  time:             ${formatDuration(totalMs)} downloading (${formatDuration(firstMs)} + ${formatDuration(secondMs)} after resume)`);
    say(`  throughput:       ${formatRate((SIZE * 1000) / totalMs)} overall`);
    say(`  bytes from server: ${formatBytes(sent)} (${sent} bytes)`);
    say(
      `  fetched twice:    ${formatBytes(fetchedTwice)} (${fetchedTwice} bytes) sent beyond the file's size: blocks that were in flight at the interrupt (fetched again whole), and the start of the resumed run's first response`,
    );
    return 0;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
});
