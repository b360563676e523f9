/**
 * Reserving disk space for a download before it starts, so that it never
 * fails half-way for lack of space.
 *
 * Linux: `fallocate(1)` from util-linux. Node has no binding for
 * `fallocate(2)`/`posix_fallocate(3)` and neither does fs-ext; no npm package
 * for it is in reach here, and one extra native addon for a single syscall is
 * not worth its build risk when util-linux is on every Linux system. Anywhere
 * else, or when the filesystem does not support it, the file is extended by
 * writing zeros, a few chunks at a time.
 */
import { execFile } from 'node:child_process';
import { lstat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AbortedError, BlockfetchError, InvalidArgumentError, NotEnoughSpaceError } from '../errors.js';
import { errnoCode, fileKind, NodeCacheFile, unsafePathError } from './file.js';
import { definedFields, oneOf, wholeNumber } from '../validate.js';

/**
 * How {@link reserveSpace} allocated the blocks; `'sparse'` allocated none
 * (only the length was set).
 */
export type ReserveMethod = 'fallocate' | 'zero-fill' | 'sparse';

/** Options of {@link reserveSpace}. */
export interface ReserveSpaceOptions {
  /**
   * How many zero-fill writes are in flight at once (only used when
   * `fallocate` is not available or fails). Memory used is one shared chunk.
   * @default 4
   */
  readonly concurrency?: number;
  /** The size of each zero-fill write, in bytes. @default 1048576 (1 MiB) */
  readonly chunkSize?: number;
  /**
   * `'auto'` tries `fallocate` on Linux and falls back to zero-fill;
   * `'fallocate'` fails rather than fall back; `'zero-fill'` never tries
   * `fallocate` (for filesystems where it lies, and for tests).
   * `'sparse'` reserves nothing: it only sets the length (a sparse file),
   * checks no free space for the data, and verifies no allocation, so a
   * full disk shows up part-way as a failed write instead of up front. It
   * is for benchmarks of files larger than the disk (bench/scale.ts fetches
   * a slice of 1 TiB) and for callers that manage space themselves.
   * @default 'auto'
   */
  readonly method?: 'auto' | ReserveMethod;
  /**
   * Called as space is reserved with the bytes of the file that are
   * allocated so far and the total. Zero-fill calls it after each chunk;
   * `fallocate` once at the end.
   */
  readonly onProgress?: (reservedBytes: number, totalBytes: number) => void;
  /** Stops the reservation; the promise rejects with an {@link AbortedError}. */
  readonly signal?: AbortSignal;
}

/** The defaults of {@link ReserveSpaceOptions}. */
export const defaultReserveSpaceOptions = Object.freeze({
  concurrency: 4,
  chunkSize: 1024 * 1024,
  method: 'auto' as const,
});

/** What {@link reserveSpace} did. */
export interface ReserveSpaceResult {
  /** How the blocks were allocated; `undefined` for size 0 (nothing to allocate). */
  readonly method: ReserveMethod | undefined;
  /** `st_blocks * 512` after the reservation: the bytes the filesystem really allocated. */
  readonly allocatedBytes: number;
}

/**
 * Creates `path` if needed, allocates real disk blocks for `size` bytes and
 * sets its length to exactly `size`.
 *
 * Free space is checked first (`statfs`: `bavail * bsize`, counting the
 * blocks the file already has), and a {@link NotEnoughSpaceError} is thrown
 * before anything is written. After allocating, the allocation is verified
 * with `st_blocks * 512 >= size`; a filesystem that only pretends (sparse or
 * compressing) gives `BLOCKFETCH_ALLOCATION_FAILED`.
 *
 * Existing bytes are kept: `fallocate` never changes data, and zero-fill only
 * writes past the file's current end (so holes inside an existing sparse
 * file stay holes, and the verification reports them). A file longer than
 * `size` is cut to `size`.
 *
 * @example
 * ```ts
 * await reserveSpace('/data/big.iso', 8 * 2 ** 30, { onProgress: (n, total) => bar.update(n / total) });
 * ```
 */
export async function reserveSpace(path: string, size: number, options: ReserveSpaceOptions = {}): Promise<ReserveSpaceResult> {
  const o = resolveOptions(options);
  wholeNumber('', 'reserveSpace size', size, { unit: 'bytes' });
  throwIfAborted(o.signal);

  const existing = await statIfExists(path);
  if (o.method === 'sparse') return setLengthOnly(path, size);
  const { needed, available } = await spaceCheck(path, size, existing);

  const file = await wrapIo(path, 'write', 'open', () => NodeCacheFile.open(path, { create: true }));
  try {
    let method: ReserveMethod | undefined;
    if (size > 0) {
      method = await allocate(file, path, size, existing?.size ?? 0, needed, available, o);
    }
    await wrapIo(path, 'write', 'set the length of', () => file.truncate(size));
    await wrapIo(path, 'write', 'fsync', () => file.sync());
    const allocatedBytes = await wrapIo(path, 'read', 'stat', () => file.allocatedBytes());
    if (allocatedBytes < size) {
      throw new BlockfetchError(
        'BLOCKFETCH_ALLOCATION_FAILED',
        `${path}: asked the filesystem for ${size} bytes but only ${allocatedBytes} are allocated (st_blocks * 512) after ${method ?? 'allocation'}`,
        { hint: 'the filesystem does not reserve space (sparse, compressed or copy-on-write); choose a target on another filesystem' },
      );
    }
    if (method === 'fallocate') o.onProgress?.(size, size);
    return { method, allocatedBytes };
  } finally {
    await file.close();
  }
}

/** `reserveSpace` with method `'sparse'`: the length, no blocks. */
async function setLengthOnly(path: string, size: number): Promise<ReserveSpaceResult> {
  const file = await wrapIo(path, 'write', 'open', () => NodeCacheFile.open(path, { create: true }));
  try {
    await wrapIo(path, 'write', 'set the length of', () => file.truncate(size));
    await wrapIo(path, 'write', 'fsync', () => file.sync());
    const allocatedBytes = await wrapIo(path, 'read', 'stat', () => file.allocatedBytes());
    return { method: size > 0 ? 'sparse' : undefined, allocatedBytes };
  } finally {
    await file.close();
  }
}

/** Options of {@link checkFreeSpace}. */
export interface CheckFreeSpaceOptions {
  /**
   * The sizes in bytes of the other files that will be created next to
   * `path` (an index, its temp file, a lock file): each counts rounded up to
   * the filesystem's block size, and at least one block, however small.
   * @default []
   */
  readonly alsoFiles?: readonly number[];
}

/**
 * Throws a {@link NotEnoughSpaceError} unless the filesystem holding `path`
 * has room for a file of `size` bytes there, plus the files of
 * `options.alsoFiles`, counting the blocks a file already at `path` has
 * (they are reused, or freed when it is replaced). Writes nothing.
 * {@link reserveSpace} calls it first (for the one file); call it yourself
 * before removing an old file you mean to replace, so that a refusal leaves
 * the old file in place.
 *
 * @example
 * ```ts
 * await checkFreeSpace('/data/big.iso.blockfetch', 8 * 2 ** 30, { alsoFiles: [indexBytes, indexBytes, 0] });
 * ```
 */
export async function checkFreeSpace(path: string, size: number, options: CheckFreeSpaceOptions = {}): Promise<void> {
  wholeNumber('', 'checkFreeSpace size', size, { unit: 'bytes' });
  const alsoFiles = options.alsoFiles ?? [];
  if (!Array.isArray(alsoFiles)) throw new InvalidArgumentError('checkFreeSpace option alsoFiles must be an array of sizes in bytes');
  for (const bytes of alsoFiles) wholeNumber('checkFreeSpace', 'alsoFiles', bytes, { unit: 'bytes' });
  await spaceCheck(path, size, await statIfExists(path), alsoFiles);
}

async function spaceCheck(
  path: string,
  size: number,
  existing: { size: number; blocks: number } | undefined,
  alsoFiles: readonly number[] = [],
): Promise<{ needed: number; available: number }> {
  const alreadyAllocated = existing === undefined ? 0 : existing.blocks * 512;
  const { available, blockSize } = await freeSpace(path);
  const others = alsoFiles.reduce((sum, bytes) => sum + Math.max(1, Math.ceil(bytes / blockSize)) * blockSize, 0);
  const needed = Math.max(0, size - alreadyAllocated) + others;
  if (needed > available) throw new NotEnoughSpaceError(path, needed, available);
  return { needed, available };
}

interface ResolvedOptions {
  readonly concurrency: number;
  readonly chunkSize: number;
  readonly method: 'auto' | ReserveMethod;
  readonly onProgress: ((reservedBytes: number, totalBytes: number) => void) | undefined;
  readonly signal: AbortSignal | undefined;
}

function resolveOptions(options: ReserveSpaceOptions): ResolvedOptions {
  const o = { ...defaultReserveSpaceOptions, ...definedFields(options) };
  const concurrency = wholeNumber('reserveSpace', 'concurrency', o.concurrency, { min: 1 });
  const chunkSize = wholeNumber('reserveSpace', 'chunkSize', o.chunkSize, { min: 1, max: 256 * 1024 * 1024, unit: 'bytes' });
  const method = oneOf('reserveSpace', 'method', o.method, ['auto', 'fallocate', 'zero-fill', 'sparse'] as const);
  return { concurrency, chunkSize, method, onProgress: options.onProgress, signal: options.signal };
}

async function allocate(
  file: NodeCacheFile,
  path: string,
  size: number,
  currentLength: number,
  needed: number,
  available: number,
  o: ResolvedOptions,
): Promise<ReserveMethod> {
  if (o.method !== 'zero-fill' && process.platform === 'linux') {
    try {
      // Through the open descriptor, not the name: a link swapped in at the
      // name after our O_NOFOLLOW open must not be followed by fallocate.
      await runFallocate(file.descriptorPath() ?? path, size, o.signal);
      return 'fallocate';
    } catch (err) {
      throwIfAborted(o.signal);
      if (o.method === 'fallocate') {
        throw new BlockfetchError('BLOCKFETCH_ALLOCATION_FAILED', `${path}: fallocate failed: ${messageOf(err)}`, {
          cause: err,
          hint: "the filesystem may not support fallocate; use method 'auto' to fall back to writing zeros",
        });
      }
      // Unsupported filesystem, or no util-linux: writing zeros works everywhere.
    }
  }
  await zeroFill(file, path, currentLength, size, needed, available, o);
  return 'zero-fill';
}

/** Runs `fallocate -o 0 -l SIZE PATH` (allocates and extends; existing data untouched). */
function runFallocate(path: string, size: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'fallocate',
      ['-o', '0', '-l', String(size), '--', path],
      { signal, timeout: 120_000, encoding: 'utf8' },
      (err, _stdout, stderr) => {
        if (err) reject(new Error(stderr.trim() || err.message, { cause: err }));
        else resolve();
      },
    );
  });
}

/**
 * Writes zeros from `from` to `size` with `concurrency` writes in flight,
 * all from one shared zero chunk, so memory stays at one chunk whatever the size.
 */
async function zeroFill(
  file: NodeCacheFile,
  path: string,
  from: number,
  size: number,
  needed: number,
  available: number,
  o: ResolvedOptions,
): Promise<void> {
  const zeros = new Uint8Array(Math.min(o.chunkSize, Math.max(1, size - from)));
  let next = from;
  let written = from;
  let stopped = false; // set by the first failure so that the other workers stop too
  const worker = async (): Promise<void> => {
    while (next < size && !stopped) {
      if (o.signal?.aborted) stopped = true;
      throwIfAborted(o.signal);
      const position = next;
      const length = Math.min(zeros.length, size - position);
      next += length;
      try {
        await file.write(length === zeros.length ? zeros : zeros.subarray(0, length), position);
      } catch (err) {
        stopped = true;
        if (errnoCode(err) === 'ENOSPC') throw new NotEnoughSpaceError(path, needed, available, { cause: err });
        throw ioError(path, 'write', 'write zeros to', err);
      }
      written += length;
      o.onProgress?.(written, size);
    }
  };
  // allSettled, not all: the file must not be closed while a write is in flight.
  const results = await Promise.allSettled(Array.from({ length: o.concurrency }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Bytes this user may still allocate on the filesystem holding `path`, and its block size. */
async function freeSpace(path: string): Promise<{ available: number; blockSize: number }> {
  const fs = await wrapIo(path, 'read', 'statfs the directory of', () => statfs(dirname(path), { bigint: true }));
  // bavail (not bfree): blocks reserved for root are not ours to use.
  const bytes = fs.bavail * fs.bsize;
  return {
    available: bytes > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(bytes),
    blockSize: Math.max(1, Number(fs.bsize)),
  };
}

async function statIfExists(path: string): Promise<{ size: number; blocks: number } | undefined> {
  try {
    // lstat: a link at the path is refused, never followed to a file elsewhere.
    const s = await lstat(path);
    if (!s.isFile()) throw unsafePathError(path, fileKind(s), undefined);
    return { size: s.size, blocks: s.blocks };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    if (err instanceof BlockfetchError) throw err;
    throw ioError(path, 'read', 'stat', err);
  }
}

async function wrapIo<T>(path: string, kind: 'read' | 'write', what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BlockfetchError) throw err;
    throw ioError(path, kind, what, err);
  }
}

/** A failed system call, coded by whether it read (stat, statfs) or changed the disk. */
function ioError(path: string, kind: 'read' | 'write', what: string, err: unknown): BlockfetchError {
  const code = kind === 'read' ? 'BLOCKFETCH_DISK_READ' : 'BLOCKFETCH_DISK_WRITE';
  return new BlockfetchError(code, `cannot ${what} ${path}: ${messageOf(err)}`, { cause: err });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('reserving space was aborted', { cause: signal.reason });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
