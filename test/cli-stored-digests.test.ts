/**
 * Issue 12 item 8, through the real command against a loopback server:
 * every digest a run knows, from wherever it came (--sha256, --checksum,
 * --checksums, the server's Repr-Digest, Digest, x-amz-checksum-sha256 or
 * x-goog-hash), is stored in the index by run 1, and run 2, given nothing
 * and served no digest header, still checks it: a block damaged on disk
 * between the runs ends in exit 5 with the partial and index kept, never in
 * a wrong file.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ExitCode } from '../src/cli/exit-codes.js';
import { inspectDownload } from '../src/cli/inspect.js';
import { runCli, startCli, waitFor } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const MiB = 2 ** 20;
const DATA = payload(0, 4 * MiB - 1);
const digest = (algorithm: string, encoding: 'hex' | 'base64'): string => createHash(algorithm).update(DATA).digest(encoding);
/** One request per 1 MiB block, one at a time, so run 1 is stopped after exactly two blocks. */
const ONE_BLOCK_AT_A_TIME = ['--block-size', '1MiB', '--request-size', '1MiB', '-c', '1'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockfetch-cli-stored-digests-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Where run 1 learns the digest: command-line arguments, or headers on the file's responses. */
interface Source {
  readonly name: string;
  readonly args?: (cwd: string) => Promise<string[]>;
  readonly headers?: Record<string, string | readonly string[]>;
  /** The digest(s) the index must hold after run 1, `digest` first. */
  readonly stored: readonly { algorithm: string; hex: string }[];
  readonly stop: 'SIGKILL' | 'SIGTERM';
}

const sha256 = { algorithm: 'sha256', hex: digest('sha256', 'hex') };
const sha512 = { algorithm: 'sha512', hex: digest('sha512', 'hex') };
const md5 = { algorithm: 'md5', hex: digest('md5', 'hex') };

const SOURCES: readonly Source[] = [
  { name: '--sha256', args: async () => ['--sha256', sha256.hex], stored: [sha256], stop: 'SIGKILL' },
  { name: '--checksum sha-512=', args: async () => ['--checksum', `sha-512=${sha512.hex}`], stored: [sha512], stop: 'SIGKILL' },
  {
    name: '--checksums (two algorithms), interrupted by SIGTERM',
    args: async (cwd) => {
      await writeFile(join(cwd, 'SUMS'), `${sha256.hex}  out.bin\nSHA512 (out.bin) = ${sha512.hex}\n`);
      return ['--checksums', 'SUMS'];
    },
    stored: [sha512, sha256],
    stop: 'SIGTERM',
  },
  { name: 'Repr-Digest', headers: { 'repr-digest': `sha-256=:${digest('sha256', 'base64')}:` }, stored: [sha256], stop: 'SIGKILL' },
  { name: 'Digest (RFC 3230)', headers: { digest: `SHA-512=${digest('sha512', 'base64')}` }, stored: [sha512], stop: 'SIGKILL' },
  {
    name: 'x-amz-checksum-sha256 (FULL_OBJECT)',
    headers: { 'x-amz-checksum-sha256': digest('sha256', 'base64'), 'x-amz-checksum-type': 'FULL_OBJECT' },
    stored: [sha256],
    stop: 'SIGKILL',
  },
  {
    // As GCS sends it: two header lines; crc32c is not an algorithm blockfetch checks.
    name: 'x-goog-hash (crc32c and md5 on two lines)',
    headers: { 'x-goog-hash': ['crc32c=n03x6A==', `md5=${digest('md5', 'base64')}`] },
    stored: [md5],
    stop: 'SIGKILL',
  },
];

describe('a digest run 1 knew is checked by run 2, which is given none', () => {
  const servers: FaultServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  for (const source of SOURCES) {
    it(source.name, async () => {
      const server = await startFaultServer({ content: DATA });
      servers.push(server);
      const cwd = join(dir, source.name.replace(/\W+/g, '-'));
      await mkdir(cwd);
      const target = join(cwd, 'out.bin');
      // Run 1: the first two blocks, with the digest headers if any; the third request stalls.
      let fileRequests = 0;
      server.script((req) => {
        if (req.url !== '/file') return undefined;
        fileRequests++;
        if (fileRequests >= 3) return { kind: 'stall', after: 0 };
        return source.headers === undefined ? undefined : { kind: 'normal', headers: source.headers };
      });
      const given = (await source.args?.(cwd)) ?? [];
      const running = startCli([server.url, '-o', 'out.bin', ...ONE_BLOCK_AT_A_TIME, ...given], { cwd });
      await waitFor(async () => existsSync(`${target}.blockfetch.json`) && (await inspectDownload(target)).doneBytes >= 2 * MiB).catch((err: unknown) => {
        throw new Error(`${String(err)}; run 1 said: ${running.stderr()}`);
      });
      running.child.kill(source.stop);
      const first = await running.done;
      if (source.stop === 'SIGTERM') expect(first.code, first.stderr).toBe(ExitCode.TERMINATED);
      else expect(first.signal).toBe('SIGKILL');

      const index = JSON.parse(await readFile(`${target}.blockfetch.json`, 'utf8')) as { remote: { digest?: unknown; extraDigests?: unknown } };
      expect(index.remote.digest).toEqual(source.stored[0]);
      if (source.stored.length > 1) expect(index.remote.extraDigests).toEqual(source.stored.slice(1));
      else expect(index.remote.extraDigests).toBeUndefined();
      // `blockfetch inspect` shows every stored digest.
      const inspected = await runCli(['inspect', 'out.bin'], { cwd });
      expect(inspected.code, inspected.stderr).toBe(ExitCode.SUCCESS);
      const shown = [...inspected.stdout.toString('utf8').matchAll(/^digest:\s+(\w+):([0-9a-f]+)$/gm)].map((m) => ({ algorithm: m[1], hex: m[2] }));
      expect(shown).toEqual(source.stored);

      // A finished block goes bad on disk between the runs.
      const data = await open(`${target}.blockfetch`, 'r+');
      await data.write(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, 1000);
      await data.close();

      // Run 2: no digest given, none served; the stored one fails the file.
      server.script(undefined);
      const second = await runCli([server.url, '-o', 'out.bin', ...ONE_BLOCK_AT_A_TIME], { cwd });
      expect(second.code, second.stderr).toBe(ExitCode.INTEGRITY);
      expect(second.stderr).toMatch(/^blockfetch: (sha512|sha256|md5) mismatch: expected [0-9a-f]+, got [0-9a-f]+$/m);
      expect(second.stderr).toMatch(/^hint: the expected digest is the one the server advertised \(or an earlier run recorded in the index\)/m);
      expect(second.stderr).toMatch(/resuming: 2\.00 MiB of 4\.00 MiB already on disk/);
      expect(existsSync(target)).toBe(false);
      expect(existsSync(`${target}.blockfetch`)).toBe(true);
      expect(existsSync(`${target}.blockfetch.json`)).toBe(true);
    });
  }

  it('control: the same damage with no digest known anywhere ends in a wrong file, which is why the digests are stored', async () => {
    const server = await startFaultServer({ content: DATA });
    servers.push(server);
    const cwd = join(dir, 'no-digest');
    await mkdir(cwd);
    const target = join(cwd, 'out.bin');
    let fileRequests = 0;
    server.script((req) => (req.url === '/file' && ++fileRequests >= 3 ? { kind: 'stall', after: 0 } : undefined));
    const running = startCli([server.url, '-o', 'out.bin', ...ONE_BLOCK_AT_A_TIME], { cwd });
    await waitFor(async () => existsSync(`${target}.blockfetch.json`) && (await inspectDownload(target)).doneBytes >= 2 * MiB);
    running.child.kill('SIGKILL');
    await running.done;
    const data = await open(`${target}.blockfetch`, 'r+');
    await data.write(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, 1000);
    await data.close();
    server.script(undefined);
    const second = await runCli([server.url, '-o', 'out.bin', ...ONE_BLOCK_AT_A_TIME], { cwd });
    expect(second.code, second.stderr).toBe(ExitCode.SUCCESS);
    expect((await readFile(target)).equals(DATA)).toBe(false);
  });
});
