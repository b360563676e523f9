/**
 * A fake filesystem for crash-consistency tests: it keeps what is durable
 * apart from what is only written, and at a simulated power cut throws away
 * an arbitrary part of what was not made durable.
 *
 * The model (the worst that POSIX and Linux filesystems allow, within reason):
 *
 * - File contents: every write and truncate is pending until `sync()` of
 *   that file. At a cut, EACH pending operation independently survives or
 *   not (coin flip), a surviving write may be torn (only a prefix of it, cut
 *   at a 512-byte sector boundary, reaches the disk), and survivors are
 *   applied in their original order. So writes can reach the disk partly and
 *   out of order, exactly what fsync exists to prevent.
 * - Directory entries (create, rename, remove): pending until `syncDir()`.
 *   Metadata is journaled in order, so at a cut a random PREFIX of the
 *   pending directory operations survives: a rename may or may not have
 *   happened, but never before the create it depends on. A file whose name
 *   did not survive is gone, whatever was synced into it.
 * - One directory: every path is in it, and `syncDir` of any path syncs it.
 *
 * - A slow disk: with `syncTicks`, a file's `sync()` spends that many extra
 *   turns of the event loop (for that file's path) before it returns, and
 *   makes durable only what was written before it was called (as fsync
 *   promises), so writes and index saves run while a data sync of hundreds
 *   of MB is under way, as under real writeback.
 *
 * Power is cut when the fs has done `cutAfter` operations (writes, syncs,
 * truncates, creates, renames, removes, directory syncs): that operation and
 * every later one reject with {@link PowerCutError}. {@link CrashFs.reboot}
 * then gives a new fs holding only what survived; {@link CrashFs.afterKill}
 * gives what a process sees after the writer was killed (kill -9) with the
 * power on: everything the writer did, pending or not (the page cache).
 */
import type { CacheFileReadWriter, CacheFileSystem } from '../../src/cache/file.js';

/** What every operation rejects with once the power is off. */
export class PowerCutError extends Error {
  constructor() {
    super('power cut');
    this.name = 'PowerCutError';
  }
}


type FileOp = { kind: 'write'; position: number; data: Uint8Array } | { kind: 'truncate'; length: number };
type DirOp = { kind: 'link'; name: string; inode: number } | { kind: 'unlink'; name: string };

interface Inode {
  durable: Uint8Array;
  pending: FileOp[];
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, '${path}'`), { code: 'ENOENT' });
}

function applyOp(bytes: Uint8Array, op: FileOp): Uint8Array {
  if (op.kind === 'truncate') {
    const out = new Uint8Array(op.length);
    out.set(bytes.subarray(0, Math.min(op.length, bytes.length)));
    return out;
  }
  const end = op.position + op.data.length;
  const out = end > bytes.length ? new Uint8Array(end) : bytes;
  if (out !== bytes) out.set(bytes);
  out.set(op.data, op.position);
  return out;
}

/** The fake filesystem. Build one, set up files, `syncAll()`, then arm a cut with `cutAfter`. */
export class CrashFs implements CacheFileSystem {
  readonly #inodes = new Map<number, Inode>();
  #nextInode = 1;
  /** name → inode, as it survives a cut. */
  #durableDir = new Map<string, number>();
  /** name → inode, as processes see it now. */
  readonly #liveDir = new Map<string, number>();
  #pendingDir: DirOp[] = [];
  #ops = 0;
  #cutAt = Number.POSITIVE_INFINITY;
  #off = false;
  readonly #syncTicks: (path: string) => number;

  /** @param options.syncTicks - Extra event-loop turns a sync of the file at `path` takes (none by default). */
  constructor(options: { syncTicks?: (path: string) => number } = {}) {
    this.#syncTicks = options.syncTicks ?? (() => 0);
  }

  /** Operations done so far (each write, sync, truncate, create, rename, remove, syncDir counts one). */
  get operations(): number {
    return this.#ops;
  }

  /** True once the power has been cut. */
  get powerOff(): boolean {
    return this.#off;
  }

  /** Cuts the power when `n` more operations have been attempted (the n-th fails). */
  cutAfter(n: number): void {
    this.#cutAt = this.#ops + n;
  }

  /** Makes everything durable (for setting up a starting state). */
  syncAll(): void {
    for (const inode of this.#inodes.values()) this.#syncInode(inode);
    this.#durableDir = new Map(this.#liveDir);
    this.#pendingDir = [];
  }

  /**
   * The state after the power comes back: a new fs holding the durable state
   * plus a random part of what was pending, as described in the module doc.
   */
  reboot(random: () => number): CrashFs {
    const next = new CrashFs();
    const survivingDirOps = Math.floor(random() * (this.#pendingDir.length + 1));
    const dir = new Map(this.#durableDir);
    for (const op of this.#pendingDir.slice(0, survivingDirOps)) {
      if (op.kind === 'link') dir.set(op.name, op.inode);
      else dir.delete(op.name);
    }
    const copied = new Map<number, number>();
    for (const [name, id] of dir) {
      let newId = copied.get(id);
      if (newId === undefined) {
        const inode = this.#inodes.get(id);
        if (inode === undefined) throw new Error(`crash-fs bug: no inode ${id}`);
        let bytes: Uint8Array = inode.durable.slice();
        for (const op of inode.pending) {
          if (random() < 0.5) continue; // lost
          if (op.kind === 'write' && random() < 0.25) {
            // Torn: only the first few sectors reached the disk.
            const sectors = Math.floor(random() * Math.ceil(op.data.length / 512));
            bytes = applyOp(bytes, { ...op, data: op.data.subarray(0, sectors * 512) });
          } else {
            bytes = applyOp(bytes, op);
          }
        }
        newId = next.#nextInode++;
        next.#inodes.set(newId, { durable: bytes, pending: [] });
        copied.set(id, newId);
      }
      next.#liveDir.set(name, newId);
    }
    next.#durableDir = new Map(next.#liveDir);
    return next;
  }

  /**
   * The state after the writer was killed (its later operations fail, as
   * after a cut) while the power stayed on: a new fs holding everything as
   * processes saw it, pending writes and directory changes included, since
   * the kernel still has them and writes them back.
   */
  afterKill(): CrashFs {
    const next = new CrashFs();
    const copied = new Map<number, number>();
    for (const [name, id] of this.#liveDir) {
      let newId = copied.get(id);
      if (newId === undefined) {
        newId = next.#nextInode++;
        next.#inodes.set(newId, { durable: this.#live(this.#inode(id)).slice(), pending: [] });
        copied.set(id, newId);
      }
      next.#liveDir.set(name, newId);
    }
    next.#durableDir = new Map(next.#liveDir);
    return next;
  }

  /** The current (live) bytes of `path`, as a process would read them. */
  contents(path: string): Uint8Array {
    const id = this.#liveDir.get(path);
    if (id === undefined) throw enoent(path);
    return this.#live(this.#inode(id));
  }

  /** Names in the directory now. */
  names(): string[] {
    return [...this.#liveDir.keys()].sort();
  }

  // ---- CacheFileSystem ----------------------------------------------------

  async openExisting(path: string): Promise<CacheFileReadWriter> {
    await this.#tick(false);
    const id = this.#liveDir.get(path);
    if (id === undefined) throw enoent(path);
    return new CrashFile(this, path, id);
  }

  async create(path: string): Promise<CacheFileReadWriter> {
    await this.#tick(true);
    let id = this.#liveDir.get(path);
    if (id === undefined) {
      id = this.#nextInode++;
      this.#inodes.set(id, { durable: new Uint8Array(0), pending: [] });
      this.#liveDir.set(path, id);
      this.#pendingDir.push({ kind: 'link', name: path, inode: id });
    } else {
      this.#inode(id).pending.push({ kind: 'truncate', length: 0 }); // O_TRUNC
    }
    return new CrashFile(this, path, id);
  }

  async readFile(path: string, maxBytes: number): Promise<Uint8Array> {
    await this.#tick(false);
    const bytes = this.contents(path);
    if (bytes.length > maxBytes) throw Object.assign(new Error(`EFBIG: ${path}`), { code: 'EFBIG' });
    return bytes.slice();
  }

  async rename(from: string, to: string): Promise<void> {
    await this.#tick(true);
    const id = this.#liveDir.get(from);
    if (id === undefined) throw enoent(from);
    this.#liveDir.delete(from);
    this.#liveDir.set(to, id);
    this.#pendingDir.push({ kind: 'link', name: to, inode: id }, { kind: 'unlink', name: from });
  }

  async remove(path: string): Promise<void> {
    await this.#tick(true);
    if (!this.#liveDir.delete(path)) return;
    this.#pendingDir.push({ kind: 'unlink', name: path });
  }

  async syncDir(_dir: string): Promise<void> {
    await this.#tick(true);
    this.#durableDir = new Map(this.#liveDir);
    this.#pendingDir = [];
  }

  // ---- used by CrashFile ----------------------------------------------------

  /** @internal */
  async fileOp<T>(counted: boolean, fn: () => T): Promise<T> {
    await this.#tick(counted);
    return fn();
  }

  /** @internal */
  inodeOf(id: number): Inode {
    return this.#inode(id);
  }

  /** @internal */
  live(id: number): Uint8Array {
    return this.#live(this.#inode(id));
  }

  /** @internal An fsync of inode `id`: durable up to the writes made before the call. */
  async syncFile(id: number, path: string): Promise<void> {
    await this.#tick(true);
    const inode = this.#inode(id);
    const ticks = this.#syncTicks(path);
    if (ticks === 0) {
      this.#syncInode(inode);
      return;
    }
    const covered = inode.pending.slice();
    for (let i = 0; i < ticks; i++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#off) throw new PowerCutError();
    }
    // Only what was pending at the call; later writes stay pending.
    let bytes: Uint8Array = inode.durable.slice();
    for (const op of covered) bytes = applyOp(bytes, op);
    inode.durable = bytes;
    inode.pending = inode.pending.filter((op) => !covered.includes(op));
  }

  // ---- internals ------------------------------------------------------------

  /**
   * Every operation yields to the event loop first (so concurrent callers
   * interleave as with real I/O), then fails if the power is, or goes, off.
   */
  async #tick(counted: boolean): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.#off) throw new PowerCutError();
    if (!counted) return;
    this.#ops++;
    if (this.#ops >= this.#cutAt) {
      this.#off = true;
      throw new PowerCutError();
    }
  }

  #inode(id: number): Inode {
    const inode = this.#inodes.get(id);
    if (inode === undefined) throw new Error(`crash-fs bug: no inode ${id}`);
    return inode;
  }

  #live(inode: Inode): Uint8Array {
    let bytes = inode.durable;
    for (const op of inode.pending) bytes = applyOp(bytes === inode.durable ? bytes.slice() : bytes, op);
    return bytes;
  }

  #syncInode(inode: Inode): void {
    inode.durable = this.#live(inode).slice();
    inode.pending = [];
  }
}

/** A file open on a {@link CrashFs}: follows its inode across renames, like a real descriptor. */
class CrashFile implements CacheFileReadWriter {
  readonly name: string;
  readonly #fs: CrashFs;
  readonly #id: number;
  #closed = false;

  constructor(fs: CrashFs, name: string, id: number) {
    this.#fs = fs;
    this.name = name;
    this.#id = id;
  }

  read(buffer: Uint8Array, position: number): Promise<number> {
    return this.#fs.fileOp(false, () => {
      this.#checkOpen();
      const bytes = this.#fs.live(this.#id);
      const chunk = bytes.subarray(Math.min(position, bytes.length), Math.min(position + buffer.length, bytes.length));
      buffer.set(chunk);
      return chunk.length;
    });
  }

  write(data: Uint8Array, position: number): Promise<void> {
    return this.#fs.fileOp(true, () => {
      this.#checkOpen();
      // Copy: the caller may reuse its buffer once the write resolved.
      this.#fs.inodeOf(this.#id).pending.push({ kind: 'write', position, data: data.slice() });
    });
  }

  async sync(): Promise<void> {
    this.#checkOpen();
    await this.#fs.syncFile(this.#id, this.name);
  }

  truncate(length: number): Promise<void> {
    return this.#fs.fileOp(true, () => {
      this.#checkOpen();
      this.#fs.inodeOf(this.#id).pending.push({ kind: 'truncate', length });
    });
  }

  size(): Promise<number> {
    return this.#fs.fileOp(false, () => {
      this.#checkOpen();
      return this.#fs.live(this.#id).length;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkOpen(): void {
    if (this.#closed) throw Object.assign(new Error(`EBADF: ${this.name} is closed`), { code: 'EBADF' });
  }
}
