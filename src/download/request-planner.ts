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
 * Yields requests for the outstanding blocks from block 0 on, each a run of
 * at most `maxBlocks` adjacent outstanding blocks. The cache is asked as the
 * caller iterates, so blocks that become cached meanwhile are skipped, and
 * a block is planned at most once per iteration.
 */
export function* planRequests(cache: DownloadCache, maxBlocks: number): Generator<PlannedRequest, void, undefined> {
  const br = { from: -1, to: -1 };
  let next = cache.nextOutstanding(0, br);
  while (next !== -1) {
    const firstBlock = next - 1;
    const from = br.from;
    let to = br.to;
    let lastBlock = firstBlock;
    next = cache.nextOutstanding(next, br);
    while (next !== -1 && next - 1 === lastBlock + 1 && lastBlock - firstBlock + 1 < maxBlocks) {
      lastBlock++;
      to = br.to;
      next = cache.nextOutstanding(next, br);
    }
    yield { firstBlock, lastBlock, from, to };
  }
}
