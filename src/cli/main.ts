#!/usr/bin/env node
/**
 * The `blockfetch` executable: wires the process (argv, stdout, stderr,
 * signals) to {@link runCli} and exits with its code.
 *
 * Signals: the first SIGINT or SIGTERM aborts the download, which stops
 * every request at once, saves the index and prints how to resume (exit 130
 * or 143). A second one exits immediately: the index on disk is consistent
 * at every moment (it is replaced atomically), so at most the blocks since
 * the last save (a second or two of downloading) are fetched again.
 */
// First: it sets V8 flags that must be in force before undici compiles its parser.
import './engine-flags.js';
import { Interrupted, StdoutClosed } from './io.js';
import { runCli } from './run.js';
import { ExitCode } from './exit-codes.js';

// No process-wide setMaxListeners: Node's default of 10 per target stays in
// force, so a real listener leak shows as a warning. The one target that
// legitimately has a listener per open request, the downloader's own run
// signal, raises its limit itself, sized from the concurrency; this
// signal gets one listener per downloader (test/cli-listeners.test.ts).
const controller = new AbortController();
let interruptedBy: 'SIGINT' | 'SIGTERM' | undefined;

function onSignal(signal: 'SIGINT' | 'SIGTERM'): void {
  if (interruptedBy !== undefined) {
    // The progress bar hides the cursor; give it back before leaving.
    process.stderr.write(`${process.stderr.isTTY ? '\u001b[?25h' : ''}\nblockfetch: ${signal} again: exiting now\n`);
    process.exit(signal === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED);
  }
  interruptedBy = signal;
  controller.abort(new Interrupted(signal));
}
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));
// A closed stdout (`blockfetch URL --stdout | head -c 10`) is the reader's
// choice, not a crash: stop downloading instead of throwing EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') controller.abort(new StdoutClosed());
});

// Our arguments, and then none left in process.argv: roaring's native loader
// (node-pre-gyp) parses process.argv with its own options when it is first
// imported, so `blockfetch URL -C -` made it read `-C -` as "chdir to -"
// and fail to load.
const argv = process.argv.slice(2);
process.argv.splice(2);

// A command whose work never settled (a promise nobody will resolve) would
// let the event loop drain and exit with status 0 and no word: say so, and
// fail, instead of passing for success.
let settled = false;
process.on('beforeExit', () => {
  if (settled) return;
  process.stderr.write('blockfetch: internal error: the command stopped without finishing (a bug: please report it); partial downloads are kept and resumable\n');
  process.exit(1);
});

// Not a top-level await: the bin is this module bundled as CommonJS
// (scripts/bundle-cli.mjs), which has none.
void runCli({
  argv,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
}).then((code) => {
  settled = true;
  process.exitCode = code;
  // Everything the command opened is closed by now; this only guards against
  // a stray handle (a keep-alive socket, a timer) keeping the process alive.
  setTimeout(() => process.exit(code), 2000).unref();
});
