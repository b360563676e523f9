/**
 * A real nginx (Debian's /usr/sbin/nginx) serving generated files on a free
 * 127.0.0.1 port, for tests that must see a production server's own Range,
 * ETag (`"<mtime hex>-<size hex>"`, strong), If-Match and
 * If-Unmodified-Since handling.
 *
 * Everything lives in one mkdtemp directory (config, pid, logs, temp dirs,
 * and `www/`, the document root); `stop()` ends nginx, waits for it to exit
 * and removes the directory. When nginx is not installed `startNginx`
 * throws: tests that need it must FAIL, not skip (CI installs nginx).
 *
 * @example
 * ```ts
 * const nginx = await startNginx({ files: { 'a.bin': payload(0, 1023) } });
 * // ... read nginx.url('a.bin') ...
 * await nginx.writeFile('a.bin', other); // a new revision: new mtime, new ETag
 * await nginx.stop();
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The nginx binary the helper runs. */
export const NGINX_PATH = '/usr/sbin/nginx';

/** How to start nginx. */
export interface NginxOptions {
  /** Files to create under the document root, by relative path. @default {} */
  readonly files?: Readonly<Record<string, Uint8Array>>;
  /** Extra directives inside the `server { }` block, e.g. `location = /old { return 302 /a.bin; }`. */
  readonly serverConfig?: string;
  /**
   * Extra directives inside the `http { }` block (e.g. `proxy_cache_path`),
   * or a function of the helper's own directory, so a cache lives in it and
   * is removed by `stop()`.
   */
  readonly httpConfig?: string | ((dir: string) => string);
  /** The nginx binary. @default {@link NGINX_PATH} */
  readonly binary?: string;
}

/** One line of the helper's access log. */
export interface NginxRequest {
  readonly request: string;
  readonly status: number;
  readonly bytesSent: number;
  readonly range: string;
  readonly ifMatch: string;
  readonly ifUnmodifiedSince: string;
}

/** A running nginx. */
export interface NginxServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** The document root on disk. */
  readonly root: string;
  /** The URL of a file under the root. */
  url(name: string): string;
  /**
   * Writes (or replaces) a file and sets its mtime, by default one minute
   * later than the last one this helper set, so nginx's ETag
   * (`mtime-size`, one-second resolution) is sure to change.
   */
  writeFile(name: string, data: Uint8Array, mtime?: Date): Promise<void>;
  /**
   * The requests nginx logged so far, oldest first: method and URI, status,
   * body bytes sent, and the Range, If-Match and If-Unmodified-Since request
   * headers ('' when absent). nginx writes a line when a response ends.
   */
  requests(): Promise<NginxRequest[]>;
  /**
   * {@link NginxServer.requests} once at least `count` of them match
   * `which` (all by default), or after 5 s: nginx logs a response after
   * sending it, so a client can hold the whole response before its line
   * is written.
   */
  requestsOnceLogged(count: number, which?: (request: NginxRequest) => boolean): Promise<NginxRequest[]>;
  /** Stops nginx (SIGTERM, then SIGKILL after 5 s), waits for its exit, removes the directory. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True once something answers HTTP at `origin`. */
function answers(origin: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${origin}/`, { timeout: 500 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

function config(dir: string, port: number, serverConfig: string, httpConfig = ''): string {
  // master + one worker, in the foreground so the child is nginx itself;
  // `user root` only matters (and is only allowed) when running as root,
  // where the default `nobody` could not read files under a 0700 mkdtemp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  # Tab-separated, so tests can check what nginx itself received.
  log_format blockfetch '$request\t$status\t$body_bytes_sent\t$http_range\t$http_if_match\t$http_if_unmodified_since';
  access_log ${dir}/access.log blockfetch;
  client_body_temp_path ${dir}/tmp/client_body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 30s;
  ${httpConfig}
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
    ${serverConfig}
  }
}
`;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts nginx; see the module comment. Always `stop()` it (afterAll / finally). */
export async function startNginx(options: NginxOptions = {}): Promise<NginxServer> {
  const binary = options.binary ?? NGINX_PATH;
  try {
    await access(binary, constants.X_OK);
  } catch {
    throw new Error(`nginx is required for this test but ${binary} is missing: install it (apt-get install nginx-light)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'blockfetch-nginx-'));
  const root = join(dir, 'www');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await mkdir(root, { recursive: true });
  let lastMtime = Math.floor(Date.now() / 1000) - 3600;
  const put = async (name: string, data: Uint8Array, mtime?: Date): Promise<void> => {
    const path = join(root, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
    lastMtime = mtime ? Math.floor(mtime.getTime() / 1000) : lastMtime + 60;
    await utimes(path, lastMtime, lastMtime);
  };
  for (const [name, data] of Object.entries(options.files ?? {})) await put(name, data);

  // The port is free when chosen; another process could take it before
  // nginx binds it, so a failed start is tried again with a new port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const conf = join(dir, 'nginx.conf');
    const httpConfig = typeof options.httpConfig === 'function' ? options.httpConfig(dir) : options.httpConfig;
    await writeFile(conf, config(dir, port, options.serverConfig ?? '', httpConfig));
    const child = spawn(binary, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      if (await answers(origin)) {
        up = true;
        break;
      }
      await Promise.race([new Promise((r) => setTimeout(r, 50)), spawnError]);
    }
    const readRequests = async (): Promise<NginxRequest[]> => {
      const log = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return log
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          const [request = '', status = '0', bytes = '0', range = '', ifMatch = '', ius = ''] = line.split('\t');
          // nginx logs '-' for an absent header and escapes '"' (and other
          // special bytes) as \xHH.
          const dash = (v: string): string =>
            v === '-' ? '' : v.replace(/\\x([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
          return {
            request,
            status: Number(status),
            bytesSent: Number(bytes),
            range: dash(range),
            ifMatch: dash(ifMatch),
            ifUnmodifiedSince: dash(ius),
          };
        });
    };
    if (up) {
      return {
        origin,
        root,
        url: (name) => `${origin}/${name}`,
        writeFile: put,
        async requestsOnceLogged(count, which = () => true) {
          const deadline = performance.now() + 5000;
          for (;;) {
            const logged = await readRequests();
            if (logged.filter(which).length >= count || performance.now() > deadline) return logged;
            await new Promise((r) => setTimeout(r, 10));
          }
        },
        requests: readRequests,
        async stop() {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited(child);
          clearTimeout(timer);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    await exited(child);
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
    if (attempt >= 3 || !/Address already in use/.test(log + stderr)) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start on ${origin}: ${(stderr + log).trim().slice(-2000) || 'no output'}`);
    }
  }
}
