/**
 * HttpReader over real TLS (a self-signed certificate made with openssl at
 * test time): ranged reads work, and a redirect from https to http is
 * refused before the http server is ever contacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { HttpReader } from '../src/http/http-reader.js';
import { BlockfetchError } from '../src/errors.js';
import { selfSignedCertificate, startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { firstMisplaced, payload } from './helpers/payload.js';

const BS = 32 * 1024;
const content = payload(0, 3 * BS - 1);

describe('https', () => {
  let secure: FaultServer;
  let plain: FaultServer;
  let agent: Agent;

  beforeAll(async () => {
    const tls = await selfSignedCertificate();
    secure = await startFaultServer({ content, tls });
    plain = await startFaultServer({ content });
    agent = new Agent({ connect: { ca: tls.cert } });
  });
  afterAll(async () => {
    await agent.close();
    await secure.close();
    await plain.close();
  });

  it('reads pinned ranges over TLS', async () => {
    const reader = new HttpReader({ url: secure.url, blockSize: BS, dispatcher: agent });
    const info = await reader.contentLengthAndBlockSize();
    expect(info).toMatchObject({ contentLength: 3 * BS, pinned: true });
    const parts: Uint8Array[] = [];
    for await (const chunk of await reader.getReader(BS, 2 * BS - 1, new AbortController().signal)) parts.push(chunk);
    expect(firstMisplaced(Buffer.concat(parts), BS)).toBe(-1);
    expect(secure.requests.at(-1)?.headers['if-match']).toBe(secure.etag);
    await reader.close();
  });

  it('refuses a redirect from https to http', async () => {
    secure.script(() => ({ kind: 'redirect', location: plain.url }));
    try {
      const reader = new HttpReader({ url: secure.url, blockSize: BS, dispatcher: agent, headers: { authorization: 'Bearer t' } });
      const err = await reader.contentLengthAndBlockSize().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BlockfetchError);
      expect(err).toMatchObject({ code: 'BLOCKFETCH_REDIRECT', retryable: false });
      expect((err as Error).message).toContain('https to http');
      expect(plain.requests).toHaveLength(0);
    } finally {
      secure.script(undefined);
    }
  });

  it('rejects an untrusted certificate, fatally (retrying cannot fix it)', async () => {
    const reader = new HttpReader({ url: secure.url, blockSize: BS });
    const err = await reader.contentLengthAndBlockSize().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'BLOCKFETCH_TLS', retryable: false });
    expect((err as Error).message).toContain('certificate');
    await reader.close();
  });
});
