/**
 * V8 flags the `blockfetch` command sets for its own process, before any
 * other module runs (main.ts imports this first). The library sets none:
 * its host process is not its to tune.
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
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--liftoff-only');
