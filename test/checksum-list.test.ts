/**
 * The checksum-list parser and lookup (src/download/checksum-list.ts): each
 * format as the real tools write it (sha256sum, sha512sum, md5sum, sha1sum,
 * their --tag form, shasum, openssl dgst), escaped names, CRLF, a BOM, a
 * clear-signed list, malformed lines naming source and line, and the
 * matching rule; then `downloadFile` with several expected digests.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { digestsFor, parseChecksumList } from '../src/download/checksum-list.js';
import { downloadFile } from '../src/download-file.js';
import { DigestMismatchError, InvalidArgumentError } from '../src/errors.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const run = promisify(execFile);

const A = payload(0, 99_999);
const B = payload(100_000, 150_000);
const hex = (algorithm: string, data: Buffer): string => createHash(algorithm).update(data).digest('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-checksum-list-'));
  await writeFile(join(dir, 'a.iso'), A);
  await writeFile(join(dir, 'b file.iso'), B);
  await writeFile(join(dir, 'back\\slash.iso'), A);
  await writeFile(join(dir, 'new\nline.iso'), B);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs a checksum tool in `dir` and returns what it printed. */
async function tool(command: string, ...args: string[]): Promise<string> {
  return (await run(command, args, { cwd: dir })).stdout;
}

describe('parseChecksumList: what the real tools write', () => {
  it('sha256sum (text mode, two spaces) and sha256sum -b (binary marker *)', async () => {
    for (const flags of [[], ['-b']]) {
      const text = await tool('sha256sum', ...flags, 'a.iso', 'b file.iso');
      expect(text).toContain(flags.length === 0 ? '  a.iso' : ' *a.iso');
      const list = parseChecksumList(text, 'SHA256SUMS');
      expect(digestsFor(list, 'a.iso')).toEqual([{ algorithm: 'sha256', hex: hex('sha256', A) }]);
      expect(digestsFor(list, 'b file.iso')).toEqual([{ algorithm: 'sha256', hex: hex('sha256', B) }]);
    }
  });

  it('sha512sum, sha1sum and md5sum, told apart by the digest length', async () => {
    for (const [command, algorithm] of [['sha512sum', 'sha512'], ['sha1sum', 'sha1'], ['md5sum', 'md5']] as const) {
      const list = parseChecksumList(await tool(command, 'a.iso'), `${algorithm.toUpperCase()}SUMS`);
      expect(digestsFor(list, 'a.iso')).toEqual([{ algorithm, hex: hex(algorithm, A) }]);
    }
  });

  it('BSD tags: sha256sum --tag, sha512sum --tag, md5sum --tag, shasum --tag, openssl dgst (no space before "(")', async () => {
    const text = [
      await tool('sha256sum', '--tag', 'a.iso'),
      await tool('sha512sum', '--tag', 'a.iso'),
      await tool('md5sum', '--tag', 'b file.iso'),
      await tool('shasum', '-a', '1', '--tag', 'b file.iso'),
      await tool('openssl', 'dgst', '-sha256', 'b file.iso'),
    ].join('');
    expect(text).toMatch(/^SHA256 \(a\.iso\) = [0-9a-f]{64}$/m);
    expect(text).toMatch(/^SHA2-256\(b file\.iso\)= |^SHA256\(b file\.iso\)= /m);
    // openssl 3 writes SHA2-256: a name blockfetch does not read; the others are checked.
    const usable = text.split('\n').filter((line) => !line.startsWith('SHA2-256')).join('\n');
    const list = parseChecksumList(usable, 'CHECKSUM');
    expect(digestsFor(list, 'a.iso')).toEqual([
      { algorithm: 'sha512', hex: hex('sha512', A) },
      { algorithm: 'sha256', hex: hex('sha256', A) },
    ]);
    expect(digestsFor(list, 'b file.iso')).toEqual(
      [
        ...(usable.includes('SHA256(b file.iso)') ? [{ algorithm: 'sha256', hex: hex('sha256', B) }] : []),
        { algorithm: 'sha1', hex: hex('sha1', B) },
        { algorithm: 'md5', hex: hex('md5', B) },
      ],
    );
  });

  it("GNU's escaped names: a backslash and a newline in the name, plain and tagged", async () => {
    const plain = await tool('sha256sum', 'back\\slash.iso', 'new\nline.iso');
    const tagged = await tool('sha512sum', '--tag', 'back\\slash.iso', 'new\nline.iso');
    expect(plain.split('\n').filter((l) => l !== '').every((l) => l.startsWith('\\'))).toBe(true);
    expect(tagged).toMatch(/^\\SHA512 \(back\\\\slash\.iso\) = /m);
    const list = parseChecksumList(plain + tagged, 'SUMS');
    expect(digestsFor(list, 'back\\slash.iso')).toEqual([
      { algorithm: 'sha512', hex: hex('sha512', A) },
      { algorithm: 'sha256', hex: hex('sha256', A) },
    ]);
    expect(digestsFor(list, 'new\nline.iso')).toEqual([
      { algorithm: 'sha512', hex: hex('sha512', B) },
      { algorithm: 'sha256', hex: hex('sha256', B) },
    ]);
  });

  it('mixed algorithms and formats in one list, comments, blank lines, CRLF line ends and a BOM', async () => {
    const lines = [
      '# published 2026-12-07',
      '',
      `${hex('sha256', A)}  a.iso`,
      `SHA512 (a.iso) = ${hex('sha512', A).toUpperCase()}`,
      '   ',
      `${hex('md5', B)} *b file.iso`,
      `  # an indented comment`,
    ];
    const list = parseChecksumList(`\uFEFF${lines.join('\r\n')}\r\n`, 'SUMS');
    expect(list.entries.map((e) => [e.name, e.digest.algorithm, e.line])).toEqual([
      ['a.iso', 'sha256', 3],
      ['a.iso', 'sha512', 4],
      ['b file.iso', 'md5', 6],
    ]);
    // Upper-case hex is read as lower case; no CR is left on a name.
    expect(digestsFor(list, 'a.iso')).toEqual([
      { algorithm: 'sha512', hex: hex('sha512', A) },
      { algorithm: 'sha256', hex: hex('sha256', A) },
    ]);
    expect(digestsFor(list, 'b file.iso')).toEqual([{ algorithm: 'md5', hex: hex('md5', B) }]);
  });

  it('a PGP clear-signed list (as Fedora publishes CHECKSUM): the armour is skipped, the lines inside are read', () => {
    const text = [
      '-----BEGIN PGP SIGNED MESSAGE-----',
      'Hash: SHA256',
      '',
      '# Fedora-Server-dvd-x86_64-41-1.4.iso: 2612854784 bytes',
      `SHA256 (a.iso) = ${hex('sha256', A)}`,
      '-----BEGIN PGP SIGNATURE-----',
      '',
      'iQIzBAEBCAAdFiEE...=',
      '=abcd',
      '-----END PGP SIGNATURE-----',
      '',
    ].join('\n');
    expect(digestsFor(parseChecksumList(text, 'CHECKSUM'), 'a.iso')).toEqual([{ algorithm: 'sha256', hex: hex('sha256', A) }]);
  });

  it('md5 -r style (one space), an empty list, and a list of comments only', () => {
    const list = parseChecksumList(`${hex('md5', A)} a.iso\n`, 'MD5SUMS');
    expect(digestsFor(list, 'a.iso')).toEqual([{ algorithm: 'md5', hex: hex('md5', A) }]);
    expect(parseChecksumList('', 'EMPTY').entries).toEqual([]);
    expect(parseChecksumList('# nothing\n\n', 'EMPTY').entries).toEqual([]);
  });
});

describe('parseChecksumList: malformed lines name the source and the line', () => {
  const good = `${'a'.repeat(64)}  ok.iso`;
  const cases: [string, RegExp][] = [
    ['just some words', /^SHA256SUMS:3: not a checksum line: "just some words"$/],
    [`${'a'.repeat(63)}  short.iso`, /^SHA256SUMS:3: a digest of 63 hex digits is not one blockfetch can check \(128 for sha512, 64 for sha256, 40 for sha1, 32 for md5\)$/],
    [`${'a'.repeat(64)}`, /^SHA256SUMS:3: not a checksum line/],
    [`${'a'.repeat(64)}  `, /^SHA256SUMS:3: not a checksum line/],
    [`SHA256 () = ${'a'.repeat(64)}`, /^SHA256SUMS:3: the line names no file$/],
    [`SHA256 (x.iso) = ${'a'.repeat(128)}`, /^SHA256SUMS:3: a SHA256 digest is 64 hex digits, got "a{80}…"$/],
    [`BLAKE2b (x.iso) = ${'a'.repeat(128)}`, /^SHA256SUMS:3: the algorithm BLAKE2b is not one blockfetch can check \(SHA256, SHA512, SHA1, MD5\)$/],
    [`SHA256 (x.iso) = ${'g'.repeat(64)}`, /^SHA256SUMS:3: a SHA256 digest is 64 hex digits, got "g{64}"$/],
    [`\\${'a'.repeat(64)}  bad\\escape.iso`, /^SHA256SUMS:3: bad escape in the escaped name "bad\\\\escape\.iso"$/],
  ];
  for (const [line, message] of cases) {
    it(JSON.stringify(line), () => {
      const parse = (): unknown => parseChecksumList(`# header\n${good}\n${line}\n${good}\n`, 'SHA256SUMS');
      expect(parse).toThrow(InvalidArgumentError);
      expect(parse).toThrow(message);
    });
  }

  it('CRLF does not shift the line number', () => {
    expect(() => parseChecksumList(`# a\r\n\r\noops\r\n`, 'https://example.com/SUMS')).toThrow(/^https:\/\/example\.com\/SUMS:3: not a checksum line: "oops"$/);
  });
});

describe('digestsFor: which entries a file name matches', () => {
  const h = (c: string, n = 64): string => c.repeat(n);
  const list = parseChecksumList(
    [
      `${h('1')}  ./top.iso`,
      `${h('2')}  images/a.iso`,
      `${h('3')}  other/a.iso`,
      `${h('4')}  b.iso`,
      `${h('5')}  sub/b.iso`,
      `${h('6')}  b.iso`,
      `${h('7', 128)}  b.iso`,
      `${h('8')}  Case.iso`,
    ].join('\n'),
    'SUMS',
  );

  it('an exact name (./ ignored on either side) wins over final-name matches', () => {
    expect(digestsFor(list, 'top.iso')).toEqual([{ algorithm: 'sha256', hex: h('1') }]);
    expect(digestsFor(list, './top.iso')).toEqual([{ algorithm: 'sha256', hex: h('1') }]);
    expect(digestsFor(list, 'images/a.iso')).toEqual([{ algorithm: 'sha256', hex: h('2') }]);
    expect(digestsFor(list, 'sub/b.iso')).toEqual([{ algorithm: 'sha256', hex: h('5') }]);
  });

  it('otherwise the final name: a target in another directory still finds its line', () => {
    expect(digestsFor(list, 'downloads/top.iso')).toEqual([{ algorithm: 'sha256', hex: h('1') }]);
    expect(digestsFor(list, '/tmp/x/Case.iso')).toEqual([{ algorithm: 'sha256', hex: h('8') }]);
  });

  it('not listed: [] (case matters)', () => {
    expect(digestsFor(list, 'case.iso')).toEqual([]);
    expect(digestsFor(list, 'missing.iso')).toEqual([]);
  });

  it('two different digests of one algorithm for the file are an error naming both lines; repeats of one digest are not', () => {
    expect(() => digestsFor(list, 'a.iso')).toThrow(/^SUMS:2 and SUMS:3 give two different sha256 digests for "a\.iso"$/);
    expect(() => digestsFor(list, 'b.iso')).toThrow(/^SUMS:4 and SUMS:6 give two different sha256 digests for "b\.iso"$/);
    const repeated = parseChecksumList(`${h('9')}  c.iso\n${h('9')} *c.iso\n`, 'SUMS');
    expect(digestsFor(repeated, 'c.iso')).toEqual([{ algorithm: 'sha256', hex: h('9') }]);
  });
});

describe('downloadFile with several expected digests (expectedDigests)', () => {
  const DATA = payload(0, 3 * 2 ** 20 - 1);
  let server: FaultServer;
  beforeAll(async () => {
    server = await startFaultServer({ content: DATA });
  });
  afterAll(async () => {
    await server.close();
  });
  const sha256 = { algorithm: 'sha256', hex: hex('sha256', DATA) } as const;
  const sha512 = { algorithm: 'sha512', hex: hex('sha512', DATA) } as const;
  const base = { blockSize: 2 ** 20, concurrency: 2 };

  it('every digest is checked: right by sha256 but wrong by sha512 fails, the partial file and index are kept with both recorded', async () => {
    const d = join(dir, 'two-wrong');
    await mkdir(d);
    const target = join(d, 'f.bin');
    const wrong512 = { algorithm: 'sha512', hex: 'e'.repeat(128) } as const;
    const err = await downloadFile(server.url, target, { ...base, expectedDigests: [sha256, wrong512] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).message).toMatch(/^sha512 mismatch: expected e{128}, got [0-9a-f]{128}$/);
    // The digest that failed was the caller's: no "not one you gave" hint.
    expect((err as DigestMismatchError).hint ?? '').not.toMatch(/not one you gave/);
    const index = JSON.parse(await readFile(`${target}.blockfetch.json`, 'utf8')) as { remote: { digest: unknown; extraDigests: unknown } };
    expect(index.remote.digest).toEqual(sha256);
    expect(index.remote.extraDigests).toEqual([wrong512]);
    await expect(readFile(`${target}.blockfetch`)).resolves.toHaveLength(DATA.length);
    await expect(readFile(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('both right: the file is finished, the first digest reported verified; expectedDigest and expectedDigests combine', async () => {
    const d = join(dir, 'two-right');
    await mkdir(d);
    const result = await downloadFile(server.url, join(d, 'f.bin'), { ...base, expectedDigest: sha512, expectedDigests: [sha256, sha512] });
    expect(result.digest).toMatchObject({ algorithm: 'sha512', hex: sha512.hex, verified: true });
    expect(hex('sha256', await readFile(join(d, 'f.bin')))).toBe(sha256.hex);
  });

  it('two different digests of one algorithm are refused before anything is written', async () => {
    const d = join(dir, 'conflict');
    await mkdir(d);
    const other = { algorithm: 'sha256', hex: 'a'.repeat(64) } as const;
    const err = await downloadFile(server.url, join(d, 'f.bin'), { ...base, expectedDigest: sha256, expectedDigests: [other] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/^downloadFile was given two different sha256 digests/);
    await expect(readFile(join(d, 'f.bin.blockfetch.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
