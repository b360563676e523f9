/**
 * `--http2` (and the `http2` options) really negotiate HTTP/2: against
 * node:http2's secure server on loopback, which also speaks HTTP/1.1 to a
 * client that does not offer h2, so the same server shows both sides.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from '../src/download-file.js';
import { createDefaultDispatcher } from '../src/http/dispatcher.js';
import { runCli } from './cli-helpers.js';
import { selfSignedCertificate } from './helpers/fault-server.js';
import { startH2Server, type H2Server } from './helpers/h2-server.js';
import { payload } from './helpers/payload.js';

const SIZE = 3 * 1024 * 1024 + 17;
const CONTENT = payload(0, SIZE - 1);

let dir: string;
let server: H2Server;
let caFile: string;
let cert: string;
let keyPem: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-http2-'));
  const tls = await selfSignedCertificate();
  cert = tls.cert;
  keyPem = tls.key;
  caFile = join(dir, 'ca.pem');
  await writeFile(caFile, tls.cert);
  server = await startH2Server({ content: CONTENT, tls });
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('HTTP/2', () => {
  it('blockfetch --http2 downloads over h2: every request HTTP/2, as streams of one connection', async () => {
    const before = { requests: server.versions.length, connections: server.connections() };
    const out = join(dir, 'h2.bin');
    const result = await runCli([server.url, '--http2', '--cacert', caFile, '-o', out, '-c', '4', '--block-size', '256KiB', '--request-size', '256KiB', '--quiet'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    const versions = server.versions.slice(before.requests);
    expect(versions.length).toBeGreaterThan(4);
    expect(new Set(versions)).toEqual(new Set(['2.0']));
    // Four requests at once are streams of one connection, not four connections.
    expect(server.connections() - before.connections).toBe(1);
  });

  it('a set with --http2 speaks h2 too (the set once ignored the flag)', async () => {
    const before = server.versions.length;
    const out = join(dir, 'set');
    await mkdir(out);
    // One server path, so the set is an input file naming it twice, under two names.
    const list = join(dir, 'list.txt');
    await writeFile(list, `${server.url}\n  out=one.bin\n${server.url}\n  out=two.bin\n`);
    const result = await runCli(['-i', list, '-d', out, '--http2', '--cacert', caFile, '-c', '4', '--block-size', '256KiB', '--quiet'], { cwd: dir });
    expect(result.stderr, result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const name of ['one.bin', 'two.bin']) expect((await readFile(join(out, name))).equals(CONTENT)).toBe(true);
    const versions = server.versions.slice(before);
    expect(versions.length).toBeGreaterThan(2);
    expect(new Set(versions)).toEqual(new Set(['2.0']));
  });

  it('without --http2 the same server is spoken to in HTTP/1.1', async () => {
    const before = server.versions.length;
    const out = join(dir, 'h1.bin');
    const result = await runCli([server.url, '--cacert', caFile, '-o', out, '-c', '4', '--block-size', '256KiB', '--quiet'], { cwd: dir });
    expect(result.code).toBe(0);
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(new Set(server.versions.slice(before))).toEqual(new Set(['1.1']));
  });

  it('--http2 against an https server without h2 falls back to HTTP/1.1, and the file is exact', async () => {
    const h1 = await startH2Server({ content: CONTENT, tls: { key: keyPem, cert }, http1Only: true });
    try {
      const out = join(dir, 'h1-only.bin');
      const result = await runCli([h1.url, '--http2', '--cacert', caFile, '-o', out, '-c', '4', '--block-size', '256KiB', '--request-size', '256KiB', '--quiet'], { cwd: dir });
      expect(result.code).toBe(0);
      expect((await readFile(out)).equals(CONTENT)).toBe(true);
      expect(h1.versions.length).toBeGreaterThan(4);
      expect(new Set(h1.versions)).toEqual(new Set(['1.1']));
    } finally {
      await h1.close();
    }
  });

  it('the library: a dispatcher made with http2 negotiates h2', async () => {
    const before = server.versions.length;
    const dispatcher = createDefaultDispatcher({}, { ca: cert }, { http2: true });
    const out = join(dir, 'lib.bin');
    try {
      await downloadFile(server.url, out, { dispatcher, concurrency: 4, blockSize: 256 * 1024 });
    } finally {
      await dispatcher.close();
    }
    expect((await readFile(out)).equals(CONTENT)).toBe(true);
    expect(new Set(server.versions.slice(before))).toEqual(new Set(['2.0']));
  });

  it('downloadFile refuses http2 together with a Reader source, like the other HTTP options', async () => {
    const { FileReader } = await import('../src/download/file-reader.js');
    const source = join(dir, 'src.bin');
    await writeFile(source, CONTENT.subarray(0, 1000));
    await expect(downloadFile(new FileReader(source), join(dir, 'x.bin'), { http2: true })).rejects.toMatchObject({ code: 'BLOCKFETCH_INVALID_ARGUMENT' });
  });
});
