/**
 * Byte ranges and block arithmetic.
 *
 * A file of `contentLength` bytes is split into blocks of `blockSize` bytes;
 * all blocks are full but the last, which holds `contentLength % blockSize`
 * bytes when that is not 0. Block `i` covers bytes `i * blockSize` up to and
 * including `min((i + 1) * blockSize, contentLength) - 1`.
 */
import { InvalidArgumentError } from '../errors.js';
import { wholeNumber } from '../validate.js';

/**
 * A range of bytes, INCLUSIVE at both ends, as in the HTTP `Range` header:
 * `{ from: 0, to: 9 }` is the first ten bytes, `bytes=0-9`. Its length is
 * `to - from + 1`. `{ from: -1, to: -1 }` stands for "no range".
 *
 * Mutable on purpose: `nextClear`/`nextSet` fill in a caller's object so that
 * walking 16 M blocks allocates nothing.
 */
export interface ByteRange {
  /** First byte of the range (inclusive). */
  from: number;
  /** Last byte of the range (inclusive). */
  to: number;
}

/** The range that stands for "none": `{ from: -1, to: -1 }`. */
export const NO_RANGE: Readonly<ByteRange> = Object.freeze({ from: -1, to: -1 });

/** The number of bytes in an inclusive range; 0 for {@link NO_RANGE}. */
export function rangeLength(range: Readonly<ByteRange>): number {
  return range.from < 0 ? 0 : range.to - range.from + 1;
}

/** The most blocks one file may have: what the bitmap can index. */
const MAX_BLOCKS = 0xffff_ffff;

/**
 * Checks that `contentLength` and `blockSize` describe a file blockfetch can
 * track, and throws an {@link InvalidArgumentError} naming the bad value if not.
 * Sizes must be safe integers; `contentLength` may be 0, `blockSize` must be
 * at least 1. The number of blocks must fit in the bitmap (2^32 - 1).
 */
export function validateSizes(contentLength: number, blockSize: number): void {
  // No owner: these are arguments of many callers (the cache, the
  // downloaders, the bitmap), which name them the same way.
  wholeNumber('', 'contentLength', contentLength, { unit: 'bytes' });
  wholeNumber('', 'blockSize', blockSize, { min: 1, unit: 'bytes' });
  const blocks = Math.ceil(contentLength / blockSize);
  if (blocks > MAX_BLOCKS) {
    throw new InvalidArgumentError(
      `contentLength ${contentLength} at blockSize ${blockSize} is ${blocks} blocks, more than the 4294967295 a bitmap can track: use a larger blockSize`,
    );
  }
}

/**
 * `preferred`, or the smallest power of two above it that keeps
 * `contentLength` within the bitmap's 2^32 - 1 blocks: the block size to use
 * when the caller did not choose one, so that no file size the remote can
 * state is refused for its number of blocks.
 *
 * @example
 * ```ts
 * blockSizeFor(2 ** 30, 2 ** 21)         // 2097152 (512 blocks)
 * blockSizeFor(2 ** 53 - 1, 2 ** 21)     // 4194304 (2^31 blocks)
 * ```
 */
export function blockSizeFor(contentLength: number, preferred: number): number {
  let blockSize = preferred;
  while (Math.ceil(contentLength / blockSize) > MAX_BLOCKS) blockSize *= 2;
  return blockSize;
}

/**
 * The number of blocks of `blockSize` bytes needed to cover `contentLength`
 * bytes (the last one may be shorter). 0 for an empty file.
 */
export function numBlocks(contentLength: number, blockSize: number): number {
  validateSizes(contentLength, blockSize);
  return Math.ceil(contentLength / blockSize);
}

/**
 * The inclusive byte range of block `index`, or `{ from: -1, to: -1 }` when
 * the index is out of bounds (negative, not an integer, or past the last block).
 *
 * @example
 * ```ts
 * rangeForIndex(1, 10, 4) // { from: 4, to: 7 }
 * rangeForIndex(2, 10, 4) // { from: 8, to: 9 } (the short last block)
 * rangeForIndex(3, 10, 4) // { from: -1, to: -1 }
 * ```
 */
export function rangeForIndex(index: number, contentLength: number, blockSize: number): ByteRange {
  if (!Number.isInteger(index) || index < 0) return { from: -1, to: -1 };
  const from = index * blockSize;
  if (from >= contentLength) return { from: -1, to: -1 };
  return { from, to: Math.min(from + blockSize, contentLength) - 1 };
}

/**
 * Yields the blocks that cover the inclusive range `from..to`, cut at
 * multiples of `blockSize` counted from byte 0 of the range: the first
 * `blockSize` bytes, the next, and a shorter last one if needed. Yields
 * nothing when `to < from`.
 *
 * @example
 * ```ts
 * [...ranges(0, 9, 4)] // [{0,3}, {4,7}, {8,9}]
 * ```
 */
export function* ranges(from: number, to: number, blockSize: number): Generator<ByteRange> {
  wholeNumber('', 'blockSize', blockSize, { min: 1, unit: 'bytes' });
  for (let start = from; start <= to; start += blockSize) {
    yield { from: start, to: Math.min(start + blockSize - 1, to) };
  }
}
