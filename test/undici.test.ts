import { execFileSync } from 'node:child_process';
import * as undici from 'undici';
import { describe, expect, it } from 'vitest';
import { request, undici as parts } from '../src/http/undici.js';

const { Agent, Client, EnvHttpProxyAgent, Pool } = parts();
import { startNginx } from './helpers/nginx.js';

describe('src/http/undici.ts: the parts of undici blockfetch loads on their own', () => {
  it('are the very classes undici exports (a release that moves a module fails here, not in a download)', () => {
    expect(Agent).toBe(undici.Agent);
    expect(Client).toBe(undici.Client);
    expect(Pool).toBe(undici.Pool);
    expect(EnvHttpProxyAgent).toBe(undici.EnvHttpProxyAgent);
  });

  it('loaded alone (no undici entry point), every dispatcher still has the request API undici itself relies on', () => {
    const module = new URL('../src/http/undici.ts', import.meta.url).href;
    const script = `const u = await import(${JSON.stringify(module)});
const methods = ['request', 'stream', 'pipeline', 'connect', 'upgrade'].map((m) => typeof new (u.undici().Agent)()[m]);
const entryLoaded = Object.keys((await import('node:module')).createRequire(import.meta.url).cache).some((k) => k.endsWith('/undici/index.js'));
console.log(JSON.stringify({ methods, entryLoaded }));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ methods: ['function', 'function', 'function', 'function', 'function'], entryLoaded: false });
  });

  it('request() sends method, path with query, headers and signal through the given dispatcher, as undici.request does', async () => {
    const server = await startNginx({ files: { 'a.bin': new Uint8Array([1, 2, 3, 4, 5]) } });
    const dispatcher = new Agent();
    try {
      const ours = await request(`${server.url('a.bin')}?x=1`, { dispatcher, headers: { range: 'bytes=1-2' }, signal: AbortSignal.timeout(10_000) });
      expect(ours.statusCode).toBe(206);
      expect([...new Uint8Array(await ours.body.arrayBuffer())]).toEqual([2, 3]);
      const head = await request(new URL(server.url('a.bin')), { dispatcher, method: 'HEAD' });
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-length']).toBe('5');
      await head.body.dump();
      const logged = await server.requestsOnceLogged(2, (r) => r.request.includes('a.bin'));
      expect(logged.map((r) => r.request).filter((line) => line.includes('a.bin'))).toEqual(['GET /a.bin?x=1 HTTP/1.1', 'HEAD /a.bin HTTP/1.1']);
    } finally {
      await dispatcher.close();
      await server.stop();
    }
  });
});
