/**
 * `blockfetch URL URL... [-d DIR]` and `blockfetch -i FILE`: a set of files
 * through {@link downloadFiles}. This layer decides each file's target (the
 * input file's `out=`/`dir=`, else the server's or the URL's name, as for
 * one URL), refuses a set that is wrong before anything is downloaded (a
 * malformed input file, two files with one target), shows progress and the
 * summary, and maps the outcomes to one exit code
 * ({@link mostSevereExitCode}).
 *
 * Re-running the same command resumes the set: a finished file is skipped
 * without a request when its target is known without asking the server
 * (`out=`); a file named after the server costs one small request to learn
 * its name first.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { Dispatcher } from 'undici';

import type { ExpectedDigest } from '../cache/types.js';
import { lookAtRemote } from '../download-file.js';
import type { DownloadEntry } from '../download-files.js';
import { BlockfetchError, InvalidArgumentError, redactUrl } from '../errors.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { HttpReader } from '../http/http-reader.js';
import { headerRecord, type DownloadCommand, type DownloadSetCommand } from './args.js';
import { tlsOptions } from './download-command.js';
import type { ExitCodeValue } from './exit-codes.js';
import { chooseFilename } from './filename.js';
import { parseInputFile, type InputEntry } from './input-file.js';
import type { CliIo } from './io.js';
import { describeFailure, formatFailure, writeJsonError, debugFromEnvironment } from './report.js';
import { captureResponseHeaders, contentDispositionOf } from './response-headers.js';
import { resumeCommand, shellQuote } from './resume-command.js';
import { createSetView, type SetView } from './set-progress.js';
import { runSet, type SetSlot } from './set-run.js';

/** One file of the set, before its target is known. */
interface PlannedFile {
  /** The URLs: the first is used; the rest are mirrors (not used yet). */
  readonly urls: readonly string[];
  /** Where it came from, for messages: `list.txt:7`, or `argument 2`. */
  readonly origin: string;
  /** The target when `out=` named it; else decided from the server. */
  readonly target: string | undefined;
  /** The directory it goes in. */
  readonly directory: string;
  readonly digest: ExpectedDigest | undefined;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Runs a set and returns its exit code: 0 when every file is done or
 * skipped, else the most severe of the failures' codes; 130/143 when
 * interrupted (every partial file is saved).
 */
export async function runDownloadSet(command: DownloadSetCommand, io: CliIo): Promise<ExitCodeValue> {
  const started = performance.now();
  const json = command.outputMode === 'json';
  let planned: PlannedFile[];
  let dispatcher: Dispatcher;
  try {
    planned = await planFiles(command);
    refuseDuplicates(planned.filter((p) => p.target !== undefined).map((p) => ({ target: p.target as string, origin: p.origin })));
    dispatcher = createDefaultDispatcher(process.env, await tlsOptions(command));
  } catch (err) {
    if (json) writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, command.debug || debugFromEnvironment));
    return describeFailure(err).exitCode;
  }
  const view = createSetView(command.outputMode, io.stdout, io.stderr);
  const resume = resumeText(io.argv, command);
  try {
    if (command.tls.insecure) view.note('warning: -k/--insecure: TLS certificates are not checked in this run; anyone on the path can read or change the download');
    for (const p of planned) {
      if (p.urls.length > 1) view.note(`${p.origin}: ${p.urls.length} URLs (mirrors) for one file: using the first; downloading from mirrors is not built yet`);
    }
    // Targets the server names: one small request each, before any download, so that two files with one name are refused up front.
    const named = await nameFromServers(planned, command, dispatcher, io.signal, view);
    const slots: SetSlot[] = [];
    const targets: { target: string; origin: string }[] = [];
    for (const [i, p] of planned.entries()) {
      const target = p.target ?? named[i];
      const url = p.urls[0] as string;
      if (typeof target !== 'string') {
        // Its first request failed: no name, so the summary names it by its URL.
        slots.push({ settled: { file: redactUrl(url), outcome: 'failed', report: describeFailure(named[i]) } });
        continue;
      }
      targets.push({ target, origin: p.origin });
      slots.push({ entry: { source: url, target, key: target, options: entryOptions(p) }, url });
    }
    refuseDuplicates(targets);
    return await runSet(slots, { command, view, io, dispatcher, started, resume });
  } catch (err) {
    // Refused before any download (two files the server names alike), or a bug.
    if (json) writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, command.debug || debugFromEnvironment));
    return describeFailure(err).exitCode;
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

/** The files of the set: the command line's URLs, then the input file's entries. */
async function planFiles(command: DownloadSetCommand): Promise<PlannedFile[]> {
  const base = command.dir ?? '.';
  if (command.dir !== undefined) await checkDirectory(command.dir);
  const globalHeaders = headerRecord(command.headers);
  const planned: PlannedFile[] = command.urls.map((url, i) => ({
    urls: [url],
    origin: `URL ${i + 1}`,
    target: undefined,
    directory: base,
    digest: undefined,
    headers: globalHeaders,
  }));
  if (command.inputFile !== undefined) {
    const name = command.inputFile;
    const entries = parseInputFile(await readInput(name), name);
    if (entries.length === 0 && planned.length === 0) {
      throw new InvalidArgumentError(`${name === '-' ? '(stdin)' : name} lists no URL`, { hint: 'a line per file: its URL, then indented out=, dir=, checksum=, header= lines' });
    }
    for (const entry of entries) planned.push(fromInputEntry(entry, name, base, globalHeaders));
  }
  return planned;
}

function fromInputEntry(entry: InputEntry, file: string, base: string, globalHeaders: Readonly<Record<string, string>>): PlannedFile {
  const directory = entry.dir === undefined ? base : join(base, entry.dir);
  return {
    urls: entry.urls,
    origin: `${file === '-' ? '(stdin)' : file}:${entry.line}`,
    target: entry.out === undefined ? undefined : join(directory, entry.out),
    directory,
    digest: digestFor(entry),
    // The entry's header= lines win over -H for the same name.
    headers: { ...globalHeaders, ...headerRecord(entry.headers) },
  };
}

/**
 * THE place where a file's expected digest is decided: today the input
 * file's `checksum=`; a digest from a checksums file (`--checksums`) for the
 * file's name is to be looked up here too.
 */
function digestFor(entry: InputEntry): ExpectedDigest | undefined {
  return entry.digest;
}

/** Reads the input file, or stdin for `-`; a file that cannot be read is a usage error. */
async function readInput(name: string): Promise<string> {
  if (name === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(name, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'an error';
    throw new InvalidArgumentError(`-i ${JSON.stringify(name)} cannot be read (${code})`, { hint: 'give the path of a list of URLs (aria2c input-file format), or - for stdin', cause: err });
  }
}

async function checkDirectory(dir: string): Promise<void> {
  const found = await stat(dir).catch(() => undefined);
  if (found?.isDirectory() === true) return;
  throw new InvalidArgumentError(`-d ${JSON.stringify(dir)} is ${found === undefined ? 'not there' : 'not a directory'}`, {
    hint: found === undefined ? `create it first (mkdir -p ${shellQuote(dir)})` : 'give a directory',
  });
}

/** Two files of the set with one target are refused before anything is downloaded. */
function refuseDuplicates(targets: readonly { readonly target: string; readonly origin: string }[]): void {
  const seen = new Map<string, string>();
  for (const { target, origin } of targets) {
    const key = join(process.cwd(), target);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InvalidArgumentError(`${origin}: saves to ${target}, as ${first} already does`, {
        hint: 'give one of them another name (out=NAME in the input file), or list the file once',
      });
    }
    seen.set(key, origin);
  }
}

/** The per-file options of a planned file: its digest and headers. */
function entryOptions(p: PlannedFile): NonNullable<DownloadEntry['options']> {
  return { headers: p.headers, ...(p.digest === undefined ? {} : { expectedDigest: p.digest }) };
}

/**
 * The targets of the files `out=` did not name, from the server's
 * Content-Disposition or the URL (as for one URL), asked `-c` at a time.
 * A file whose first request failed gets its error instead of a name.
 */
async function nameFromServers(
  planned: readonly PlannedFile[],
  command: DownloadSetCommand,
  dispatcher: Dispatcher,
  signal: AbortSignal,
  view: SetView,
): Promise<(string | BlockfetchError | undefined)[]> {
  const names: (string | BlockfetchError | undefined)[] = planned.map(() => undefined);
  const todo = planned.map((p, i) => ({ p, i })).filter(({ p }) => p.target === undefined);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length && !signal.aborted) {
      const { p, i } = todo[next++] as { p: PlannedFile; i: number };
      const url = p.urls[0] as string;
      const capture = captureResponseHeaders(dispatcher);
      const probe = new HttpReader({ url, blockSize: 1, headers: p.headers, requestTimeoutMs: command.timeoutMs, idleTimeoutMs: command.timeoutMs, dispatcher: capture.dispatcher });
      try {
        await lookAtRemote(probe, {
          signal,
          retry: { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs },
          onRetry: (retry) => view.note(`retrying the first request in ${Math.round(retry.delayMs)} ms (${retry.error.message})`, redactUrl(url)),
        });
        names[i] = join(p.directory, chooseFilename(url, contentDispositionOf(capture.firstSuccessHeaders())));
      } catch (err) {
        names[i] = err instanceof BlockfetchError ? err : new BlockfetchError('BLOCKFETCH_INTERNAL', String(err), { cause: err });
      } finally {
        await probe.close().catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, todo.length) }, worker));
  return names;
}

/** The command that resumes the set: the same one, every URL and header value redacted. */
function resumeText(argv: readonly string[], command: DownloadSetCommand): string {
  const first = command.urls[0] ?? '';
  let text = resumeCommand(argv, { url: first, output: '-', toStdout: false } as DownloadCommand, undefined);
  for (const url of command.urls.slice(1)) text = text.split(shellQuote(url)).join(shellQuote(redactUrl(url)));
  return text;
}
