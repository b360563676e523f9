/**
 * Unit tests of what the command prints: progress views, failure reports,
 * the resume command, and `inspect` of real index files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseCommandLine, type DownloadCommand } from '../src/cli/args.js';
import { formatInspectReport, inspectDownload } from '../src/cli/inspect.js';
import { JsonView, LineView, SpeedMeter, etaMs, type ProgressSnapshot, type ProgressView } from '../src/cli/progress.js';
import { describeFailure, formatFailure } from '../src/cli/report.js';
import { resumeCommand, shellQuote } from '../src/cli/resume-command.js';
import { verifyFile } from '../src/cli/verify.js';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { DigestMismatchError, IndexError, RetriesExhaustedError, BlockfetchError } from '../src/errors.js';
import { payload } from './helpers/payload.js';

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  return { stream, text: () => text };
}

const snapshot = (over: Partial<ProgressSnapshot> = {}): ProgressSnapshot => ({
  bytesDone: 40 * 2 ** 20,
  totalBytes: 100 * 2 ** 20,
  bytesThisRun: 10 * 2 ** 20,
  elapsedMs: 6000,
  bytesPerSecond: 10 * 2 ** 20,
  activeConnections: 8,
  retries: 0,
  ...over,
});

describe('progress', () => {
  it('measures speed over a sliding window, not since the start', () => {
    const meter = new SpeedMeter(5000);
    expect(meter.sample(0, 0)).toBe(0);
    expect(meter.sample(1000, 100)).toBe(100);
    for (let t = 2000; t <= 10_000; t += 1000) meter.sample(t, 100); // a stall
    expect(meter.sample(11_000, 100)).toBe(0);
    expect(meter.sample(12_000, 1100)).toBeGreaterThan(150); // recovers at once, not averaged with the stall's start
  });

  it('computes the ETA from what is left', () => {
    expect(etaMs(snapshot())).toBe(6000);
    expect(etaMs(snapshot({ bytesPerSecond: 0 }))).toBe(Infinity);
    expect(etaMs(snapshot({ bytesDone: 100 * 2 ** 20 }))).toBe(0);
  });

  it('LineView prints at most one line per interval, and the final line', () => {
    const out = collect();
    const view = new LineView(out.stream, 5000);
    view.start({ url: 'http://h/f', target: '/t/f', totalBytes: 100 * 2 ** 20, blockSize: 2 ** 24, concurrency: 8, resumedBytes: 0 });
    view.update(snapshot({ elapsedMs: 1000 }));
    view.update(snapshot({ elapsedMs: 5000 }));
    view.update(snapshot({ elapsedMs: 7000 }));
    view.update(snapshot({ elapsedMs: 10_000 }));
    view.done({ target: '/t/f', totalBytes: 100 * 2 ** 20, bytesThisRun: 60 * 2 ** 20, elapsedMs: 6000, digest: { algorithm: 'sha256', hex: 'ab' } });
    const lines = out.text().trimEnd().split('\n');
    expect(lines).toEqual([
      'http://h/f -> /t/f: 100 MiB in 16.0 MiB blocks, 8 connections',
      '40.0% 40.0 MiB of 100 MiB, 10.0 MiB/s, ETA 6s, 8 connections',
      '40.0% 40.0 MiB of 100 MiB, 10.0 MiB/s, ETA 6s, 8 connections',
      'done: /t/f (100 MiB; fetched 60.0 MiB in 6.0s, 10.0 MiB/s, sha256 verified)',
    ]);
  });

  it('JsonView prints one parseable object per line with stable fields, notes included', () => {
    const out = collect();
    const view: ProgressView = new JsonView(out.stream, 1000);
    view.start({ url: 'http://h/f', target: '/t/f', totalBytes: 100, blockSize: 10, concurrency: 2, resumedBytes: 30 });
    view.update(snapshot({ elapsedMs: 1500, bytesPerSecond: 0 }));
    view.update(snapshot({ elapsedMs: 1600 })); // within the interval: dropped
    view.retry({ from: 0, to: 9, attempt: 1, delayMs: 250, reason: 'HTTP 503', code: 'BLOCKFETCH_HTTP_STATUS' }, snapshot({ retries: 1 }));
    view.note('resuming: 30 B of 100 B already on disk');
    view.done({ target: '/t/f', totalBytes: 100, bytesThisRun: 70, elapsedMs: 2000, digest: undefined });
    const objects = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects.map((o) => o['type'])).toEqual(['start', 'progress', 'retry', 'note', 'done']);
    const { time, ...note } = objects[3] ?? {};
    expect(note).toEqual({ schemaVersion: 1, type: 'note', message: 'resuming: 30 B of 100 B already on disk' });
    expect(objects.every((o) => o['schemaVersion'] === 1 && typeof o['time'] === 'string')).toBe(true);
    expect(Date.parse(String(time))).not.toBeNaN();
    expect(objects[1]).toMatchObject({ bytesDone: 40 * 2 ** 20, activeConnections: 8, etaMs: null });
    expect(objects[2]).toMatchObject({ from: 0, to: 9, attempt: 1, delayMs: 250, code: 'BLOCKFETCH_HTTP_STATUS', retries: 1 });
    expect(objects[4]).toMatchObject({ outcome: 'complete', bytesThisRun: 70, digest: null });
  });
});

describe('failure reports', () => {
  it('are one message line and one hint line; --debug adds code, stack and causes', () => {
    const cause = new BlockfetchError('BLOCKFETCH_NETWORK', 'http://u:secret@h/f: socket hang up');
    const err = new RetriesExhaustedError('block 3 failed 6 times', 6, { cause });
    const plain = formatFailure(err, false);
    expect(plain).toBe('blockfetch: block 3 failed 6 times\nhint: run the same download again to resume\n');
    const debug = formatFailure(err, true);
    expect(debug).toContain('debug: code BLOCKFETCH_RETRIES_EXHAUSTED, exit status 3');
    expect(debug).toMatch(/debug: caused by BlockfetchError: http:\/\/h\/f: socket hang up/);
    expect(debug).not.toContain('secret');
    expect(debug).toMatch(/\n\s+at /); // the stack, only with --debug
  });

  it('describe unexpected errors as bugs, and a full disk as a full disk', () => {
    expect(describeFailure(new TypeError('x is undefined'))).toMatchObject({ exitCode: 1, code: undefined, hint: expect.stringMatching(/--debug/) as unknown });
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(describeFailure(enospc)).toMatchObject({ exitCode: 6, hint: expect.stringMatching(/free some space/) as unknown });
    expect(describeFailure(new DigestMismatchError('sha256', 'aa', 'bb'))).toMatchObject({ exitCode: 5, code: 'BLOCKFETCH_DIGEST_MISMATCH' });
  });
});

describe('the resume command', () => {
  const parse = (argv: string[]): DownloadCommand => parseCommandLine(argv) as DownloadCommand;

  it('repeats the arguments, adds -o when the name came from the server, quotes for the shell', () => {
    const argv = ['http://h/a b.iso', '-c', '4', '--rate', '50MB/s'];
    expect(resumeCommand(argv, parse(argv), "it's.iso")).toBe(`blockfetch http://h/a%20b.iso -c 4 --rate 50MB/s -o 'it'\\''s.iso'`);
    const withOutput = ['http://h/f', '-o', 'x.iso'];
    expect(resumeCommand(withOutput, parse(withOutput), 'x.iso')).toBe('blockfetch http://h/f -o x.iso');
  });

  it('never repeats a secret', () => {
    const argv = ['https://user:pw@h/f?X-Amz-Signature=abc', '-H', 'Authorization: Bearer tok', '--header=X-Trace: 1', '-o', 'f'];
    const text = resumeCommand(argv, parse(argv), 'f');
    expect(text).not.toMatch(/pw|abc|tok/);
    expect(text).toContain("-H 'Authorization: REDACTED'");
    // Issue 11 item 8: every header value is redacted, not only secret-looking names.
    expect(text).toContain("-H 'X-Trace: REDACTED'");
  });

  it('quotes only what needs it', () => {
    expect(shellQuote('plain-name_1.iso')).toBe('plain-name_1.iso');
    expect(shellQuote('a;rm -rf')).toBe("'a;rm -rf'");
    expect(shellQuote('$HOME')).toBe("'$HOME'");
  });
});

describe('inspect and verify on real files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-cli-output-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports done blocks, outstanding runs and the remote from an index, by any of its names', async () => {
    const target = join(dir, 'f.bin');
    const size = 10 * 4096 + 100;
    await createNewFilesForCache(`${target}.blockfetch`, `${target}.blockfetch.json`, size, 4096, {
      identity: { url: 'http://h/f.bin', size, etag: '"v1"' },
    });
    const cache = await LocalDownloadCache.open(`${target}.blockfetch`, `${target}.blockfetch.json`);
    for (const block of [0, 1, 2, 5, 10]) {
      const from = block * 4096;
      await cache.writeAt(payload(from, Math.min(from + 4096, size) - 1), from);
    }
    await cache.close();

    for (const name of [target, `${target}.blockfetch`, `${target}.blockfetch.json`]) {
      const report = await inspectDownload(name);
      expect(report).toMatchObject({
        state: 'partial',
        size,
        blockSize: 4096,
        blocks: 11,
        doneBlocks: 5,
        doneBytes: 4 * 4096 + 100,
        percentDone: 40.1,
        outstanding: [
          { from: 3 * 4096, to: 5 * 4096 - 1 },
          { from: 6 * 4096, to: 10 * 4096 - 1 },
        ],
        remote: { url: 'http://h/f.bin', size, etag: '"v1"' },
        partialFileSize: size,
      });
    }
    const text = formatInspectReport(await inspectDownload(target), new Date());
    expect(text).toMatch(/^done: +40\.1% \(5 of 11 blocks, 16\.1 KiB\)$/m);
    expect(text).toMatch(/^outstanding: +24\.0 KiB in 2 runs$/m);
    expect(text).toMatch(/^ +bytes 12288-20479 \(8\.00 KiB\)$/m);
    expect(text).toMatch(/^etag: +"v1"$/m);
  });

  it('says a finished file is complete, and a missing one is missing', async () => {
    const done = join(dir, 'done.bin');
    await writeFile(done, 'abc');
    expect(await inspectDownload(done)).toMatchObject({ state: 'complete', size: 3, percentDone: 100 });
    await expect(inspectDownload(join(dir, 'nothing.bin'))).rejects.toMatchObject({ code: 'BLOCKFETCH_CACHE_MISSING' });
    await writeFile(join(dir, 'orphan.bin.blockfetch'), 'data without an index');
    await expect(inspectDownload(join(dir, 'orphan.bin'))).rejects.toMatchObject({
      code: 'BLOCKFETCH_CACHE_MISSING',
      message: expect.stringMatching(/orphan\.bin\.blockfetch exists but its index .* does not$/) as unknown,
    });
  });

  it('refuses a damaged index with a typed error', async () => {
    const target = join(dir, 'bad.bin');
    await writeFile(`${target}.blockfetch.json`, '{"format": "blockfetch-index", "version": 1, "checksum": "x"');
    await expect(inspectDownload(target)).rejects.toBeInstanceOf(IndexError);
  });

  it('verify checks every digest in one read', async () => {
    const file = join(dir, 'v.bin');
    await writeFile(file, 'hello');
    const sha256 = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
    const sha512 =
      '9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043';
    expect(await verifyFile(file, [{ algorithm: 'sha256', hex: sha256 }, { algorithm: 'sha512', hex: sha512 }])).toHaveLength(2);
    await expect(verifyFile(file, [{ algorithm: 'sha256', hex: '0'.repeat(64) }])).rejects.toBeInstanceOf(DigestMismatchError);
  });
});
