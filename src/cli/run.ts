/**
 * The `blockfetch` command: parses the command line, runs one command and
 * returns its exit code. `main.ts` only calls {@link runCli} with the
 * process's streams; tests and the demo can call it with their own.
 *
 * Every failure ends here (or in the download command) as one
 * `blockfetch: ...` line and a `hint:` line (see `report.ts`); the exit code
 * comes from `exit-codes.ts`.
 */
import { BLOCKFETCH_VERSION } from '../http/version.js';
import { parseCommandLine, type InspectCommand, type VerifyCommand } from './args.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { helpText } from './help.js';
import type { CliIo } from './io.js';
import { jsonLine } from './json-lines.js';
import { debugFromEnvironment, describeFailure, formatFailure, writeJsonError } from './report.js';

export { Interrupted, type CliIo } from './io.js';

/**
 * Runs the command line in `io.argv` and resolves to the exit code. Never
 * rejects: every failure is printed and mapped to its exit code.
 */
export async function runCli(io: CliIo): Promise<ExitCodeValue> {
  let debug = debugFromEnvironment || io.argv.includes('--debug');
  let json = false;
  try {
    const command = parseCommandLine(io.argv);
    switch (command.kind) {
      case 'help':
        io.stdout.write(helpText(command.topic));
        return ExitCode.SUCCESS;
      case 'version':
        io.stdout.write(`blockfetch ${BLOCKFETCH_VERSION}\n`);
        return ExitCode.SUCCESS;
      case 'inspect':
        json = command.json;
        debug ||= command.debug;
        return await runInspect(command, io);
      case 'verify':
        json = command.json;
        debug ||= command.debug;
        return await runVerify(command, io);
      case 'download':
        debug ||= command.debug;
        // Loaded on demand: --help, --version, usage errors, inspect and
        // verify start without loading the HTTP client and the downloaders.
        if (command.url.startsWith('hf://')) return await (await import('./hf-command.js')).runHfDownload(command, io);
        return await (await import('./download-command.js')).runDownload(command, io);
      case 'download-set':
        debug ||= command.debug;
        json = command.outputMode === 'json';
        return await (await import('./set-command.js')).runDownloadSet(command, io);
    }
  } catch (err) {
    // Errors before a download started (usage, inspect, verify).
    if (json) writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, debug));
    return describeFailure(err).exitCode;
  }
}

async function runInspect(command: InspectCommand, io: CliIo): Promise<ExitCodeValue> {
  const { formatInspectReport, inspectDownload } = await import('./inspect.js');
  const report = await inspectDownload(command.path);
  io.stdout.write(command.json ? jsonLine({ type: 'inspect', ...report }) : formatInspectReport(report));
  return ExitCode.SUCCESS;
}

async function runVerify(command: VerifyCommand, io: CliIo): Promise<ExitCodeValue> {
  const { verifyFile } = await import('./verify.js');
  const results = await verifyFile(command.path, command.digests, io.signal);
  if (command.json) {
    io.stdout.write(jsonLine({ type: 'verified', outcome: 'complete', path: command.path, digests: results }));
  } else {
    for (const r of results) io.stdout.write(`${command.path}: ${r.algorithm} OK\n`);
  }
  return ExitCode.SUCCESS;
}

