/**
 * `blockfetch URL URL... [-d DIR]` and `blockfetch -i FILE`: a set of files
 * through {@link downloadFiles}. This layer decides each file's target (the
 * input file's `out=`/`dir=`, else the server's or the URL's name, as for
 * one URL), refuses a set that is wrong before anything is downloaded (a
 * malformed input file, two files with one target), shows progress and the
 * summary, and maps the outcomes to one exit code
 * ({@link mostSevereExitCode}).
 *
 * `--checksums FILE|URL` is read once, before anything else is asked of a
 * server; each file is then checked against what it gives for the file's
 * target, besides its `checksum=` ({@link expectedDigestsOf}). Several
 * TAB-separated URLs on an input-file line are one file read from all of
 * them ({@link mirrorReaderFor}).
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
import { digestsFor, type ChecksumList } from '../download/checksum-list.js';
import type { Reader } from '../download/reader.js';
import type { DownloadEntry } from '../download-files.js';
import { BlockfetchError, InvalidArgumentError, redactUrl } from '../errors.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { headerRecord, type DownloadCommand, type DownloadSetCommand } from './args.js';
import { expectedDigestsFor, listedNote, checksumListForRun } from './checksum-list-source.js';
import { listedMismatch, mirrorReaderFor, nameFromServer, tlsOptions } from './download-command.js';
import type { ExitCodeValue } from './exit-codes.js';
import { parseInputFile, type InputEntry } from './input-file.js';
import type { CliIo } from './io.js';
import { describeFailure, formatFailure, writeJsonError, debugFromEnvironment, type FailureReport } from './report.js';
import { captureResponseHeaders } from './response-headers.js';
import { resumeCommand, shellQuote } from './resume-command.js';
import { createSetView, type SetView } from './set-progress.js';
import { runSet, type SetSlot } from './set-run.js';

/** One file of the set, before its target is known. */
interface PlannedFile {
  /** The URLs: the first names the file; all are read (mirrors) when there are several. */
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
  let checksums: ChecksumList | undefined;
  try {
    planned = await planFiles(command);
    refuseDuplicates(planned.filter((p) => p.target !== undefined).map((p) => ({ target: p.target as string, origin: p.origin })));
    const tls = await tlsOptions(command);
    if (command.checksums !== undefined) {
      // Once for the whole set, before any request for a file: a list that
      // cannot be had or read, or that contradicts a checksum= of a file
      // whose name is already known (out=), stops the run here.
      // -H goes to a list URL only when every URL of the set (mirrors too) is
      // on its origin: a set spanning several hosts is not the list host's alone.
      checksums = await checksumListForRun(
        command,
        planned.flatMap((p) => p.urls),
        tls,
        io.signal,
      );
      for (const p of planned) if (p.target !== undefined) expectedDigestsOf(p, p.target, checksums);
    }
    dispatcher = createDefaultDispatcher(process.env, tls, { http2: command.http2 });
  } catch (err) {
    if (json) writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, command.debug || debugFromEnvironment));
    return describeFailure(err).exitCode;
  }
  const view = createSetView(command.outputMode, io.stdout, io.stderr);
  const resume = resumeText(io.argv, command);
  try {
    if (command.tls.insecure) view.note('warning: -k/--insecure: TLS certificates are not checked in this run; anyone on the path can read or change the download');
    // Targets the server names: one small request each, before any download, so that two files with one name are refused up front.
    const named = await nameFromServers(planned, command, dispatcher, io.signal, view);
    const slots: SetSlot[] = [];
    const targets: { target: string; origin: string; digests: readonly ExpectedDigest[] }[] = [];
    for (const [i, p] of planned.entries()) {
      const target = p.target ?? named[i];
      const url = p.urls[0] as string;
      if (typeof target !== 'string') {
        // Its first request failed: no name, so the summary names it by its URL.
        slots.push({ settled: { file: redactUrl(url), outcome: 'failed', report: describeFailure(named[i]) } });
        continue;
      }
      const digests = expectedDigestsOf(p, target, checksums);
      targets.push({ target, origin: p.origin, digests });
      slots.push({ entry: { source: url, target, key: target, options: entryOptions(p, target, digests, command, dispatcher, view) }, url });
    }
    refuseDuplicates(targets);
    if (checksums !== undefined) {
      for (const { target, digests } of targets) {
        const note = listedNote(checksums, target, digests, command.verbose);
        if (note !== undefined) view.note(note);
      }
    }
    const list = checksums;
    // A file that fails a digest the list gave says so in its hint (the key is the target).
    const explain = list === undefined ? undefined : (key: string, err: BlockfetchError): FailureReport => describeFailure(listedMismatch(err, list, key));
    return await runSet(slots, { command, view, io, dispatcher, started, resume, ...(explain === undefined ? {} : { explain }) });
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
  for (const p of planned) {
    const other = p.urls.find((url) => !/^https?:/i.test(url));
    if (other !== undefined) {
      // hf:// and s3:// list their own files; mixed into a set of URLs they would be read as plain HTTP.
      throw new InvalidArgumentError(`${p.origin}: ${redactUrl(other)} is not an http(s) URL, and a set of several URLs or an input file takes only those`, {
        hint: 'download an hf:// repository or an s3:// prefix in a command of its own (it is a set by itself)',
      });
    }
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
    digest: entry.digest,
    // The entry's header= lines win over -H for the same name.
    headers: { ...globalHeaders, ...headerRecord(entry.headers) },
  };
}

/**
 * THE place where a file's expected digests are decided: its input-file
 * `checksum=` (if it has one), then every digest `list` gives
 * for its target (the same lookup as for one file). A `checksum=` the list
 * contradicts (the same algorithm, another digest) is a usage error naming
 * the input file's line: one of the two is for another file or release.
 */
function expectedDigestsOf(p: PlannedFile, target: string, list: ChecksumList | undefined): ExpectedDigest[] {
  const given = p.digest;
  if (list === undefined) return given === undefined ? [] : [given];
  const same = given === undefined ? undefined : digestsFor(list, target).find((d) => d.algorithm === given.algorithm);
  if (given !== undefined && same !== undefined && same.hex !== given.hex) {
    throw new InvalidArgumentError(`${p.origin}: its checksum= ${given.algorithm} (${given.hex}) is not the one ${list.source} gives for ${JSON.stringify(target)} (${same.hex})`, {
      hint: 'one of them is for another file or another release: correct or remove the checksum= line, or give the right list',
    });
  }
  return expectedDigestsFor(list, target, given);
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

/**
 * The per-file options of a planned file: its digests, and its headers, or,
 * for several URLs, a reader over all of them (its mirrors) that holds the
 * headers and the set's HTTP settings (downloadFile takes no HTTP option
 * beside a reader of its own). Any of its digests proves the mirrors serve
 * the same bytes, so they share the work.
 */
function entryOptions(
  p: PlannedFile,
  target: string,
  digests: readonly ExpectedDigest[],
  command: DownloadSetCommand,
  dispatcher: Dispatcher,
  view: SetView,
): NonNullable<DownloadEntry['options']> {
  const checked = digests.length === 0 ? {} : { expectedDigests: digests };
  if (p.urls.length === 1) return { headers: p.headers, ...checked };
  const createReader = (url: string): Reader =>
    mirrorReaderFor([url, ...p.urls.slice(1)], { headers: p.headers, command, dispatcher, digests, note: (message) => view.note(message, target) });
  return { ...checked, createReader };
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
      try {
        const name = await nameFromServer(url, {
          headers: p.headers,
          command,
          capture: captureResponseHeaders(dispatcher),
          signal,
          onRetry: (retry) => view.note(`retrying the first request in ${Math.round(retry.delayMs)} ms (${retry.error.message})`, redactUrl(url)),
        });
        names[i] = join(p.directory, name);
      } catch (err) {
        names[i] = err instanceof BlockfetchError ? err : new BlockfetchError('BLOCKFETCH_INTERNAL', String(err), { cause: err });
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
