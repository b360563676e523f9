/**
 * The CLI's defaults and reserved headers are the library's, declared once:
 * `--help` prints the values a run uses, and `-H` refuses exactly the
 * headers the HTTP reader refuses.
 */
import { describe, expect, it } from 'vitest';

import { defaultCliOptions, parseCommandLine, parseDurationMs, type DownloadCommand } from '../src/cli/args.js';
import { helpText } from '../src/cli/help.js';
import { formatDurationOption, formatSizeOption, parseByteSize } from '../src/cli/units.js';
import { DIGEST_HEX_LENGTH } from '../src/cache/types.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIMEOUT_MS } from '../src/defaults.js';
import { defaultDownloadFileOptions } from '../src/download-file.js';
import { HttpReader } from '../src/http/http-reader.js';
import { RESERVED_REQUEST_HEADERS } from '../src/http/reserved-headers.js';

const url = 'http://127.0.0.1:1/f';

describe('CLI defaults', () => {
  it('are the shared defaults, which downloadFile uses too', () => {
    expect(defaultCliOptions.concurrency).toBe(DEFAULT_CONCURRENCY);
    expect(defaultCliOptions.blockSize).toBe(DEFAULT_BLOCK_SIZE);
    expect(defaultCliOptions.requestSize).toBe(DEFAULT_MAX_REQUEST_BYTES);
    expect(defaultCliOptions.timeoutMs).toBe(DEFAULT_TIMEOUT_MS);
    expect(defaultDownloadFileOptions.concurrency).toBe(defaultCliOptions.concurrency);
    expect(defaultDownloadFileOptions.blockSize).toBe(defaultCliOptions.blockSize);
    expect(defaultDownloadFileOptions.maxRequestBytes).toBe(defaultCliOptions.requestSize);
    expect(defaultDownloadFileOptions.timeoutMs).toBe(defaultCliOptions.timeoutMs);
  });

  it('are what a command line without flags gets', () => {
    const command = parseCommandLine([url]) as DownloadCommand;
    expect(command.concurrency).toBe(defaultCliOptions.concurrency);
    expect(command.retries).toBe(defaultCliOptions.retries);
    expect(command.timeoutMs).toBe(defaultCliOptions.timeoutMs);
  });

  it('are what --help prints, in a form the flags parse back to the same value', () => {
    const help = helpText('download');
    const defaultAfter = (flag: string): string => {
      const match = new RegExp(`${flag}[\\s\\S]*?\\(default ([^)]+)\\)`).exec(help);
      expect(match, flag).not.toBeNull();
      return (match as RegExpExecArray)[1] as string;
    };
    expect(Number(defaultAfter('--concurrency'))).toBe(defaultCliOptions.concurrency);
    expect(parseByteSize(defaultAfter('--block-size'), '--block-size')).toBe(defaultCliOptions.blockSize);
    expect(parseByteSize(defaultAfter('--request-size'), '--request-size')).toBe(defaultCliOptions.requestSize);
    expect(Number(defaultAfter('--retries'))).toBe(defaultCliOptions.retries);
    expect(parseDurationMs(defaultAfter('--timeout'), '--timeout')).toBe(defaultCliOptions.timeoutMs);
    const verify = helpText('verify');
    expect(verify).toContain(`(${DIGEST_HEX_LENGTH.sha256} hex digits)`);
    expect(verify).toContain(`(${DIGEST_HEX_LENGTH.sha512} hex digits)`);
  });

  it('name the default in the hint of a bad --block-size', () => {
    let hint: string | undefined;
    try {
      parseCommandLine([url, '--block-size', '1KiB']);
    } catch (err) {
      hint = (err as { hint?: string }).hint;
    }
    expect(hint).toBe(`the default, ${formatSizeOption(DEFAULT_BLOCK_SIZE)}, suits most links`);
  });
});

describe('formatSizeOption and formatDurationOption', () => {
  it('write the exact value in the largest unit that divides it', () => {
    expect(formatSizeOption(2 * 2 ** 20)).toBe('2MiB');
    expect(formatSizeOption(4096)).toBe('4KiB');
    expect(formatSizeOption(2 ** 30)).toBe('1GiB');
    expect(formatSizeOption(1536 * 2 ** 10)).toBe('1536KiB');
    expect(formatSizeOption(1000)).toBe('1000B');
    expect(formatSizeOption(0)).toBe('0B');
    expect(formatDurationOption(30_000)).toBe('30s');
    expect(formatDurationOption(120_000)).toBe('2m');
    expect(formatDurationOption(3_600_000)).toBe('1h');
    expect(formatDurationOption(1500)).toBe('1500ms');
  });

  it('round-trip through the parsers', () => {
    for (const n of [0, 1, 1000, 4096, 4097, 3 * 2 ** 20, 5 * 2 ** 30, 7 * 2 ** 40]) {
      expect(parseByteSize(formatSizeOption(n), '--x')).toBe(n);
    }
    for (const ms of [1, 999, 1000, 61_000, 90 * 60_000, 24 * 3_600_000]) {
      expect(parseDurationMs(formatDurationOption(ms), '--timeout')).toBe(ms);
    }
  });
});

describe('reserved request headers', () => {
  it('are refused by -H and by HttpReader alike, in any case', () => {
    expect(RESERVED_REQUEST_HEADERS.size).toBe(11);
    for (const lower of RESERVED_REQUEST_HEADERS) {
      const name = lower.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
      expect(() => parseCommandLine([url, '-H', `${name}: x`]), name).toThrow(new RegExp(`cannot set ${name}:`));
      expect(() => new HttpReader({ url, headers: { [name]: 'x' } }), name).toThrow(new RegExp(`may not set "${name}"`));
    }
  });

  it('leave every other header to the caller', () => {
    expect((parseCommandLine([url, '-H', 'Authorization: Bearer t']) as DownloadCommand).headers).toEqual([['Authorization', 'Bearer t']]);
    expect(() => new HttpReader({ url, headers: { Authorization: 'Bearer t' } })).not.toThrow();
  });
});
