/**
 * `--checksums FILE|URL`: reading a publisher's checksum list from a file
 * or over HTTP, before the download starts, and choosing the digests it
 * gives for the file being downloaded.
 *
 * A URL is fetched with the download's own HTTP stack (an {@link HttpReader}
 * on a dispatcher with the same proxy and TLS settings), so redirects,
 * timeouts, retries and error codes are the download's. The `-H` headers go
 * along only when the list is on the download's origin (for a set of files,
 * every file's): a token meant for
 * the file's host is not sent to another host that serves the list (and the
 * reader drops them on any redirect to another origin, as for the file).
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';

import type { Dispatcher } from 'undici';

import type { ExpectedDigest } from '../cache/types.js';
import { digestsFor, parseChecksumList, type ChecksumList } from '../download/checksum-list.js';
import { lookAtRemote } from '../download-file.js';
import { BlockfetchError, InvalidArgumentError, redactUrl } from '../errors.js';
import { createDefaultDispatcher, type DispatcherTlsOptions } from '../http/dispatcher.js';
import { HttpReader } from '../http/http-reader.js';
import { headerRecord, type DownloadCommand } from './args.js';
import { formatBytes } from './units.js';

/**
 * The largest checksum list read, in bytes. Debian's biggest SHA256SUMS are
 * a few KiB; a list of every file of a large mirror is a few MiB. Anything
 * bigger is not a checksum list (a wrong URL serving the image itself, say)
 * and is refused before its body is read.
 *
 * @example
 * ```ts
 * MAX_CHECKSUM_LIST_BYTES // 16777216
 * ```
 */
export const MAX_CHECKSUM_LIST_BYTES = 16 * 1024 * 1024;

/** How {@link loadChecksumList} fetches a URL. */
export interface ChecksumListFetch {
  /**
   * The download's URL, or every URL of a set of files: `headers` are sent
   * only when each of them has the list's origin.
   */
  readonly downloadUrl: string | readonly string[];
  /** The `-H` headers of the download (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
  /** A dispatcher with the download's proxy and TLS settings (the caller closes it). */
  readonly dispatcher: Dispatcher;
  /** The per-request timeout, ms. */
  readonly timeoutMs: number;
  /** Attempts of the first request (a 503 or a reset is retried like a block). */
  readonly attempts: number;
  readonly signal: AbortSignal;
}

/** True when `source` is given as an http(s) URL rather than a file. */
function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/**
 * Reads and parses the checksum list at `source` (a file path or an http(s)
 * URL). A file that cannot be read, a list larger than
 * {@link MAX_CHECKSUM_LIST_BYTES} or a malformed line is an
 * {@link InvalidArgumentError} (exit 2); a URL that cannot be fetched keeps
 * the HTTP error's code (a 404 exits 1, a network failure 3), its message
 * saying it was the checksum list.
 *
 * @example
 * ```ts
 * const list = await loadChecksumList('https://cdimage.debian.org/…/SHA256SUMS', { downloadUrl, headers, dispatcher, timeoutMs: 30_000, attempts: 6, signal });
 * ```
 */
export async function loadChecksumList(source: string, fetch: ChecksumListFetch): Promise<ChecksumList> {
  if (!isUrl(source)) return parseChecksumList(await readListFile(source), source);
  const name = redactUrl(source);
  return parseChecksumList(await fetchList(source, name, fetch), name);
}

/**
 * Reads a list file, at most {@link MAX_CHECKSUM_LIST_BYTES}: a regular file
 * is refused from its size; anything else that can be read (a pipe, as in
 * `--checksums <(curl -s URL)`) is read until its end or the cap.
 */
async function readListFile(path: string): Promise<string> {
  const cannot = (err: unknown): InvalidArgumentError =>
    new InvalidArgumentError(`--checksums ${JSON.stringify(path)} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      hint: 'give the path of a checksum list (e.g. SHA256SUMS), or its http(s) URL',
      cause: err,
    });
  let file;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw cannot(err);
  }
  try {
    const stat = await file.stat();
    if (stat.isFile()) tooLarge(stat.size, JSON.stringify(path));
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      parts.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      tooLarge(total, JSON.stringify(path), false);
    }
    return Buffer.concat(parts).toString('utf8');
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw cannot(err);
  } finally {
    await file.close();
  }
}

/** Refuses a list past the cap; `exact`: `size` is the whole list's (else only what was read so far). */
function tooLarge(size: number, name: string, exact = true): void {
  if (size <= MAX_CHECKSUM_LIST_BYTES) return;
  throw new InvalidArgumentError(
    `--checksums ${name} is ${exact ? `${formatBytes(size)}, ` : ''}larger than the ${formatBytes(MAX_CHECKSUM_LIST_BYTES)} a checksum list may be`,
    { hint: 'check that it names the checksum list (SHA256SUMS), not the file itself' },
  );
}

async function fetchList(url: string, name: string, o: ChecksumListFetch): Promise<string> {
  const reader = new HttpReader({
    url,
    // One request asks for one byte more than the cap, so a larger list is
    // told by its size (Content-Range) without its body being read.
    blockSize: MAX_CHECKSUM_LIST_BYTES + 1,
    headers: allOnOrigin(url, typeof o.downloadUrl === 'string' ? [o.downloadUrl] : o.downloadUrl) ? o.headers : withoutCredentials(o.headers),
    requestTimeoutMs: o.timeoutMs,
    idleTimeoutMs: o.timeoutMs,
    dispatcher: o.dispatcher,
  });
  const failed = (err: unknown): Error => {
    if (!(err instanceof BlockfetchError)) return err instanceof Error ? err : new Error(String(err));
    return new BlockfetchError(err.code, `cannot fetch the checksum list: ${err.message}`, {
      cause: err,
      hint: err.hint ?? 'check the --checksums URL; nothing was downloaded',
    });
  };
  try {
    let size: number;
    try {
      size = (await lookAtRemote(reader, { signal: o.signal, retry: { attemptsPerBlock: o.attempts } })).contentLength;
    } catch (err) {
      throw failed(err);
    }
    tooLarge(size, name);
    if (size === 0) return '';
    const parts: Uint8Array[] = [];
    try {
      for await (const chunk of await reader.getReader(0, size - 1, o.signal)) parts.push(chunk);
    } catch (err) {
      throw failed(err);
    }
    return Buffer.concat(parts).toString('utf8');
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/** True when two URLs share scheme, host and port. */
function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/**
 * True when every one of `downloads` shares `list`'s origin: the headers of
 * a set spanning several origins were meant for more than the list's host.
 */
function allOnOrigin(list: string, downloads: readonly string[]): boolean {
  return downloads.length > 0 && downloads.every((d) => sameOrigin(list, d));
}

/**
 * The headers that may go to another origin: only `User-Agent`. Anything
 * else given with `-H` may be a credential (Authorization, Cookie, an API
 * key under any name), and it was given for the download's host.
 */
function withoutCredentials(headers: Readonly<Record<string, string>>): Record<string, string> {
  const agent = headers['user-agent'];
  return agent === undefined ? {} : { 'user-agent': agent };
}

/**
 * `--checksums` for a run: the list, read from its file or fetched from its
 * URL on a dispatcher of its own with the run's proxy and TLS settings (not
 * a download's header-capturing one: its headers must not name a file).
 * `downloadUrls` are every URL the run downloads (mirrors too): the `-H`
 * headers go to a list URL only when all of them are on its origin.
 *
 * @example
 * ```ts
 * const list = await checksumListForRun(command, [command.url], await tlsOptions(command), io.signal);
 * ```
 */
export async function checksumListForRun(
  command: Pick<DownloadCommand, 'checksums' | 'headers' | 'timeoutMs' | 'retries'>,
  downloadUrls: readonly string[],
  tls: DispatcherTlsOptions,
  signal: AbortSignal,
): Promise<ChecksumList> {
  const dispatcher = createDefaultDispatcher(process.env, tls);
  try {
    return await loadChecksumList(command.checksums ?? '', {
      downloadUrl: downloadUrls,
      headers: headerRecord(command.headers),
      dispatcher,
      timeoutMs: command.timeoutMs,
      attempts: command.retries + 1,
      signal,
    });
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

/**
 * The digests `list` gives for the file saved as `target` (matched by
 * {@link digestsFor}'s rule: the name as given, else its final name), checked
 * against the one given with `--sha256`/`--sha512`/`--checksum`: the same
 * algorithm with another digest is a usage error, before any download.
 * Returns every digest to check, the given one first.
 *
 * @example
 * ```ts
 * expectedDigestsFor(list, 'out/big.iso', given) // [given, sha512 from the list]
 * ```
 */
export function expectedDigestsFor(list: ChecksumList, target: string, given: ExpectedDigest | undefined): ExpectedDigest[] {
  const listed = digestsFor(list, target);
  if (given === undefined) return listed;
  const same = listed.find((d) => d.algorithm === given.algorithm);
  if (same !== undefined && same.hex !== given.hex) {
    throw new InvalidArgumentError(
      `the ${given.algorithm} given on the command line (${given.hex}) is not the one ${list.source} gives for ${JSON.stringify(target)} (${same.hex})`,
      { hint: 'one of them is for another file or another release: drop the one that is wrong' },
    );
  }
  return [given, ...listed.filter((d) => d.algorithm !== given.algorithm)];
}

/**
 * The one line to show about what `list` said for the file saved as
 * `target`: that it does not list it (the download goes on unchecked by the
 * list; not an error, since a list may cover other files), or, when
 * `verbose`, which of `digests` will be checked. `undefined`: nothing to say.
 * One file and every file of a set get the same line.
 *
 * @example
 * ```ts
 * listedNote(list, 'out/b.iso', [], false)
 * // 'note: SHA256SUMS does not list b.iso; it is downloaded without a checksum from the list'
 * ```
 */
export function listedNote(list: ChecksumList, target: string, digests: readonly ExpectedDigest[], verbose: boolean): string | undefined {
  if (digestsFor(list, target).length === 0) return `note: ${list.source} does not list ${basename(target)}; it is downloaded without a checksum from the list`;
  if (verbose) return `${list.source} lists ${basename(target)}: checking ${digests.map((d) => d.algorithm).join(' and ')} before the final rename`;
  return undefined;
}
