/**
 * V8 flags the `blockfetch` command sets for its own process, just before
 * undici first loads (main.ts imports this first; `beforeUndiciLoads`). A
 * download that never needs undici (every plain GET goes through the range
 * connections) never loads `node:v8`: 4-8 ms of start-up in a profile. The
 * library sets none: its host process is not its to tune.
 *
 * `--liftoff-only`: undici parses HTTP with llhttp compiled to WebAssembly,
 * and V8 compiles that module twice, quickly (Liftoff) and then optimized
 * (TurboFan) on background threads. The parser only frames the body (it
 * never touches body bytes one by one), so the optimized code buys nothing
 * a download can measure, while compiling it cost 0.1-0.2 CPU s and 35 MB
 * of peak RSS in every run: a 1 MiB download took 0.65 CPU s and 115 MB
 * peak RSS with it, 0.46-0.55 s and 79-80 MB without (2026-12-07, nginx on
 * loopback; docs/benchmarks.md has the 1 GiB figures).
 *
 * @example
 * ```ts
 * import './engine-flags.js'; // first, before anything that loads undici
 * ```
 * @module
 */
import { createRequire } from 'node:module';
import { beforeUndiciLoads } from '../http/undici.js';

beforeUndiciLoads(() => {
  const v8 = createRequire(import.meta.url)('node:v8') as typeof import('node:v8');
  v8.setFlagsFromString('--liftoff-only');
});
