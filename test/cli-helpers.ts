/**
 * Running the real `blockfetch` command as a child process in tests:
 * `node --import tsx src/cli/main.ts ...`, with its exit code, stdout (as
 * bytes: it may be the file itself) and stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The CLI's entry point, from source. */
export const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** tsx's ESM loader, as a file URL (`--import tsx` would resolve from the child's cwd, a temp dir). */
export const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** What a finished run of the command left. */
export interface CliResult {
  /** The exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** A running command. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Settles when the process has exited and its streams closed. */
  readonly done: Promise<CliResult>;
  /** stderr so far. */
  stderr(): string;
}

/** Options of {@link startCli}. */
export interface StartCliOptions {
  /** The working directory. */
  readonly cwd: string;
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
  /** Called with each chunk of stdout instead of collecting it (for large streams). */
  readonly onStdout?: (chunk: Buffer) => void;
}

/** Starts `blockfetch ...args`. The caller must await `done` (or kill the child). */
export function startCli(args: readonly string[], options: StartCliOptions): CliProcess {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NODE_DEBUG: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (options.onStdout ? options.onStdout(chunk) : out.push(chunk)));
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    err += chunk;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
  return { child, done, stderr: () => err };
}

/** Runs `blockfetch ...args` to completion. */
export function runCli(args: readonly string[], options: StartCliOptions): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Resolves once `predicate()` is true, polling every `intervalMs`; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
