/**
 * The parts of undici blockfetch runs, loaded from their own modules.
 *
 * undici's entry point loads all of undici (fetch, WebSocket, EventSource,
 * cookies, caches, mocks, interceptors) and Node's own bundled copy with it;
 * blockfetch needs four dispatchers and `request`. Loading only those cost
 * 0.03-0.04 CPU s and 11 MB of RSS against 0.12 s and 20 MB for the whole
 * package (node 20, 2026-12-07), and only in a run that sends a request
 * through undici (see {@link undici}). The classes
 * are undici's own (the entry point re-exports these same modules), so a
 * caller's dispatcher made from `import { Agent } from 'undici'` is the same
 * class; test/undici.test.ts checks that. These paths are undici's
 * internals, so package.json pins undici to one exact version: an
 * installation never picks up a release that moved a module, and a bump is
 * a deliberate change that test then checks. Types come from undici's published declarations.
 * Nothing is loaded until {@link undici} is first called.
 *
 * @example
 * ```ts
 * import { request, undici } from './undici.js';
 * const { statusCode, body } = await request('http://127.0.0.1:8080/a.bin', { dispatcher: new (undici().Agent)() });
 * ```
 * @module
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

/** The undici classes blockfetch makes dispatchers from. */
export interface UndiciParts {
  readonly Agent: typeof Undici.Agent;
  readonly Client: typeof Undici.Client;
  readonly Pool: typeof Undici.Pool;
  readonly EnvHttpProxyAgent: typeof Undici.EnvHttpProxyAgent;
  /** undici's request API function, called with a dispatcher as `this`. */
  readonly request: (this: Undici.Dispatcher, options: Undici.Dispatcher.RequestOptions) => Promise<Undici.Dispatcher.ResponseData>;
}

let parts: UndiciParts | undefined;

/** Run once, just before undici's modules first load (see {@link beforeUndiciLoads}). */
let beforeLoad: (() => void) | undefined;

/**
 * Runs `hook` once, just before undici's modules first load (at once if they
 * already have). The command sets a V8 flag for undici's WebAssembly parser
 * there (src/cli/engine-flags.ts), so a download that never needs undici
 * never loads `node:v8` either. Internal: not exported from the package.
 *
 * @example
 * ```ts
 * beforeUndiciLoads(() => setFlagsFromString('--liftoff-only'));
 * ```
 */
export function beforeUndiciLoads(hook: () => void): void {
  if (parts !== undefined) hook();
  else beforeLoad = hook;
}

/**
 * undici's parts, loaded at the first call: a download whose requests all
 * go through the range connections (./range-connections.ts) never loads
 * undici at all (0.03 CPU s and 11 MB of RSS, measured 2026-12-07).
 *
 * @example
 * ```ts
 * const { Agent } = undici();
 * const agent = new Agent({ connections: 8 });
 * ```
 */
export function undici(): UndiciParts {
  if (parts !== undefined) return parts;
  const hook = beforeLoad;
  beforeLoad = undefined;
  hook?.();
  const Agent = load('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
  const Client = load('undici/lib/dispatcher/client.js') as typeof Undici.Client;
  const Pool = load('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
  const EnvHttpProxyAgent = load('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent;
  // What undici's entry point does first: every dispatcher gets the request
  // API (request, stream, pipeline, connect, upgrade) as methods. undici
  // relies on it itself (its proxy agent opens tunnels with `connect`), and
  // assigning the same functions again, when the entry point is loaded too,
  // changes nothing.
  const api = load('undici/lib/api/index.js') as Pick<UndiciParts, 'request'>;
  const DispatcherClass = load('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
  Object.assign(DispatcherClass.prototype, api);
  parts = { Agent, Client, Pool, EnvHttpProxyAgent, request: api.request };
  return parts;
}

/** What {@link request} takes: undici's request options, without origin and path (they come from the URL), and the dispatcher to send through. */
export type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> &
  Partial<Pick<Undici.Dispatcher.RequestOptions, 'method'>> & { readonly dispatcher: Undici.Dispatcher };

/**
 * undici's `request(url, options)`: one request through `options.dispatcher`,
 * resolving to the status, headers and body stream (a GET unless `method`
 * says otherwise). As undici's own, it
 * needs only the dispatcher's `dispatch`, so a caller's dispatcher from
 * another copy of undici works too. Unlike undici's, the dispatcher is
 * required: blockfetch always has one, and undici's global dispatcher (an
 * Agent made at load, also what Node's fetch picks up) is never loaded.
 */
export function request(url: string | URL, options: RequestOptions): Promise<Undici.Dispatcher.ResponseData> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher, ...rest } = options;
  return undici().request.call(dispatcher, { ...rest, origin: target.origin, path: `${target.pathname}${target.search}`, method: rest.method ?? 'GET' });
}
