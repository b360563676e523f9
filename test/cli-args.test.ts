/**
 * The command line as people type it: the spellings of curl, wget and
 * aria2c, suggestions for misspelt options, messages without parser
 * internals, and `--help` printed from the very table the parser reads.
 */
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { DOWNLOAD_OPTIONS, INSPECT_OPTIONS, VERIFY_OPTIONS, parseCommandLine, type DownloadCommand, type OptionSpec } from '../src/cli/args.js';
import { editDistance } from '../src/cli/edit-distance.js';
import { helpText } from '../src/cli/help.js';
import { InvalidArgumentError } from '../src/errors.js';

const url = 'http://127.0.0.1:8080/files/big.iso';
const download = (argv: string[]): DownloadCommand => {
  const command = parseCommandLine(argv);
  if (command.kind !== 'download') throw new Error(`expected download, got ${command.kind}`);
  return command;
};
const failure = (argv: string[]): InvalidArgumentError => {
  try {
    parseCommandLine(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error(`${JSON.stringify(argv)} was accepted`);
};

describe('spellings from curl, wget and aria2c', () => {
  it('accepts -C - and --continue: resuming is automatic', () => {
    expect(download([url, '-C', '-'])).toMatchObject({ url, output: undefined });
    expect(download([url, '--continue'])).toMatchObject({ url });
    expect(download(['-C', '-', url, '-o', 'f'])).toMatchObject({ url, output: 'f' });
    expect(failure([url, '-C', '100']).message).toMatch(/-C\/--continue-at takes '-'/);
  });
  it("reads --limit-rate in curl's units (powers of 1024) and keeps --rate", () => {
    expect(download([url, '--limit-rate', '1M']).rateBytesPerSecond).toBe(2 ** 20);
    expect(download([url, '--limit-rate', '500k']).rateBytesPerSecond).toBe(500 * 1024);
    expect(download([url, '--limit-rate', '2G']).rateBytesPerSecond).toBe(2 * 2 ** 30);
    expect(download([url, '--limit-rate', '4096']).rateBytesPerSecond).toBe(4096);
    expect(download([url, '--limit-rate', '8MiB/s']).rateBytesPerSecond).toBe(8 * 2 ** 20);
    expect(download([url, '--rate', '1M']).rateBytesPerSecond).toBe(1e6);
    expect(failure([url, '--limit-rate', '0']).message).toMatch(/--limit-rate must be at least 1 byte per second/);
    expect(failure([url, '--rate', '1M', '--limit-rate', '1M']).message).toMatch(/one of --rate or --limit-rate/);
  });
  it('sets the User-Agent with -A, and -H User-Agent wins as in curl', () => {
    expect(download([url, '-A', 'fetcher/1.0']).headers).toEqual([['User-Agent', 'fetcher/1.0']]);
    expect(download([url, '--user-agent=x y']).headers).toEqual([['User-Agent', 'x y']]);
    expect(download([url, '-A', 'a', '-H', 'User-Agent: b']).headers).toEqual([['User-Agent', 'b']]);
    expect(failure([url, '-A', 'a\r\nHost: b']).message).toMatch(/-A\/--user-agent .*control character/);
  });
  it('reads -k/--insecure and --cacert FILE, never both', () => {
    expect(download([url]).tls).toEqual({ insecure: false, caFile: undefined });
    expect(download([url, '-k']).tls).toEqual({ insecure: true, caFile: undefined });
    expect(download([url, '--cacert', 'ca.pem']).tls).toEqual({ insecure: false, caFile: 'ca.pem' });
    expect(failure([url, '-k', '--cacert', 'ca.pem']).message).toMatch(/--insecure and --cacert/);
  });
  it('saves into -d DIR, under the server name or -o FILE', () => {
    expect(download([url, '-d', 'out']).output).toBe('out/');
    expect(download([url, '--dir', 'out/', '-o', 'a.iso']).output).toBe('out/a.iso');
    expect(failure([url, '-d', 'out', '--stdout']).message).toMatch(/two destinations/);
    expect(failure([url, '-d', 'out', '-o', '/abs/a.iso']).message).toMatch(/absolute path/);
  });
  it('reads -v/--verbose, and refuses it with --quiet', () => {
    expect(download([url, '-v']).verbose).toBe(true);
    expect(download([url]).verbose).toBe(false);
    expect(failure([url, '-v', '-q']).message).toMatch(/--quiet and --verbose/);
  });
  it('bundles short flags and attaches short values, as getopt does', () => {
    expect(download([url, '-qfk'])).toMatchObject({ outputMode: 'quiet', force: true, tls: { insecure: true } });
    expect(download([url, '-c4', '-qo', 'x'])).toMatchObject({ concurrency: 4, outputMode: 'quiet', output: 'x' });
    expect(download(['--', url])).toMatchObject({ url });
  });
});

describe('messages a person can act on', () => {
  it('says -c takes a number when it is given the URL (it never swallows it)', () => {
    const err = failure(['-c', url]);
    expect(err.message).toBe(`-c/--concurrency takes a number (N), got the URL "${url}"`);
    expect(err.hint).toMatch(/blockfetch -c N URL/);
    expect(failure([url, '-o', 'https://example.com/x']).message).toMatch(/^-o\/--output takes a file name \(FILE\), got the URL/);
  });
  it('range-checks negative values instead of calling them ambiguous', () => {
    expect(failure([url, '--retries', '-1']).message).toBe('--retries must be a whole number from 0 to 1000, got "-1"');
    expect(failure([url, '-c', '-4']).message).toBe('-c/--concurrency must be a whole number from 1 to 256, got "-4"');
    expect(failure([url, '--timeout', '-5s']).message).toMatch(/^--timeout must be a duration/);
  });
  it('says which value is missing, without parser internals', () => {
    const missing = failure([url, '-o']);
    expect(missing.message).toBe('-o/--output needs a value (FILE), got nothing after it');
    const swallowed = failure([url, '-o', '--json']);
    expect(swallowed.message).toBe('-o/--output needs a value (FILE), got the option --json');
    expect(swallowed.hint).toMatch(/--output=VALUE/);
    expect(failure([url, '--force=yes']).message).toBe('--force takes no value, got "--force=yes"');
    for (const err of [missing, swallowed, failure([url, '--bogus']), failure([url, '-o'])]) {
      expect(err.message).not.toMatch(/Option '|<value>|ambiguous|ERR_PARSE_ARGS|To specify/);
    }
  });
  it('suggests the nearest option for a misspelling', () => {
    const cases: [string[], string | undefined][] = [
      [[url, '--concurency', '4'], '--concurrency'],
      [[url, '--concurrancy', '4'], '--concurrency'],
      [[url, '--retires', '2'], '--retries'],
      [[url, '--ouput', 'x'], '--output'],
      [[url, '--conc', '2'], '--concurrency'],
      [[url, '--limitrate', '1M'], '--limit-rate'],
      [[url, '-stdout'], '--stdout'],
      [[url, '-O', 'x'], '-o/--output'],
      [[url, '--bogus'], undefined],
      [['inspect', '--jsno', 'f'], '--json'],
    ];
    for (const [argv, suggestion] of cases) {
      const err = failure(argv);
      expect(err.message, argv.join(' ')).toMatch(/unknown option '/);
      if (suggestion === undefined) expect(err.message).not.toMatch(/did you mean/);
      else expect(err.message, argv.join(' ')).toContain(`; did you mean ${suggestion}?`);
    }
  });
  it('counts a swap of neighbouring letters as one edit', () => {
    expect(editDistance('retires', 'retries')).toBe(1);
    expect(editDistance('concurency', 'concurrency')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('--help, printed from the table the parser reads', () => {
  const tables: [string, readonly OptionSpec[], string][] = [
    ['download', DOWNLOAD_OPTIONS, helpText('download')],
    ['inspect', INSPECT_OPTIONS, helpText('inspect')],
    ['verify', VERIFY_OPTIONS, helpText('verify')],
  ];
  it.each(tables)('lists every %s option the parser accepts, and nothing else', (_name, table, help) => {
    const options = help.slice(help.indexOf('Options:\n'));
    const listed = [...options.matchAll(/^ {2}(?:-(\w), )? *--([\w-]+)/gm)].map((m) => ({ short: m[1], long: m[2] }));
    expect(listed.map((o) => o.long)).toEqual(table.map((o) => o.long));
    expect(listed.map((o) => o.short)).toEqual(table.map((o) => o.short));
    for (const spec of table) {
      if (spec.default !== undefined) expect(options).toMatch(new RegExp(`--${spec.long}[\\s\\S]*?\\(default ${spec.default.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
    }
  });
  it('every option in the help is accepted by the parser, by both its names', () => {
    for (const spec of DOWNLOAD_OPTIONS as readonly OptionSpec[]) {
      if (spec.long === 'help' || spec.long === 'version') continue;
      const value = spec.value === undefined ? [] : [sampleValue(spec.long)];
      const names = [`--${spec.long}`, ...(spec.short === undefined ? [] : [`-${spec.short}`])];
      // Options of hf:// sources only are tried with one.
      const source = HF_ONLY_OPTIONS.has(spec.long) ? 'hf://org/model' : url;
      for (const name of names) expect(() => parseCommandLine([source, name, ...value]), name).not.toThrow();
    }
    expect(helpText('download').split('\n').every((line) => line.length <= 80)).toBe(true);
  });
});

describe('docs/cli.md', () => {
  it('lists every download option in its option table, with curl, wget and aria2c columns', () => {
    const doc = readFileSync(new URL('../docs/cli.md', import.meta.url), 'utf8');
    expect(doc).toMatch(/^\| option \| default \| meaning \| curl \| wget \| aria2c \|$/m);
    const rows = doc.split('\n').filter((line) => line.startsWith('| `'));
    for (const spec of DOWNLOAD_OPTIONS as readonly OptionSpec[]) {
      const row = rows.find((line) => line.split(' | ')[0]?.includes(`--${spec.long}`));
      expect(row, `--${spec.long}`).toBeDefined();
      if (spec.short !== undefined) expect(row, `-${spec.short}`).toContain(`-${spec.short}`);
      expect((row ?? '').replace(/\\\|/g, '').split('|').length - 2, `--${spec.long}: six columns`).toBe(6);
    }
  });
});

const HF_ONLY_OPTIONS: ReadonlySet<string> = new Set(['include', 'exclude', 'hf-cache']);

function sampleValue(long: string): string {
  const samples: Record<string, string> = {
    output: 'x.iso', dir: 'out', concurrency: '4', 'block-size': '1MiB', 'request-size': '4MiB', rate: '1MB/s',
    'limit-rate': '1M', header: 'X-A: b', 'user-agent': 'ua', cacert: 'ca.pem', sha256: 'a'.repeat(64),
    sha512: 'b'.repeat(128), checksum: `sha-256=${'c'.repeat(64)}`, checksums: 'SHA256SUMS', 'continue-at': '-', retries: '2', timeout: '5s', 'speed-limit': '10KiB/s', 'speed-time': '30s',
    'input-file': 'list.txt', 'max-concurrent-downloads': '3',
    mirror: 'https://mirror.example/x.iso',
    include: '*.json', exclude: '*.md',
  };
  const value = samples[long];
  if (value === undefined) throw new Error(`no sample value for --${long}: add one`);
  return value;
}
