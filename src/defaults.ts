/**
 * The defaults that more than one layer uses, declared once.
 *
 * A default that only one module uses lives in that module's
 * `default…Options` object; one that the CLI, `downloadFile`, the
 * downloaders and the readers must agree on lives here, and every one of
 * them refers to it (with `@default` in its TSDoc naming the value).
 *
 * @example
 * ```ts
 * import { DEFAULT_BLOCK_SIZE } from './defaults.js';
 * new FileReader(path, { blockSize: DEFAULT_BLOCK_SIZE * 2 });
 * ```
 * @module
 */

/**
 * The block size of a new download, in bytes: the unit of resumption and of
 * the index, and what a reader suggests for a new cache. 1 MiB, measured
 * (2026-12-02, nginx on loopback, c8): against 2 MiB, 1 GiB took 2.64 s vs
 * 2.82 s (3.38 vs 3.66 CPU s, 138 vs 152 MB peak RSS, median of 3), a kill
 * at half-time refetched 64 vs 74 MiB, and with one connection in eight at
 * a tenth of the speed 256 MiB took 3.29 s vs 4.24 s (bench/tail.ts): a slow
 * connection keeps only the block it is receiving, and a kill loses at most
 * one partly received block per connection.
 */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;

/**
 * The most one request asks for, in bytes: adjacent outstanding blocks are
 * fetched together up to this size (fewer round trips), and still recorded
 * one by one as their bytes land, so it changes neither what a kill loses
 * nor the memory held. 64 MiB, measured (2026-12-07, 512 MiB, c8, median
 * of 3, against 16 MiB): from a server that paces each connection to 50
 * MB/s and waits 20 ms before each response head, 1.88 s vs 2.00 s (aria2c
 * 1.69 s; 256 MiB gave 1.86 s); with one connection in eight at a tenth of
 * that speed, 2.26 s vs 2.61 s (an idle connection still takes over the
 * slow request's remaining blocks); from nginx, 1 GiB, 2.24 vs 2.51 s.
 * Every request is one more response head to wait for.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/** Files of a set downloaded at once (`-j`, `downloadFiles`): aria2c's default for `--max-concurrent-downloads`. 5. */
export const DEFAULT_MAX_CONCURRENT_FILES = 5;

/** Requests open at once, for every downloader and the CLI. 8. */
export const DEFAULT_CONCURRENCY = 8;

/** How long to wait for response headers, and for the next body bytes, before a request fails (and is retried), in ms. 30 s. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The longest delay a server may ask for with `Retry-After` that is honoured as asked; longer ones are capped to it, in ms. 2 min. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 120_000;

/**
 * What `--stdout` may hold of the file at once (received, not yet taken
 * by the consumer), in bytes, when no block or request size is given: the
 * stream's block size is chosen so that its reorder window (2 ×
 * concurrency blocks) fits in it. 32 MiB. Measured on 512 MiB from nginx
 * into a consumer reading 20 MB/s: 16 MiB blocks (256 MiB of window) peaked
 * at 385 MB RSS, 2 MiB blocks (32 MiB) at 151 MB; into a fast consumer
 * both took 2.0-2.4 s.
 */
export const DEFAULT_STREAM_BUFFER_BYTES = 32 * 1024 * 1024;
