/**
 * Retryability belongs to the code: the ERROR_CODES table covers every code
 * (and docs/errors.md says the same), anything that is not a BlockfetchError
 * is never retried, each split code is raised by its own site, and library
 * hints name options, never the command's flags (the CLI maps them).
 */
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCacheFiles } from '../src/cache/cache-files.js';
import { IndexFile } from '../src/cache/index-file.js';
import { exitCodeByErrorCode, exitCodeFor, ExitCode } from '../src/cli/exit-codes.js';
import { cliHint, describeFailure } from '../src/cli/report.js';
import { CachingDownloader } from '../src/download/caching-downloader.js';
import { StreamingDownloader } from '../src/download/streaming-downloader.js';
import { downloadFile, lookAtRemote } from '../src/download-file.js';
import type { Reader } from '../src/download/reader.js';
import {
  AbortedError,
  BlockfetchError,
  DigestMismatchError,
  ERROR_CODES,
  HttpStatusError,
  IndexError,
  InvalidArgumentError,
  LockHeldError,
  NotEnoughSpaceError,
  RemoteChangedError,
  RetriesExhaustedError,
  retryResponseOf,
  type ErrorCode,
} from '../src/errors.js';
import { networkError } from '../src/http/failures.js';
import { HttpReader } from '../src/http/http-reader.js';
import { FakeReader } from './helpers/fake-reader.js';
import { MemoryCache } from './helpers/memory-cache.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];
const FLAG = /(^|[\s(`'"])(--[a-z][a-z-]*|-[oHc])\b/;

async function failure(promise: Promise<unknown>): Promise<BlockfetchError> {
  try {
    await promise;
  } catch (err) {
    return err as BlockfetchError;
  }
  throw new Error('expected a failure, got success');
}

describe('the code table', () => {
  it('covers exactly the codes the exit-code table covers, each with a meaning and an action', () => {
    expect([...CODES].sort()).toEqual(Object.keys(exitCodeByErrorCode).sort());
    for (const code of CODES) {
      expect(ERROR_CODES[code].meaning, code).toMatch(/\S/);
      expect(ERROR_CODES[code].action, code).toMatch(/\S/);
      expect(new BlockfetchError(code, 'x').retryable, code).toBe(ERROR_CODES[code].retryable);
      expect(new BlockfetchError(code, 'x').isRetryable(), code).toBe(ERROR_CODES[code].retryable);
    }
  });

  it('sends only retryable codes to exit 3 ("run it again: it resumes")', () => {
    // RETRIES_EXHAUSTED is the exception: its own budget is spent, but a new run resumes.
    for (const code of CODES.filter((c) => c !== 'BLOCKFETCH_RETRIES_EXHAUSTED')) {
      if (exitCodeByErrorCode[code] === ExitCode.NETWORK) expect(ERROR_CODES[code].retryable, code).toBe(true);
    }
  });

  it('is what docs/errors.md says, code by code', async () => {
    const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const rows = new Map<string, string>();
    for (const m of doc.matchAll(/^\| `(BLOCKFETCH_[A-Z_]+)` \| [^|]+ \| (yes|no) \|/gm)) rows.set(m[1] as string, m[2] as string);
    expect([...rows.keys()].sort()).toEqual([...CODES].sort());
    for (const code of CODES) expect(rows.get(code), code).toBe(ERROR_CODES[code].retryable ? 'yes' : 'no');
  });
});

describe('retryResponseOf', () => {
  it('answers a BlockfetchError by its code and its Retry-After', () => {
    expect(retryResponseOf(new BlockfetchError('BLOCKFETCH_NETWORK', 'reset')).isRetryable()).toBe(true);
    expect(retryResponseOf(new BlockfetchError('BLOCKFETCH_HTTP_STATUS', '404')).isRetryable()).toBe(false);
    const busy = new HttpStatusError(503, 'http://h/f', 'Service Unavailable', { retryAfterMs: 750 });
    expect(busy.code).toBe('BLOCKFETCH_HTTP_TRANSIENT');
    expect(retryResponseOf(busy).backoffDuration()).toBe(750);
    expect(new HttpStatusError(404, 'http://h/f', 'Not Found')).toMatchObject({ code: 'BLOCKFETCH_HTTP_STATUS', retryable: false });
  });

  it.each([
    ['a TypeError from a bug', new TypeError('x is undefined')],
    ['a plain Error', new Error('connection reset')],
    ['an AbortError', Object.assign(new Error('aborted'), { name: 'AbortError' })],
    ['a string', 'oops'],
    ['undefined', undefined],
  ])('never retries %s', (_what, value) => {
    expect(retryResponseOf(value).isRetryable()).toBe(false);
    expect(retryResponseOf(value).backoffDuration()).toBeUndefined();
  });

  it('a CachingDownloader makes one attempt at a TypeError, then fails', async () => {
    const reader = new FakeReader({ size: 10_000, script: ({ n }) => (n === 0 ? { refuse: new TypeError('bug in a reader') } : undefined) });
    const status = await new CachingDownloader(reader, MemoryCache.create(10_000, 1000), {
      concurrency: 1,
      maxRequestBytes: 0,
      retry: { attemptsPerBlock: 5, baseDelayMs: 0, maxDelayMs: 0 },
    }).run();
    expect(status.complete).toBe(false);
    expect(status.stats.retries).toBe(0);
    expect(reader.requests.filter((r) => r.from === 0)).toHaveLength(1);
    // Reported as the bug it is, not as a network failure that "resumes" (exit 3).
    expect(status.error).toMatchObject({ code: 'BLOCKFETCH_INTERNAL', retryable: false });
    expect(status.error?.cause).toBeInstanceOf(TypeError);
    expect(exitCodeFor(status.error)).toBe(ExitCode.FAILURE);
  });

  it('lookAtRemote reports a TypeError from the first look as BLOCKFETCH_INTERNAL after one attempt', async () => {
    let looks = 0;
    const reader = new FakeReader({ size: 10 });
    const broken: Reader = {
      name: reader.name,
      contentLengthAndBlockSize: () => {
        looks++;
        return Promise.reject(new TypeError('bug in a reader'));
      },
      digest: () => undefined,
      getReader: (from, to, signal) => reader.getReader(from, to, signal),
    };
    await expect(lookAtRemote(broken, { retry: { baseDelayMs: 0, maxDelayMs: 0 } })).rejects.toMatchObject({ code: 'BLOCKFETCH_INTERNAL' });
    expect(looks).toBe(1);
  });

  it('a StreamingDownloader makes one attempt at a plain Error, then fails', async () => {
    const reader = new FakeReader({ size: 10_000, blockSize: 1000, script: ({ n }) => (n === 0 ? { refuse: new Error('plain') } : undefined) });
    const dl = new StreamingDownloader(reader, { concurrency: 1, computeDigest: false, retry: { attemptsPerBlock: 5, baseDelayMs: 0, maxDelayMs: 0 } });
    let failed: unknown;
    try {
      for await (const chunk of dl) void chunk;
    } catch (err) {
      failed = err;
    }
    expect(failed).toMatchObject({ message: 'plain' });
    expect(reader.requests.filter((r) => r.from === 0)).toHaveLength(1);
  });
});

describe('each split code is raised by its own site', () => {
  let plain: Server;
  let port = 0;
  let connections = 0;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-errors-'));
    plain = createServer((_req, res) => res.end('plain http'));
    plain.on('connection', () => connections++);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    port = (plain.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => plain.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('an https URL at a plain HTTP port is BLOCKFETCH_TLS, tried once', async () => {
    const before = connections;
    const err = await failure(
      downloadFile(`https://127.0.0.1:${port}/f`, join(dir, 'tls.bin'), { retry: { attemptsPerBlock: 4, baseDelayMs: 0, maxDelayMs: 0 } }),
    );
    expect(err).toMatchObject({ code: 'BLOCKFETCH_TLS', retryable: false });
    expect(connections - before).toBe(1);
    expect(describeFailure(err).exitCode).toBe(ExitCode.FAILURE);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a host name that does not exist is BLOCKFETCH_HOST_NOT_FOUND, not retried', async () => {
    // `.invalid` never resolves (RFC 2606) and sends no traffic anywhere.
    const reader = new HttpReader({ url: 'http://nonexistent.invalid/f' });
    const err = await failure(reader.contentLengthAndBlockSize());
    await reader.close();
    expect(err).toMatchObject({ code: 'BLOCKFETCH_HOST_NOT_FOUND', retryable: false });
    expect(describeFailure(err).exitCode).toBe(ExitCode.FAILURE);
  });

  it('a local file that cannot be read is BLOCKFETCH_DISK_READ, not DISK_WRITE', async () => {
    // A directory where a file should be: reading it fails with EISDIR.
    const index = join(dir, 'idx.json');
    await mkdir(index);
    const unreadable = await failure(new IndexFile(index).load());
    expect(unreadable).toMatchObject({ code: 'BLOCKFETCH_DISK_READ' });
    expect((unreadable.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
    const data = join(dir, 'data.bin');
    await mkdir(data);
    await writeFile(join(dir, 'data.json'), '{}');
    expect(await failure(openCacheFiles(data, join(dir, 'data.json')))).toMatchObject({ code: 'BLOCKFETCH_DISK_READ' });
    await rm(index, { recursive: true });
    await rm(data, { recursive: true });
    await rm(join(dir, 'data.json'));
  });

  it('maps socket errors by what retrying can do', () => {
    const map = (code: string): unknown => networkError(Object.assign(new Error(code), { code }), 'http://h/f');
    expect(map('ECONNRESET')).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true });
    expect(map('EAI_AGAIN')).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true });
    expect(map('ENOTFOUND')).toMatchObject({ code: 'BLOCKFETCH_HOST_NOT_FOUND', retryable: false });
    expect(map('CERT_HAS_EXPIRED')).toMatchObject({ code: 'BLOCKFETCH_TLS', retryable: false });
    expect(map('ERR_SSL_WRONG_VERSION_NUMBER')).toMatchObject({ code: 'BLOCKFETCH_TLS', retryable: false });
    // Without a code it is still a typed, retryable network error: never a raw value.
    expect(networkError(new Error('socket hang up'), 'http://h/f')).toMatchObject({ code: 'BLOCKFETCH_NETWORK', retryable: true });
    expect(networkError('weird', 'http://h/f')).toBeInstanceOf(BlockfetchError);
  });
});

/** Every hint the library can give: the table's actions, class defaults, and each `hint:` literal in src outside cli/. */
async function libraryHints(): Promise<string[]> {
  const hints = CODES.map((code) => ERROR_CODES[code].action);
  const errors: BlockfetchError[] = [
    new NotEnoughSpaceError('/t', 2, 1),
    new LockHeldError('/t'),
    new RemoteChangedError('http://h/f', [], 0),
    new RemoteChangedError('http://h/f', [], 4096),
    new RetriesExhaustedError('gave up', 3),
    new DigestMismatchError('sha256', 'a', 'b'),
    new AbortedError(),
    new InvalidArgumentError('x'),
    new IndexError('BLOCKFETCH_INDEX_CORRUPT', '/t.json', 'x'),
    new HttpStatusError(404, 'http://h/f', ''),
  ];
  for (const err of errors) if (err.hint !== undefined) hints.push(err.hint);
  const files = (await readdir(new URL('../src/', import.meta.url), { recursive: true })).filter(
    (f) => f.endsWith('.ts') && !f.startsWith('cli'),
  );
  for (const file of files) {
    const text = await readFile(new URL(`../src/${file}`, import.meta.url), 'utf8');
    // The literal (or template, or ternary of literals) after `hint:` / a HINTS table entry.
    for (const m of text.matchAll(/\bhint:\s*((?:[^,}]|,(?!\s*\n))+)/g)) hints.push(`${file}: ${m[1] as string}`);
    for (const m of text.matchAll(/const HINTS = \{([\s\S]*?)\} as const/g)) hints.push(`${file}: ${m[1] as string}`);
    for (const m of text.matchAll(/mismatch\(\s*[^\n]*\n\s*([^\n]+)\n/g)) hints.push(`${file}: ${m[1] as string}`);
  }
  return hints;
}

describe('messages', () => {
  it('library hints name options and actions, never a command-line flag', async () => {
    const hints = await libraryHints();
    expect(hints.length).toBeGreaterThan(40);
    for (const hint of hints) expect(hint).not.toMatch(FLAG);
  });

  it('the CLI words the same hints with its own flags', () => {
    expect(cliHint(new RemoteChangedError('http://h/f', [], 4096))).toBe(
      'restart (--restart) to discard the 4.00 KiB already downloaded and fetch the new revision',
    );
    expect(cliHint(new RemoteChangedError('http://h/f', [], 0))).toBe('restart (--restart) to fetch the new revision');
    expect(cliHint(new BlockfetchError('BLOCKFETCH_TARGET_EXISTS', 'exists'))).toMatch(/--force.*-o/);
    expect(cliHint(new BlockfetchError('BLOCKFETCH_TIMEOUT', 'slow'))).toContain('--timeout');
    expect(cliHint(new HttpStatusError(401, 'http://h/f', 'Unauthorized'))).toContain('(-H)');
    expect(cliHint(new BlockfetchError('BLOCKFETCH_INDEX_MISMATCH', 'x', { hint: 'resume with block size 4096 (option `blockSize`), or start over (option `restart`)' }))).toBe(
      'resume with block size 4096 (--block-size), or start over (--restart)',
    );
    // An option the command has no flag for is left as the library said it.
    expect(cliHint(new BlockfetchError('BLOCKFETCH_NETWORK', 'x', { hint: 'raise option `nosuch`' }))).toBe('raise option `nosuch`');
    for (const code of CODES) expect(cliHint(new BlockfetchError(code, 'x')), code).not.toMatch(/option `(restart|overwrite|timeoutMs|headers)`/);
  });
});
