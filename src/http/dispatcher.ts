/**
 * The undici dispatcher the HTTP reader uses when the caller passes none:
 * an `Agent` tuned for many long ranged GETs to one origin, or, when the
 * standard proxy variables are set, an `EnvHttpProxyAgent` with the same
 * tuning (it reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY, upper or lower case).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Client as UndiciClient, Dispatcher } from 'undici';
import { undici } from './undici.js';
import { DeferredDispatcher } from './deferred-dispatcher.js';
import { guardPausedParserAtSocketEnd } from './paused-parser-guard.js';
import { RangeConnections, type RangeRequester } from './range-connections.js';

/** The connection settings of the default dispatcher. */
export const defaultAgentOptions = Object.freeze({
  /**
   * Sockets per origin. Above any sensible download concurrency, so the
   * downloader's own limit is what counts, but bounded so a bug cannot open
   * thousands.
   */
  connections: 64,
  /**
   * One request per socket at a time: a pipelined request would wait behind
   * a 16 MiB body, and a reset would fail every request queued on the socket.
   */
  pipelining: 1,
  /** Keep idle sockets this long, so block after block reuses them. */
  keepAliveTimeout: 10_000,
  /** The most a server's `Keep-Alive: timeout` can stretch that to. */
  keepAliveMaxTimeout: 60_000,
  /** Time to establish a connection (TCP + TLS). */
  connectTimeoutMs: 10_000,
});

/**
 * How certificates are checked, for one dispatcher: `ca` replaces the
 * system's trusted CAs (curl's `--cacert`), `rejectUnauthorized: false`
 * accepts any certificate (curl's `-k`).
 */
export interface DispatcherTlsOptions {
  readonly ca?: string;
  readonly rejectUnauthorized?: boolean;
}

/**
 * Which HTTP versions one dispatcher offers. `http2`: offer h2 by ALPN to
 * https servers (undici's `allowH2`); a connection that chose h2 carries the
 * requests to its origin as streams (one connection, many requests), one
 * that stayed on HTTP/1.1 is used as before, one request at a time. Plain
 * http is always HTTP/1.1. Through a proxy (HTTP(S)_PROXY), h2 is offered
 * but not multiplexed. See docs/benchmarks.md ("HTTP/2") for why it is not
 * the default.
 */
export interface DispatcherProtocolOptions {
  /** @default false */
  readonly http2?: boolean;
}

/**
 * Streams one h2 connection may carry at once: undici's own cap, and the
 * SETTINGS_MAX_CONCURRENT_STREAMS most servers send. The downloader's
 * concurrency is what really bounds them.
 */
const H2_STREAMS = 100;

/** An undici connector (what a Client's `connect` option is once built). */
type Connector = (options: object, callback: (err: Error | null, socket: unknown) => void) => void;

/**
 * A Pool whose connections that chose h2 carry up to {@link H2_STREAMS}
 * requests at once (streams), while those that stayed on HTTP/1.1 keep one
 * request each. undici multiplexes h2 only up to the pool's `pipelining`, and
 * the same number would pipeline HTTP/1.1 (a request queued behind another's
 * whole body): so it is raised per connection, once ALPN said h2.
 */
function h2Pool(origin: string | URL, options: object): Dispatcher {
  const { Client, Pool } = undici();
  return new Pool(origin, {
    ...options,
    factory: (clientOrigin: URL, clientOptions: object) => {
      const connect = (clientOptions as { connect: Connector }).connect;
      let h2 = false;
      const client = new Client(clientOrigin, {
        ...clientOptions,
        connect: ((opts: object, callback: (err: Error | null, socket: unknown) => void) =>
          connect(opts, (err, socket) => {
            h2 = err === null && (socket as TLSSocket | null)?.alpnProtocol === 'h2';
            callback(err, socket);
          })) as unknown as NonNullable<UndiciClient.Options['connect']>,
      });
      // 'connect' comes once undici has set the connection up as h1 or h2.
      client.on('connect', () => {
        client.pipelining = h2 ? H2_STREAMS : 1;
      });
      return client;
    },
  });
}

/** Which dispatchers carry blockfetch's own range connections (see {@link rangeConnectionsOf}). */
const rangeRequesters = new WeakMap<object, RangeRequester>();

/**
 * The range connections that go with `dispatcher`: those of the default
 * dispatcher {@link createDefaultDispatcher} made (or one composed onto it,
 * see {@link shareRangeConnections}). A dispatcher of the caller's own has
 * none: every request then goes through it, as the caller chose.
 *
 * @example
 * ```ts
 * const dispatcher = createDefaultDispatcher();
 * rangeConnectionsOf(dispatcher); // a RangeConnections (no proxy variables set)
 * rangeConnectionsOf(new Agent()); // undefined
 * ```
 */
export function rangeConnectionsOf(dispatcher: Dispatcher): RangeRequester | undefined {
  return rangeRequesters.get(dispatcher);
}

/**
 * Gives `composed` (`base.compose(...)`) the range connections of `base`, so
 * an interceptor on the default dispatcher keeps them. An interceptor sees
 * only what goes through undici; `onResponse`, when given, sees the heads
 * of what goes through the range connections.
 *
 * @example
 * ```ts
 * const base = createDefaultDispatcher();
 * const composed = base.compose(interceptor);
 * shareRangeConnections(base, composed, (status, headers) => console.log(status, headers['etag']));
 * ```
 */
export function shareRangeConnections(
  base: Dispatcher,
  composed: Dispatcher,
  onResponse?: (statusCode: number, headers: IncomingHttpHeaders) => void,
): void {
  const requester = rangeRequesters.get(base);
  if (requester === undefined) return;
  rangeRequesters.set(
    composed,
    onResponse === undefined
      ? requester
      : {
          request: async (url, headers, options) => {
            const response = await requester.request(url, headers, options);
            if (response !== undefined) onResponse(response.statusCode, response.headers);
            return response;
          },
        },
  );
}

/** True when any proxy variable (HTTP_PROXY, HTTPS_PROXY, either case) is set and not empty. */
export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy'].some((name) => (env[name] ?? '') !== '');
}

/**
 * Creates the default dispatcher: an `EnvHttpProxyAgent` when a proxy is
 * configured in `env` (then NO_PROXY is honoured by undici), else an `Agent`.
 * The caller owns it and should `close()` it when done. `tls` (for one run:
 * `--cacert`, `-k`) is how certificates are checked; by default, Node's.
 * `protocol.http2` offers HTTP/2 (`--http2`).
 * Installs the guard against undici's paused-parser crash (see
 * `paused-parser-guard.ts`).
 */
export function createDefaultDispatcher(
  env: NodeJS.ProcessEnv = process.env,
  tls: DispatcherTlsOptions = {},
  protocol: DispatcherProtocolOptions = {},
): Dispatcher {
  guardPausedParserAtSocketEnd();
  const { connectTimeoutMs, ...pool } = defaultAgentOptions;
  const options = { ...pool, ...(protocol.http2 === true ? { allowH2: true } : {}), connect: { timeout: connectTimeoutMs, ...tls } };
  const proxied = proxyConfigured(env);
  if (protocol.http2 === true || proxied) {
    return new DeferredDispatcher(() => (proxied ? proxyAgent(env, options, tls) : new (undici().Agent)({ ...options, factory: h2Pool }))) as unknown as Dispatcher;
  }
  const connections = new RangeConnections({ ...tls, connectTimeoutMs, keepAliveTimeoutMs: pool.keepAliveTimeout, maxConnectionsPerOrigin: pool.connections });
  const dispatcher = new DeferredDispatcher(() => new (undici().Agent)(options), {
    close: () => connections.close(),
    destroy: () => connections.destroy(),
  }) as unknown as Dispatcher;
  rangeRequesters.set(dispatcher, connections);
  return dispatcher;
}

/** undici's proxy agent for the proxy variables in `env`. */
function proxyAgent(env: NodeJS.ProcessEnv, options: object, tls: DispatcherTlsOptions): Dispatcher {
  // Every value is passed explicitly ('' for "none") so that `env`, not
  // process.env behind undici's back, decides.
  return new (undici().EnvHttpProxyAgent)({
    ...options,
    httpProxy: env['HTTP_PROXY'] || env['http_proxy'] || '',
    httpsProxy: env['HTTPS_PROXY'] || env['https_proxy'] || '',
    noProxy: env['NO_PROXY'] ?? env['no_proxy'] ?? '',
    // Through a proxy, the origin's TLS is set up by the tunnel: same trust.
    requestTls: tls,
  });
}
