/**
 * The live index file (`X.blockfetch.live`): the index as it is now, saved
 * many times a second without an fsync, trusted only on the boot that wrote
 * it (see docs/index-format.md, "The live index").
 *
 * It is written in place, not replaced by rename: a save is one positional
 * write on the calling thread, so it lands the moment a block is marked and
 * never waits behind the thread pool or the filesystem's journal (a rename
 * per save came 30-300 ms after its snapshot while the disk was busy, and a
 * kill -9 lost everything marked meanwhile). The file holds two slots of
 * `slotBytes` each; saves alternate between them, each slot holding one
 * whole encoded index padded with spaces. A kill -9 can tear only the slot
 * being written (a write into the page cache stops between pages when the
 * process dies), and the other slot holds the save before it. A reader
 * decodes both slots and keeps every valid one: each is a true statement
 * about blocks written on this boot, so their union is too.
 *
 * @module
 */
import { basename, join } from 'node:path';
import { nodeFileSystem, parentDir, type CacheFileReadWriter, type CacheFileSystem } from './file.js';
import { decodeIndex, MAX_INDEX_BYTES, type IndexContents } from './index-format.js';

/** The smallest slot, in bytes: one page, which holds an index of a few thousand blocks. */
const MIN_SLOT_BYTES = 4096;
/** What pads a slot after the encoded index: JSON ignores trailing whitespace. */
const PAD = 0x20;

/**
 * Writes a live index in place: two slots, saves alternating between them.
 * Create it with {@link LiveIndexWriter.create}; {@link readLiveIndex} reads
 * what it wrote.
 *
 * @example
 * ```ts
 * const live = await LiveIndexWriter.create('/data/big.iso.blockfetch.live', encodeIndex(contents));
 * live.save(encodeIndex(laterContents));   // one pwrite, now; no fsync
 * await live.close();
 * ```
 */
export class LiveIndexWriter {
  /** The live file's path. */
  readonly path: string;
  readonly #fs: CacheFileSystem;
  #file: CacheFileReadWriter;
  /** The size of each slot: the file is two of them. */
  #slotBytes: number;
  /** The slot the next save writes: 0 or 1. */
  #next = 0;
  /** A larger layout being put in place (a save outgrew the slots); saves wait for it. */
  #growing: Promise<void> | undefined;
  /** The newest save made while the layout was growing, written once it is in place. */
  #pending: Uint8Array | undefined;
  /** The first failure: after it the writer saves nothing more (the durable index still does its job). */
  #failure: unknown;

  private constructor(path: string, fs: CacheFileSystem, file: CacheFileReadWriter, slotBytes: number) {
    this.path = path;
    this.#fs = fs;
    this.#file = file;
    this.#slotBytes = slotBytes;
  }

  /**
   * Creates the live file at `path` holding `first` in both slots, atomically:
   * a temp file beside it, renamed over whatever was there (a previous run's
   * live file stays readable until the new one replaces it).
   */
  static async create(path: string, first: Uint8Array, fs: CacheFileSystem = nodeFileSystem): Promise<LiveIndexWriter> {
    const slotBytes = slotBytesFor(first.length);
    const file = await writeLayout(path, fs, first, slotBytes);
    return new LiveIndexWriter(path, fs, file, slotBytes);
  }

  /** The first failure of a save, if any: after one the writer saves nothing more. */
  get failure(): unknown {
    return this.#failure;
  }

  /**
   * Saves `bytes` (an encoded index) into the next slot with one positional
   * write, issued before this returns. A save that outgrows the slots starts
   * a new, larger layout in the background and is written by it. Never
   * throws: a failure is kept in {@link LiveIndexWriter.failure} and ends
   * the writer's saves.
   */
  save(bytes: Uint8Array): void {
    if (this.#failure !== undefined) return;
    if (this.#growing !== undefined) {
      this.#pending = bytes;
      return;
    }
    if (bytes.length > this.#slotBytes) {
      this.#grow(bytes);
      return;
    }
    const slot = padded(bytes, this.#slotBytes);
    const position = this.#next * this.#slotBytes;
    this.#next ^= 1;
    // NodeCacheFile.writev makes its pwritev before returning: the save is
    // in the page cache when this returns, whatever happens to the process.
    const write = this.#file.writev === undefined ? this.#file.write(slot, position) : this.#file.writev([slot], position);
    write.catch((err: unknown) => {
      this.#failure ??= err;
    });
  }

  /** Waits for a layout change under way, then closes the file (the file stays). */
  async close(): Promise<void> {
    await this.#growing;
    await this.#file.close();
  }

  #grow(bytes: Uint8Array): void {
    const slotBytes = slotBytesFor(bytes.length);
    this.#growing = (async () => {
      try {
        const file = await writeLayout(this.path, this.#fs, bytes, slotBytes);
        await this.#file.close().catch(() => undefined);
        this.#file = file;
        this.#slotBytes = slotBytes;
        this.#next = 0;
      } catch (err) {
        this.#failure ??= err;
      } finally {
        this.#growing = undefined;
      }
      const pending = this.#pending;
      this.#pending = undefined;
      if (pending !== undefined) this.save(pending);
    })();
  }
}

/** A slot: `bytes`, then spaces up to `slotBytes`. */
function padded(bytes: Uint8Array, slotBytes: number): Buffer {
  const slot = Buffer.allocUnsafe(slotBytes);
  slot.set(bytes, 0);
  slot.fill(PAD, bytes.length);
  return slot;
}

/** Slots of at least twice `length` (room to grow), in whole pages. */
function slotBytesFor(length: number): number {
  return Math.max(MIN_SLOT_BYTES, Math.ceil((length * 2) / MIN_SLOT_BYTES) * MIN_SLOT_BYTES);
}

/** Writes `bytes` into both slots of a new file of `2 * slotBytes` and renames it to `path`; resolves to the open file. */
async function writeLayout(path: string, fs: CacheFileSystem, bytes: Uint8Array, slotBytes: number): Promise<CacheFileReadWriter> {
  const temp = join(parentDir(path), `.${basename(path)}.tmp`);
  const file = await fs.create(temp);
  try {
    const slot = padded(bytes, slotBytes);
    await file.write(slot, 0);
    await file.write(slot, slotBytes);
    await fs.rename(temp, path);
    return file;
  } catch (err) {
    await file.close().catch(() => undefined);
    await fs.remove(temp).catch(() => undefined);
    throw err;
  }
}

/**
 * Every valid index a live file holds: its two slots (or, for a live file
 * written whole by blockfetch 0.1, the file itself), each decoded and
 * checked. Resolves to an empty list when the file is missing or nothing in
 * it is valid (torn by a power cut, say): the live index is only ever a
 * shortcut, so that is no error. Which of them to trust (this boot's, this
 * download's) is the caller's to decide.
 *
 * @example
 * ```ts
 * for (const contents of await readLiveIndex('/data/big.iso.blockfetch.live')) console.log(contents.written?.cachedBlocks);
 * ```
 */
export async function readLiveIndex(path: string, fs: CacheFileSystem = nodeFileSystem): Promise<IndexContents[]> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path, MAX_INDEX_BYTES);
  } catch {
    return [];
  }
  const whole = tryDecode(bytes, path);
  if (whole !== undefined) return [whole];
  if (bytes.length % (2 * MIN_SLOT_BYTES) !== 0) return [];
  const half = bytes.length / 2;
  return [tryDecode(bytes.subarray(0, half), path), tryDecode(bytes.subarray(half), path)].filter((c): c is IndexContents => c !== undefined);
}

/** `bytes` decoded, without the padding; undefined when they are not a valid index. */
function tryDecode(bytes: Uint8Array, path: string): IndexContents | undefined {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === PAD) end--;
  try {
    return decodeIndex(bytes.subarray(0, end), path);
  } catch {
    return undefined;
  }
}
