/**
 * A dispatcher that makes its undici dispatcher when a request first needs
 * it, so that a download whose requests all go through the range
 * connections (./range-connections.ts) never loads undici.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Dispatcher } from 'undici';

/** What closing or destroying the dispatcher also ends. */
export interface DeferredDispatcherHooks {
  close?(): void;
  destroy?(): void;
}

/** The request-API methods a dispatcher has, forwarded to the real one. */
const FORWARDED = ['request', 'stream', 'pipeline', 'connect', 'upgrade'] as const;

/**
 * Stands for the dispatcher `make()` returns, and makes it on the first
 * `dispatch` (or request-API call). `compose()` composes onto it then too;
 * closing a composed one closes this one, as undici's does. Closed before
 * it was made, nothing is made: a later request fails as it would on a
 * closed undici dispatcher.
 *
 * @example
 * ```ts
 * const dispatcher = new DeferredDispatcher(() => new (undici().Agent)()) as unknown as Dispatcher;
 * await request(url, { dispatcher }); // undici is loaded here, not before
 * await dispatcher.close();
 * ```
 */
export class DeferredDispatcher extends EventEmitter {
  readonly #make: () => Dispatcher;
  readonly #hooks: DeferredDispatcherHooks;
  /** The dispatcher this one was composed onto: it owns closing. */
  readonly #base: DeferredDispatcher | undefined;
  #real: Dispatcher | undefined;
  #closed = false;
  #destroyed = false;

  constructor(make: () => Dispatcher, hooks: DeferredDispatcherHooks = {}, base?: DeferredDispatcher) {
    super();
    this.#make = make;
    this.#hooks = hooks;
    this.#base = base;
    for (const method of FORWARDED) {
      Object.defineProperty(this, method, {
        value: (...args: unknown[]): unknown => (this.#get() as unknown as Record<string, (...a: unknown[]) => unknown>)[method]?.(...args),
      });
    }
  }

  /** Whether the real dispatcher has been made. */
  get made(): boolean {
    return this.#real !== undefined;
  }

  get closed(): boolean {
    return this.#base?.closed ?? this.#closed;
  }

  get destroyed(): boolean {
    return this.#base?.destroyed ?? this.#destroyed;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#get().dispatch(options, handler);
  }

  compose(...interceptors: Dispatcher.DispatcherComposeInterceptor[]): Dispatcher {
    return new DeferredDispatcher(() => this.#get().compose(...interceptors), {}, this) as unknown as Dispatcher;
  }

  close(): Promise<void>;
  close(callback: () => void): void;
  close(callback?: () => void): Promise<void> | void {
    const done = this.#base !== undefined ? this.#base.close() : this.#end('close');
    if (callback === undefined) return done;
    done.then(callback, callback);
  }

  destroy(): Promise<void>;
  destroy(err: Error | null): Promise<void>;
  destroy(callback: () => void): void;
  destroy(err: Error | null, callback: () => void): void;
  destroy(first?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof first === 'function' ? null : (first ?? null);
    const then = typeof first === 'function' ? first : callback;
    const done = this.#base !== undefined ? this.#base.destroy(err) : this.#end('destroy', err);
    if (then === undefined) return done;
    done.then(then, then);
  }

  #end(how: 'close' | 'destroy', err: Error | null = null): Promise<void> {
    this.#closed = true;
    if (how === 'destroy') {
      this.#destroyed = true;
      this.#hooks.destroy?.();
    } else {
      this.#hooks.close?.();
    }
    const real = this.#real;
    if (real === undefined) return Promise.resolve();
    return how === 'close' ? real.close() : real.destroy(err);
  }

  #get(): Dispatcher {
    if (this.#real === undefined) {
      const real = this.#make();
      this.#real = real;
      // Asked for after close: made closed, so the request fails as undici's would.
      if (this.closed) void real.close().catch(() => undefined);
    }
    return this.#real;
  }
}
