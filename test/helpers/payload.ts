/**
 * Self-describing test payloads: every 4-byte little-endian word holds its
 * own byte offset (modulo 2^32), so a block written to the wrong place names
 * the place it came from, and any slice can be generated without the rest.
 *
 * @example
 * ```ts
 * const whole = payload(0, 1023);          // 1 KiB
 * payload(6, 9).equals(whole.subarray(6, 10)) // true: slices agree
 * firstMisplaced(received, 0)               // -1 when every word is where it belongs
 * ```
 */

import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The bytes `from..to` (INCLUSIVE, like a ByteRange) of the payload. Any
 * offsets work, aligned to 4 or not; an empty Buffer when `to < from`.
 */
export function payload(from: number, to: number): Buffer {
  if (to < from) return Buffer.alloc(0);
  const start = from - (from % 4);
  const words = Math.ceil((to + 1 - start) / 4);
  const buf = Buffer.allocUnsafe(words * 4);
  if (LITTLE_ENDIAN && buf.byteOffset % 4 === 0) {
    // A typed-array store per word is several times faster than writeUInt32LE,
    // which matters for tests that generate hundreds of MiB.
    const view = new Uint32Array(buf.buffer, buf.byteOffset, words);
    for (let i = 0; i < words; i++) view[i] = (start + i * 4) % 0x1_0000_0000;
  } else {
    for (let i = 0; i < words; i++) buf.writeUInt32LE((start + i * 4) % 0x1_0000_0000, i * 4);
  }
  return buf.subarray(from - start, to + 1 - start);
}

/**
 * The byte offset of the first 4-byte word of `data` (which starts at file
 * offset `offset`, a multiple of 4) that does not hold its own offset, or
 * -1 when all do. A trailing partial word is compared byte by byte.
 */
export function firstMisplaced(data: Uint8Array, offset = 0): number {
  if (offset % 4 !== 0) throw new Error(`firstMisplaced: offset must be a multiple of 4, got ${offset}`);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const whole = buf.length - (buf.length % 4);
  if (LITTLE_ENDIAN && buf.byteOffset % 4 === 0) {
    const view = new Uint32Array(buf.buffer, buf.byteOffset, whole / 4);
    for (let i = 0; i < view.length; i++) {
      if (view[i] !== (offset + i * 4) % 0x1_0000_0000) return offset + i * 4;
    }
  } else {
    for (let i = 0; i < whole; i += 4) {
      if (buf.readUInt32LE(i) !== (offset + i) % 0x1_0000_0000) return offset + i;
    }
  }
  if (whole < buf.length) {
    const expected = payload(offset + whole, offset + buf.length - 1);
    if (!expected.equals(buf.subarray(whole))) return offset + whole;
  }
  return -1;
}
