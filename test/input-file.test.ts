/**
 * `-i FILE` in aria2c's input-file format: every option kind, comments,
 * blank lines, mirrors, CRLF; every malformed line refused with FILE:LINE;
 * out=/dir= that would leave the download directory refused.
 */
import { describe, expect, it } from 'vitest';

import { parseInputFile } from '../src/cli/input-file.js';

const HEX256 = 'ab'.repeat(32);
const HEX512 = 'cd'.repeat(64);

describe('parseInputFile', () => {
  it('reads URLs, indented options, comments and blank lines', () => {
    const text = [
      '# shards of a model',
      'https://h.example/a.bin',
      '  out=model/a.bin',
      `\tchecksum=sha-256=${HEX256.toUpperCase()}`,
      '  header=Authorization: Bearer t0ken',
      '  header=X-Extra:  two words ',
      '',
      '   # an indented comment is a comment too',
      'https://h.example/b.bin\thttps://mirror.example/b.bin',
      '  dir=sub//dir/',
      `  checksum=sha-512=${HEX512}`,
      'https://h.example/c.bin',
    ].join('\n');
    expect(parseInputFile(text, 'list.txt')).toEqual([
      {
        line: 2,
        urls: ['https://h.example/a.bin'],
        out: 'model/a.bin',
        dir: undefined,
        digest: { algorithm: 'sha256', hex: HEX256 },
        headers: [
          ['Authorization', 'Bearer t0ken'],
          ['X-Extra', 'two words'],
        ],
      },
      {
        line: 9,
        urls: ['https://h.example/b.bin', 'https://mirror.example/b.bin'],
        out: undefined,
        dir: 'sub/dir',
        digest: { algorithm: 'sha512', hex: HEX512 },
        headers: [],
      },
      { line: 12, urls: ['https://h.example/c.bin'], out: undefined, dir: undefined, digest: undefined, headers: [] },
    ]);
  });

  it('takes CRLF line ends and a byte-order mark', () => {
    const entries = parseInputFile('\uFEFFhttps://h.example/a.bin\r\n  out=a\r\n', 'win.txt');
    expect(entries).toEqual([{ line: 1, urls: ['https://h.example/a.bin'], out: 'a', dir: undefined, digest: undefined, headers: [] }]);
  });

  it('an empty file or one of comments lists nothing', () => {
    expect(parseInputFile('', 'e.txt')).toEqual([]);
    expect(parseInputFile('# nothing\n\n   \n', 'e.txt')).toEqual([]);
  });

  const malformed: [name: string, text: string, message: RegExp][] = [
    ['an option before any URL', '# c\n  out=x\n', /^list\.txt:2: an option line before any URL$/],
    ['not a URL', 'https://h/a\n  out=a\nnot-a-url\n', /^list\.txt:3: not a URL/],
    ['two URLs separated by a space', 'https://h/a https://h/b\n', /^list\.txt:1: a URL with white space in it$/],
    ['an unsupported scheme', 'ftp://h/a\n', /^list\.txt:1: unsupported URL scheme "ftp:"/],
    ['an option without =', 'https://h/a\n  out\n', /^list\.txt:2: an option line must be NAME=VALUE/],
    ['an unknown option', 'https://h/a\n  split=16\n', /^list\.txt:2: unknown option "split"/],
    ['out= twice', 'https://h/a\n  out=a\n  out=b\n', /^list\.txt:3: out= given twice/],
    ['an empty out=', 'https://h/a\n  out=\n', /^list\.txt:2: out= is empty/],
    ['a checksum of an unknown type', 'https://h/a\n  checksum=sha256=abc\n', /^list\.txt:2: checksum= takes TYPE=DIGEST/],
    ['a checksum too short', 'https://h/a\n  checksum=sha-256=abc\n', /^list\.txt:2: checksum=sha-256= must be 64 hexadecimal digits, got 3 characters$/],
    ['a header without a name', 'https://h/a\n  header=no colon\n', /^list\.txt:2: header= must look like "Name: value"/],
    ['a header blockfetch sets itself', 'https://h/a\n  header=Range: bytes=0-1\n', /^list\.txt:2: header= cannot set Range/],
  ];
  it.each(malformed)('refuses %s, naming the file and the line', (_name, text, message) => {
    expect(() => parseInputFile(text, 'list.txt')).toThrow(message);
    try {
      parseInputFile(text, 'list.txt');
    } catch (err) {
      expect((err as { code?: string }).code).toBe('BLOCKFETCH_INVALID_ARGUMENT');
    }
  });

  it('names stdin as (stdin)', () => {
    expect(() => parseInputFile('  out=x\n', '-')).toThrow(/^\(stdin\):1: /);
  });

  const escaping: [string, RegExp][] = [
    ['  out=../../etc/x', /^l\.txt:2: out=\.\.\/\.\.\/etc\/x goes up with "\.\.": out= must stay inside the download directory$/],
    ['  out=a/../../x', /^l\.txt:2: out=a\/\.\.\/\.\.\/x goes up with "\.\."/],
    ['  out=/etc/passwd', /^l\.txt:2: out=\/etc\/passwd is an absolute path/],
    ['  dir=/tmp', /^l\.txt:2: dir=\/tmp is an absolute path/],
    ['  dir=..', /^l\.txt:2: dir=\.\. goes up with "\.\."/],
    ['  dir=a\\..\\..\\b', /goes up with "\.\."/],
    ['  out=a\u001b[2Jb', /^l\.txt:2: out= has a control character$/],
    ['  out=dir/', /^l\.txt:2: out=dir\/ names a directory, not a file/],
  ];
  it.each(escaping)('refuses %j: it would write outside the download directory', (line, message) => {
    expect(() => parseInputFile(`https://h/a\n${line}\n`, 'l.txt')).toThrow(message);
  });

  it('does not echo a header value or a whole bad URL line (they may hold secrets)', () => {
    const secret = 'sekrit-token-123456';
    for (const text of [`https://h/a\n  header=${secret}\n`, `x${secret}\n`]) {
      let message = '';
      try {
        parseInputFile(text, 'l.txt');
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(secret);
    }
  });
});
