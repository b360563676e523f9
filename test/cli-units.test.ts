/**
 * Unit tests of the CLI's pure pieces: sizes and rates, durations, argument
 * parsing and validation, file naming, exit-code mapping.
 */
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { parseCommandLine, parseDurationMs, type DownloadCommand } from '../src/cli/args.js';
import { ExitCode, exitCodeByErrorCode, exitCodeFor } from '../src/cli/exit-codes.js';
import {
  FALLBACK_FILENAME,
  MAX_FILENAME_BYTES,
  chooseFilename,
  filenameFromContentDisposition,
  filenameFromUrl,
  sanitizeFilename,
} from '../src/cli/filename.js';
import { formatBytes, formatDuration, parseByteSize, parseRate } from '../src/cli/units.js';
import {
  BlockfetchError,
  DigestMismatchError,
  HttpStatusError,
  InvalidArgumentError,
  LockHeldError,
  RemoteChangedError,
  RetriesExhaustedError,
} from '../src/errors.js';

describe('parseByteSize', () => {
  it('tells IEC (powers of 2) from SI (powers of 10)', () => {
    expect(parseByteSize('16MiB', '--x')).toBe(16 * 2 ** 20);
    expect(parseByteSize('16MB', '--x')).toBe(16_000_000);
    expect(parseByteSize('1GiB', '--x')).toBe(2 ** 30);
    expect(parseByteSize('1GB', '--x')).toBe(1e9);
    expect(parseByteSize('64KiB', '--x')).toBe(65536);
    expect(parseByteSize('64kB', '--x')).toBe(64000);
    expect(parseByteSize('2TiB', '--x')).toBe(2 * 2 ** 40);
  });
  it('accepts plain bytes, spaces, any case, and short forms', () => {
    expect(parseByteSize('4096', '--x')).toBe(4096);
    expect(parseByteSize('4096B', '--x')).toBe(4096);
    expect(parseByteSize('16 mib', '--x')).toBe(16 * 2 ** 20);
    expect(parseByteSize('16mb', '--x')).toBe(16e6); // never bits
    expect(parseByteSize('8Mi', '--x')).toBe(8 * 2 ** 20);
    expect(parseByteSize('8M', '--x')).toBe(8e6);
  });
  it('allows fractions only when they come out whole', () => {
    expect(parseByteSize('0.5KiB', '--x')).toBe(512);
    expect(parseByteSize('1.5GiB', '--x')).toBe(1.5 * 2 ** 30);
    expect(parseByteSize('0.1GB', '--x')).toBe(1e8);
    expect(() => parseByteSize('1.5B', '--x')).toThrow(/whole number of bytes.*"1.5B"/);
  });
  it('rejects what is not a size, naming the option and the value', () => {
    for (const bad of ['', 'abc', '-5MB', '16 XB', '1e3MB', 'MiB', '16MiBs']) {
      let caught: unknown;
      try {
        parseByteSize(bad, '--block-size');
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(InvalidArgumentError);
      expect((caught as Error).message).toContain('--block-size');
      expect((caught as Error).message).toContain(JSON.stringify(bad));
    }
  });
});

describe('parseRate', () => {
  it('reads bytes per second with or without /s', () => {
    expect(parseRate('50MB/s', '--rate')).toBe(50e6);
    expect(parseRate('8MiB/s', '--rate')).toBe(8 * 2 ** 20);
    expect(parseRate('1000', '--rate')).toBe(1000);
    expect(parseRate('2 MiB / sec', '--rate')).toBe(2 * 2 ** 20);
  });
  it('rejects zero and nonsense', () => {
    expect(() => parseRate('0MB/s', '--rate')).toThrow(/--rate must be at least 1 byte/);
    expect(() => parseRate('fast', '--rate')).toThrow(/--rate/);
  });
});

describe('formatting', () => {
  it('formats bytes in IEC units with three significant digits', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(16 * 2 ** 20)).toBe('16.0 MiB');
    expect(formatBytes(200 * 2 ** 30)).toBe('200 GiB');
  });
  it('formats durations', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_345)).toBe('12.3s');
    expect(formatDuration(245_000)).toBe('4m05s');
    expect(formatDuration(7_380_000)).toBe('2h03m');
    expect(formatDuration(Infinity)).toBe('?');
  });
  it('parses durations, seconds by default', () => {
    expect(parseDurationMs('30', '--timeout')).toBe(30_000);
    expect(parseDurationMs('500ms', '--timeout')).toBe(500);
    expect(parseDurationMs('2m', '--timeout')).toBe(120_000);
    expect(() => parseDurationMs('0', '--timeout')).toThrow(/--timeout must be from 1ms/);
    expect(() => parseDurationMs('soon', '--timeout')).toThrow(/--timeout must be a duration.*"soon"/);
  });
});

describe('parseCommandLine', () => {
  const url = 'http://127.0.0.1:8080/files/big.iso';
  const download = (argv: string[]): DownloadCommand => {
    const command = parseCommandLine(argv);
    if (command.kind !== 'download') throw new Error(`expected download, got ${command.kind}`);
    return command;
  };

  it('fills in defaults', () => {
    const c = download([url]);
    expect(c).toMatchObject({
      url,
      output: undefined,
      toStdout: false,
      concurrency: 8,
      blockSize: undefined,
      requestSize: undefined,
      rateBytesPerSecond: undefined,
      headers: [],
      digest: undefined,
      restart: false,
      retries: 5,
      timeoutMs: 30_000,
      force: false,
      outputMode: 'auto',
      debug: false,
    });
  });
  it('reads every option', () => {
    const sha = 'AB'.repeat(32);
    const c = download([
      url, '-o', 'x.iso', '-c', '4', '--block-size', '8MiB', '--request-size', '32MiB', '--rate', '50MB/s',
      '-H', 'Authorization: Bearer t', '--header', 'X-A:  b ', '--sha256', sha,
      '--restart', '--retries', '2', '--timeout', '5s', '--force', '--json', '--debug',
    ]);
    expect(c).toMatchObject({
      output: 'x.iso',
      concurrency: 4,
      blockSize: 8 * 2 ** 20,
      requestSize: 32 * 2 ** 20,
      rateBytesPerSecond: 50e6,
      headers: [['Authorization', 'Bearer t'], ['X-A', 'b']],
      digest: { algorithm: 'sha256', hex: sha.toLowerCase() },
      restart: true,
      retries: 2,
      timeoutMs: 5000,
      force: true,
      outputMode: 'json',
      debug: true,
    });
  });
  it("reads aria2c's --checksum ALGO=HEX as the digest", () => {
    expect(download([url, '--checksum', `SHA-256=${'AB'.repeat(32)}`]).digest).toEqual({ algorithm: 'sha256', hex: 'ab'.repeat(32) });
    expect(download([url, '--checksum', `sha-512=${'c'.repeat(128)}`]).digest).toEqual({ algorithm: 'sha512', hex: 'c'.repeat(128) });
    expect(download([url, '--checksum', `sha-1=${'d'.repeat(40)}`]).digest).toEqual({ algorithm: 'sha1', hex: 'd'.repeat(40) });
    expect(download([url, '--checksum', `md5=${'e'.repeat(32)}`]).digest).toEqual({ algorithm: 'md5', hex: 'e'.repeat(32) });
  });
  it('treats -o - and --stdout as streaming to stdout', () => {
    expect(download([url, '-o', '-'])).toMatchObject({ toStdout: true, output: undefined });
    expect(download([url, '--stdout'])).toMatchObject({ toStdout: true, output: undefined });
    // Stream while saving: both, and the file is kept (and resumable).
    expect(download([url, '--stdout', '-o', 'f'])).toMatchObject({ toStdout: true, output: 'f' });
    expect(download([url, '-o', 'f', '--stdout', '-d', 'dir'])).toMatchObject({ toStdout: true, output: 'dir/f' });
    expect(download([url, '--stdout', '-o', '-'])).toMatchObject({ toStdout: true, output: undefined });
    expect(() => download([url, '--stdout', '-d', 'dir'])).toThrow(/two destinations/);
  });
  it('parses inspect, verify, help and version', () => {
    expect(parseCommandLine(['inspect', 'f.iso', '--json'])).toEqual({ kind: 'inspect', path: 'f.iso', json: true, debug: false });
    const sha512 = 'c'.repeat(128);
    expect(parseCommandLine(['verify', 'f.iso', '--sha512', sha512])).toEqual({
      kind: 'verify',
      path: 'f.iso',
      digests: [{ algorithm: 'sha512', hex: sha512 }],
      json: false,
      debug: false,
    });
    expect(parseCommandLine(['--help'])).toEqual({ kind: 'help', topic: 'download' });
    expect(parseCommandLine(['help', 'inspect'])).toEqual({ kind: 'help', topic: 'inspect' });
    expect(parseCommandLine(['verify', '-h'])).toEqual({ kind: 'help', topic: 'verify' });
    expect(parseCommandLine(['--version'])).toEqual({ kind: 'version' });
  });

  const usageErrors: [string[], RegExp][] = [
    [[], /missing the URL/],
    [['ftp://example.com/f'], /unsupported URL scheme "ftp:"/],
    [['not a url'], /not a URL: "not a url"/],
    [[url, url, '-o', 'x'], /-o names one file, but 2 URLs ask for several/],
    [[url, '--bogus'], /unknown option '--bogus'/],
    [[url, '-c'], /^-c\/--concurrency needs a value \(N\), got nothing after it$/],
    [[url, '-c', '0'], /-c\/--concurrency must be a whole number from 1 to 256, got "0"/],
    [[url, '-c', 'many'], /-c\/--concurrency .* got "many"/],
    [[url, '--block-size', '1KiB'], /--block-size must be from 4KiB to 1GiB, got "1KiB"/],
    [[url, '--block-size', '16 parsecs'], /--block-size must be a size/],
    [[url, '--request-size', '2GiB'], /--request-size must be from 4KiB to 1GiB, got "2GiB"/],
    [[url, '--sha256', 'abc'], /--sha256 must be 64 hexadecimal digits, got "abc" \(3 characters\)/],
    [[url, '--sha256', 'a'.repeat(64), '--sha512', 'b'.repeat(128)], /one of --sha256, --sha512 or --checksum/],
    [[url, '--sha256', 'a'.repeat(64), '--checksum', `sha-256=${'a'.repeat(64)}`], /one of --sha256, --sha512 or --checksum/],
    [[url, '--checksum', 'sha256:abc'], /--checksum takes ALGO=HEX with ALGO one of sha-256, sha-512, sha-1, md5, got "sha256:abc"/],
    [[url, '--checksum', 'sha-256=abc'], /--checksum sha-256= must be 64 hexadecimal digits, got "abc"/],
    [[url, '-H', 'NoColon'], /-H\/--header must look like "Name: value"/],
    [[url, '-H', 'Range: bytes=0-1'], /cannot set Range/],
    [[url, '-H', 'If-Match: "x"'], /cannot set If-Match/],
    [[url, '-H', 'X-Evil: a\r\nHost: b'], /control character/],
    [[url, '--quiet', '--json'], /--quiet and --json/],
    [[url, '--retries', '-1'], /--retries|argument missing|unknown option/],
    [['inspect'], /inspect: missing the file/],
    [['verify', 'f'], /verify needs the expected digest/],
  ];
  it.each(usageErrors)('rejects %j with a one-line message and a hint', (argv, message) => {
    let caught: unknown;
    try {
      parseCommandLine(argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const err = caught as InvalidArgumentError;
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
    expect(exitCodeFor(err)).toBe(ExitCode.USAGE);
  });
  it('never echoes a malformed header value, which may be a credential', () => {
    expect(() => parseCommandLine([url, '-H', 'Authorization Bearer s3cret'])).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('s3cret') as unknown }),
    );
  });
});

describe('file naming', () => {
  it('keeps one plain name from hostile input', () => {
    expect(sanitizeFilename('../../etc/passwd')).toBe('passwd');
    expect(sanitizeFilename('..\\..\\windows\\system.ini')).toBe('system.ini');
    expect(sanitizeFilename('a\u001b[2Jb\u0007.iso')).toBe('a[2Jb.iso');
    expect(sanitizeFilename('\u0085x\u009b.bin')).toBe('x.bin');
    expect(sanitizeFilename('.bashrc')).toBe('bashrc');
    expect(sanitizeFilename('  spaced name.txt  ')).toBe('spaced name.txt');
    for (const unusable of ['', '.', '..', '...', '/', '../', 'a/..', '\u0000', ' . ']) {
      expect(sanitizeFilename(unusable), JSON.stringify(unusable)).toBeUndefined();
    }
  });
  it('cuts long names to fit, with the index suffix, keeping the extension', () => {
    const long = `${'é'.repeat(300)}.tar.gz`;
    const cut = sanitizeFilename(long) ?? '';
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
    expect(Buffer.byteLength(`${cut}.blockfetch.json`)).toBeLessThanOrEqual(255);
    expect(cut.endsWith('.gz')).toBe(true);
    expect(cut).not.toContain('\ufffd');
  });
  it('reads Content-Disposition, preferring filename*', () => {
    expect(filenameFromContentDisposition('attachment; filename="data.tar"')).toBe('data.tar');
    expect(filenameFromContentDisposition('attachment; filename=plain.bin')).toBe('plain.bin');
    expect(filenameFromContentDisposition('attachment; filename="a\\"b;c.txt"')).toBe('a"b;c.txt');
    expect(filenameFromContentDisposition("attachment; filename=\"x.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt")).toBe('été.txt');
    expect(filenameFromContentDisposition("attachment; filename*=iso-8859-1''caf%E9.txt")).toBe('café.txt');
    expect(filenameFromContentDisposition('attachment; filename="../../etc/passwd"')).toBe('passwd');
    expect(filenameFromContentDisposition('attachment; filename=".."')).toBeUndefined();
    expect(filenameFromContentDisposition('attachment')).toBeUndefined();
    expect(filenameFromContentDisposition(undefined)).toBeUndefined();
  });
  it('reads the URL path, decoded', () => {
    expect(filenameFromUrl('https://example.com/isos/debian%2012.iso?x=1#y')).toBe('debian 12.iso');
    expect(filenameFromUrl('https://example.com/dir/')).toBe('dir');
    expect(filenameFromUrl('https://example.com/')).toBeUndefined();
    expect(filenameFromUrl('https://example.com/a%2F..%2F..%2Fetc%2Fpasswd')).toBe('passwd');
    expect(filenameFromUrl('https://example.com/%E0%A4%A')).toBe('%E0%A4%A');
  });
  it('chooses server name, then URL, then the fallback', () => {
    expect(chooseFilename('http://h/u.bin', 'attachment; filename="s.bin"')).toBe('s.bin');
    expect(chooseFilename('http://h/u.bin', 'attachment; filename="/"')).toBe('u.bin');
    expect(chooseFilename('http://h/', undefined)).toBe(FALLBACK_FILENAME);
  });
});

describe('exit codes', () => {
  it('maps every error code to a documented exit code', () => {
    const documented = new Set<number>(Object.values(ExitCode));
    for (const [code, exit] of Object.entries(exitCodeByErrorCode)) {
      expect(documented.has(exit), code).toBe(true);
    }
  });
  it('maps errors by code and looks through RETRIES_EXHAUSTED', () => {
    expect(exitCodeFor(new LockHeldError('/x'))).toBe(ExitCode.LOCKED);
    expect(exitCodeFor(new DigestMismatchError('sha256', 'a', 'b'))).toBe(ExitCode.INTEGRITY);
    expect(exitCodeFor(new RemoteChangedError('http://h/f', [], 0))).toBe(ExitCode.REMOTE_CHANGED);
    expect(exitCodeFor(new RetriesExhaustedError('gave up', 3, { cause: new BlockfetchError('BLOCKFETCH_NETWORK', 'reset') }))).toBe(
      ExitCode.NETWORK,
    );
    expect(exitCodeFor(new RetriesExhaustedError('gave up', 3, { cause: new RemoteChangedError('http://h/f', [], 0) }))).toBe(
      ExitCode.REMOTE_CHANGED,
    );
    expect(exitCodeFor(new RetriesExhaustedError('gave up', 3, { cause: new Error('plain') }))).toBe(ExitCode.NETWORK);
    expect(exitCodeFor(new Error('bug'))).toBe(ExitCode.FAILURE);
    // Running again would not help a 404 or a refused redirect: 1, not 3 ("it resumes").
    expect(exitCodeFor(new HttpStatusError(404, 'http://h/f', 'Not Found'))).toBe(ExitCode.FAILURE);
    expect(exitCodeFor(new BlockfetchError('BLOCKFETCH_REDIRECT', 'https -> http refused'))).toBe(ExitCode.FAILURE);
    expect(exitCodeFor(new HttpStatusError(503, 'http://h/f', ''))).toBe(ExitCode.NETWORK);
  });
  it('are documented in docs/errors.md, every code with the exit status the code maps it to', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const rows = new Map<string, string>();
    for (const match of doc.matchAll(/^\| `(BLOCKFETCH_[A-Z_]+)` \| ([^|]+) \|/gm)) rows.set(match[1] as string, (match[2] as string).trim());
    expect([...rows.keys()].sort()).toEqual(Object.keys(exitCodeByErrorCode).sort());
    for (const [code, exit] of Object.entries(exitCodeByErrorCode)) {
      expect(rows.get(code), code).toMatch(new RegExp(`^${exit}\\b`));
    }
  });

  it('are all in the exit status table of docs/cli.md and of --help', async () => {
    const doc = readFileSync(new URL('../docs/cli.md', import.meta.url), 'utf8');
    const { helpText } = await import('../src/cli/help.js');
    for (const value of Object.values(ExitCode)) {
      expect(doc, `docs/cli.md: exit ${value}`).toMatch(new RegExp(`^\\| ${value} \\| \\S`, 'm'));
      expect(helpText('download'), `--help: exit ${value}`).toMatch(new RegExp(`\\b${value} [a-z]`));
    }
  });

  it('finds ENOSPC anywhere in the cause chain', () => {
    const enospc = Object.assign(new Error('write ENOSPC'), { code: 'ENOSPC' });
    expect(exitCodeFor(new BlockfetchError('BLOCKFETCH_DISK_WRITE', 'write failed', { cause: enospc }))).toBe(ExitCode.NO_SPACE);
    expect(exitCodeFor(enospc)).toBe(ExitCode.NO_SPACE);
  });
});
