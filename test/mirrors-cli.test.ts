/**
 * `--mirror URL` and `--http2` on the command line: parsed into the
 * command, and every misuse a one-line usage error that says what to do.
 */
import { describe, expect, it } from 'vitest';
import { parseCommandLine, type DownloadCommand } from '../src/cli/args.js';
import { InvalidArgumentError } from '../src/errors.js';

const URL_A = 'https://a.example/f.iso';
const URL_B = 'https://b.example/pub/f.iso';
const URL_C = 'http://c.example/f.iso';

function download(argv: string[]): DownloadCommand {
  const command = parseCommandLine(argv);
  if (command.kind !== 'download') throw new Error(`not a download: ${command.kind}`);
  return command;
}

function usageError(argv: string[]): InvalidArgumentError {
  try {
    parseCommandLine(argv);
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

describe('--mirror', () => {
  it('is repeatable and keeps the order given; none by default', () => {
    expect(download([URL_A]).mirrors).toEqual([]);
    expect(download([URL_A, '--mirror', URL_B, `--mirror=${URL_C}`]).mirrors).toEqual([URL_B, URL_C]);
  });

  it('refuses what is not an http(s) URL, a URL given twice, and --stdout', () => {
    expect(usageError([URL_A, '--mirror', 'b.example/f.iso']).message).toMatch(/not a URL/);
    expect(usageError([URL_A, '--mirror', 'ftp://b.example/f.iso']).message).toMatch(/scheme/);
    expect(usageError([URL_A, '--mirror', URL_A]).message).toMatch(/given twice/);
    expect(usageError([URL_A, '--mirror', URL_B, '--mirror', URL_B]).hint).toMatch(/each mirror once/);
    expect(usageError([URL_A, '--mirror', URL_B, '--stdout']).message).toMatch(/--stdout/);
  });

  it('never shows the credentials of a mirror URL in a message', () => {
    const err = usageError([URL_A, '--mirror', 'https://user:s3cret@b.example/f.iso', '--mirror', 'https://user:s3cret@b.example/f.iso']);
    expect(err.message).not.toContain('s3cret');
  });
});

describe('--http2', () => {
  it('is a flag, off by default', () => {
    expect(download([URL_A]).http2).toBe(false);
    expect(download([URL_A, '--http2']).http2).toBe(true);
    expect(usageError([URL_A, '--http2=yes']).message).toMatch(/takes no value/);
  });
});
