/**
 * Turning the cache's outstanding blocks into requests, lazily: a file of
 * 16 M blocks never becomes an array of 16 M requests.
 */
import type { DownloadCache } from '../cache/types.js';

/** One request: blocks `firstBlock..lastBlock` (inclusive), bytes `from..to` (inclusive). */
export interface PlannedRequest {
  readonly firstBlock: number;
  readonly lastBlock: number;
  readonly from: number;
  readonly to: number;
}

/**
 * How many adjacent outstanding blocks one request may carry. Coalescing
 * saves a round trip per block when blocks are small, but never so much that
 * fewer requests than workers are left (which would idle connections): the
 * cap is `maxRequestBytes`, lowered to an even share of the outstanding
 * bytes per worker, and always at least one block.
 *
 * @example
 * ```ts
 * blocksPerRequest({ blockSize: 1 << 20, maxRequestBytes: 8 << 20, outstandingBytes: 1 << 30, concurrency: 8 }) // 8
 * blocksPerRequest({ blockSize: 1 << 20, maxRequestBytes: 8 << 20, outstandingBytes: 16 << 20, concurrency: 8 }) // 2
 * ```
 */
export function blocksPerRequest(p: {
  readonly blockSize: number;
  readonly maxRequestBytes: number;
  readonly outstandingBytes: number;
  readonly concurrency: number;
}): number {
  if (p.maxRequestBytes <= p.blockSize) return 1;
  const share = Math.ceil(p.outstandingBytes / Math.max(1, p.concurrency));
  return Math.max(1, Math.floor(Math.min(p.maxRequestBytes, share) / p.blockSize));
}

/**
 * The smallest share {@link shrinkingBlocksPerRequest} lowers requests to
 * (unless the first share was smaller), and the smallest size the
 * `RequestSizer` chooses: 4 MiB. 1 GiB from nginx at c8, 4 alternating runs
 * each: 1.73-1.93 s and 7-24 MiB sent beyond the file; with a 1 MiB floor
 * 1.91-2.04 s and 19-44 MiB, with 8 MiB 1.70-1.92 s and 11-38 MiB
 * (docs/benchmarks.md, fifth session). Each request costs about 0.6 ms of
 * the main thread on loopback (the same download took 1.69-1.71 CPU s with
 * 1 MiB requests against 1.00-1.11 with 64 MiB ones, 3 runs each; eighth
 * session).
 */
export const SMALLEST_SHARE_BYTES = 4 * 2 ** 20;

/**
 * Request sizes that shrink as the plan nears its end (guided
 * self-scheduling): each request carries its share of the bytes not yet
 * planned, `unplanned / concurrency`, capped by `maxRequestBytes` and
 * floored at {@link SMALLEST_SHARE_BYTES} (or at the first share, when the
 * whole download is smaller than that per worker). Every connection then
 * runs out of work at about the same time, and the tail has little left to
 * split: cutting a request short wastes what its connection had in flight
 * (4-10 MiB on loopback), and with equal 64 MiB requests one resume split
 * a request a dozen times. `capBytes`, when given, is asked before each
 * request for a lower cap (the `RequestSizer`'s, from the requests so far).
 * Returns what {@link planRequests} takes: the blocks for the next request,
 * given the bytes planned so far.
 *
 * @example
 * ```ts
 * const next = shrinkingBlocksPerRequest({ blockSize: 1 << 20, maxRequestBytes: 64 << 20, outstandingBytes: 1 << 30, concurrency: 8 });
 * next(0) // 64: a full request
 * next(960 << 20) // 8: a share of the last 64 MiB
 * next(1016 << 20) // 4: never less than 4 MiB
 * ```
 */
export function shrinkingBlocksPerRequest(p: {
  readonly blockSize: number;
  readonly maxRequestBytes: number;
  readonly outstandingBytes: number;
  readonly concurrency: number;
  readonly capBytes?: () => number;
}): (plannedBytes: number) => number {
  const workers = Math.max(1, p.concurrency);
  const floor = workers * Math.min(SMALLEST_SHARE_BYTES, Math.ceil(p.outstandingBytes / workers));
  return (plannedBytes) =>
    blocksPerRequest({
      blockSize: p.blockSize,
      concurrency: p.concurrency,
      maxRequestBytes: p.capBytes === undefined ? p.maxRequestBytes : Math.min(p.maxRequestBytes, p.capBytes()),
      outstandingBytes: Math.max(floor, p.outstandingBytes - plannedBytes),
    });
}

/**
 * Yields requests for the outstanding blocks from block 0 on, each a run of
 * at most `maxBlocks` adjacent outstanding blocks (or as many as
 * `maxBlocks(bytes planned so far)` says, for each request). The cache is
 * asked as the caller iterates, so blocks that become cached meanwhile are
 * skipped, and a block is planned at most once per iteration.
 */
export function* planRequests(cache: DownloadCache, maxBlocks: number | ((plannedBytes: number) => number)): Generator<PlannedRequest, void, undefined> {
  const br = { from: -1, to: -1 };
  let plannedBytes = 0;
  let next = cache.nextOutstanding(0, br);
  while (next !== -1) {
    const most = typeof maxBlocks === 'number' ? maxBlocks : maxBlocks(plannedBytes);
    const firstBlock = next - 1;
    const from = br.from;
    let to = br.to;
    let lastBlock = firstBlock;
    next = cache.nextOutstanding(next, br);
    while (next !== -1 && next - 1 === lastBlock + 1 && lastBlock - firstBlock + 1 < most) {
      lastBlock++;
      to = br.to;
      next = cache.nextOutstanding(next, br);
    }
    plannedBytes += to - from + 1;
    yield { firstBlock, lastBlock, from, to };
  }
}
