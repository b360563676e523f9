/**
 * Which boot of the machine this is: the kernel's random `boot_id`, new at
 * every boot. A kill -9 leaves the page cache, and so every completed
 * write(2), intact; only a kernel crash or a power cut can drop written but
 * unsynced bytes, and both end in a new boot. So blocks written but not yet
 * fsynced can be recorded in the index under this id, trusted by a resume on
 * the same boot and dropped after a reboot (`docs/index-format.md`).
 *
 * @module
 */
import { readFileSync } from 'node:fs';

/** Where Linux publishes the id of the running boot. */
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

let cached: string | null | undefined;

/**
 * The id of the running boot, or null where the system does not say (not
 * Linux, or `/proc` not mounted): then nothing unsynced is ever trusted.
 * Read once per process.
 *
 * @example
 * ```ts
 * currentBootId() // '3f1c9c3e-5a0e-4d8e-9c55-0b9d3a6f2e11' on Linux, null elsewhere
 * ```
 */
export function currentBootId(): string | null {
  if (cached === undefined) {
    try {
      const text = readFileSync(BOOT_ID_PATH, 'utf8').trim();
      cached = isBootId(text) ? text : null;
    } catch {
      cached = null;
    }
  }
  return cached;
}

/**
 * True for a value that can stand as a boot id in an index: 1 to 64
 * characters of letters, digits and `-` (the kernel's is a 36-character UUID).
 *
 * @example
 * ```ts
 * isBootId('3f1c9c3e-5a0e-4d8e-9c55-0b9d3a6f2e11') // true
 * isBootId('')                                     // false
 * ```
 */
export function isBootId(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(value);
}
