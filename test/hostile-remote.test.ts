/**
 * Issue 11, "A wrong file with exit 0": hostile loopback servers that lie
 * about sizes and revisions, and the checks that keep `downloadFile` from
 * ending with a wrong file and success. Each test fails without its fix.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { downloadFile, type DownloadFileOptions } from '../src/download-file.js';
import { BlockfetchError } from '../src/errors.js';
import { startFaultServer, type Content, type FaultServer } from './helpers/fault-server.js';
import { payload } from './helpers/payload.js';

const KiB = 1024;
const BS = 64 * KiB;
const fastRetry = { baseDelayMs: 5, maxDelayMs: 50, jitter: 0 } as const;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-hostile-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(content: Content, options: Partial<Parameters<typeof startFaultServer>[0]> = {}): Promise<FaultServer> {
  const server = await startFaultServer({ content, ...options });
  cleanups.push(() => server.close());
  return server;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `downloadFile` that must fail: its typed error. */
async function fails(promise: Promise<unknown>): Promise<BlockfetchError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BlockfetchError);
    return err as BlockfetchError;
  }
  throw new Error('expected the download to fail, it succeeded');
}

const base: DownloadFileOptions = { blockSize: BS, concurrency: 4, retry: fastRetry, timeoutMs: 5_000 };

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('1. a 416 without Content-Range is not an empty file', () => {
  it('a non-empty file whose server answers ranged requests 416 is fetched whole, not as 0 bytes', async () => {
    const content = payload(0, 8 * BS - 1);
    const server = await serve(content);
    server.script((req) => (req.headers.range === undefined ? undefined : { kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'big.bin');
    const result = await downloadFile(server.url, target, base);
    expect(result.size).toBe(content.length);
    expect(sha256(await readFile(target))).toBe(sha256(content));
  });

  it('a 416 to every request, with and without Range, is an error, not an empty file', async () => {
    const server = await serve(payload(0, 8 * BS - 1));
    server.script(() => ({ kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'big.bin');
    const err = await fails(downloadFile(server.url, target, { ...base, retry: { ...fastRetry, attemptsPerBlock: 2 } }));
    expect(err.message).toMatch(/416/);
    expect(await exists(target)).toBe(false);
  });

  it('a real empty file (416 without Content-Range, then Content-Length: 0) still downloads', async () => {
    const server = await serve(Buffer.alloc(0));
    server.script((req) => (req.headers.range === undefined ? undefined : { kind: 'status', status: 416 }));
    const target = join(await tempDir(), 'empty.bin');
    const result = await downloadFile(server.url, target, base);
    expect(result.size).toBe(0);
    expect((await readFile(target)).length).toBe(0);
  });
});
