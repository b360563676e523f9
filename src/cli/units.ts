/**
 * Byte sizes and rates as people type and read them: `16MiB`, `50MB/s`.
 *
 * IEC units are powers of two (`KiB` = 2^10, `MiB` = 2^20, ...), SI units
 * powers of ten (`kB`/`KB` = 10^3, `MB` = 10^6, ...), as in the standards and
 * as `ls -h --si`, `dd` and `curl` use them. The unit letters are matched
 * without regard to case, except that a lower-case `b` on its own is still
 * bytes: blockfetch never measures bits, so `16mb` is 16,000,000 bytes rather
 * than a surprise.
 *
 * Written here rather than taken from a package: `bytes-iec` truncates
 * `1.5B` to 1 and accepts negative sizes silently, and `xbytes` reads `mib`
 * as mebibits.
 */
import { InvalidArgumentError } from '../errors.js';
import { formatBytes } from '../format-bytes.js';

export { formatBytes };

const UNIT_FACTORS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1e3],
  ['kb', 1e3],
  ['m', 1e6],
  ['mb', 1e6],
  ['g', 1e9],
  ['gb', 1e9],
  ['t', 1e12],
  ['tb', 1e12],
  ['ki', 2 ** 10],
  ['kib', 2 ** 10],
  ['mi', 2 ** 20],
  ['mib', 2 ** 20],
  ['gi', 2 ** 30],
  ['gib', 2 ** 30],
  ['ti', 2 ** 40],
  ['tib', 2 ** 40],
]);

const SIZE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/**
 * Parses a byte size such as `16MiB`, `1.5GB`, `4096` or `64 KiB` into a
 * whole number of bytes. A fraction is allowed only where the result is a
 * whole number of bytes (`0.5KiB` is 512; `1.5B` is rejected).
 *
 * @param text what the person typed.
 * @param option the option's name for the error message, e.g. `--block-size`.
 * @throws {InvalidArgumentError} naming the option and the value when the
 *   text is not a size, is negative, or is not a whole number of bytes.
 *
 * @example
 * ```ts
 * parseByteSize('16MiB', '--block-size') // 16777216
 * parseByteSize('50MB', '--rate')        // 50000000
 * ```
 */
export function parseByteSize(text: string, option: string): number {
  const match = SIZE_PATTERN.exec(text);
  const factor = match ? UNIT_FACTORS.get((match[2] ?? '').toLowerCase()) : undefined;
  if (!match || factor === undefined) {
    throw new InvalidArgumentError(
      `${option} must be a size in bytes such as 16MiB, 64KiB or 50MB, got ${JSON.stringify(text)}`,
      { hint: 'units: B, KiB, MiB, GiB, TiB (powers of 2) or kB, MB, GB, TB (powers of 10)' },
    );
  }
  const bytes = Number(match[1]) * factor;
  // Float arithmetic on a decimal fraction can land a hair off a whole number
  // (0.1 * 1e9); accept what is within a millionth of a byte of one.
  const rounded = Math.round(bytes);
  if (Math.abs(bytes - rounded) > 1e-6 || !Number.isSafeInteger(rounded)) {
    throw new InvalidArgumentError(`${option} must be a whole number of bytes, got ${JSON.stringify(text)} (${bytes} bytes)`);
  }
  return rounded;
}

/**
 * Parses a transfer rate such as `50MB/s`, `8MiB/s` or `1000000` (bytes per
 * second) into bytes per second. The `/s` suffix is optional.
 *
 * @throws {InvalidArgumentError} naming the option and the value.
 *
 * @example
 * ```ts
 * parseRate('50MB/s', '--rate') // 50000000
 * ```
 */
export function parseRate(text: string, option: string): number {
  const withoutPerSecond = text.replace(/\s*\/\s*s(?:ec)?\s*$/i, '');
  const rate = parseByteSize(withoutPerSecond, option);
  if (rate < 1) {
    throw new InvalidArgumentError(`${option} must be at least 1 byte per second, got ${JSON.stringify(text)}`);
  }
  return rate;
}

/**
 * A byte count as one would type it after a flag, exactly: the largest IEC
 * unit that divides it, no space (`2097152` → `2MiB`, `4096` → `4KiB`,
 * `1000` → `1000B`). For `--help` and hints that quote a default, so that
 * the text and {@link parseByteSize} agree on the value.
 *
 * @example
 * ```ts
 * formatSizeOption(16 * 2 ** 20) // '16MiB'
 * parseByteSize(formatSizeOption(n), '--x') === n // for every whole n >= 0
 * ```
 */
export function formatSizeOption(bytes: number): string {
  for (const [unit, factor] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes !== 0 && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * A duration in ms as one would type it after `--timeout`, exactly: the
 * largest of h, m, s that divides it, else ms (`30000` → `30s`, `1500` → `1500ms`).
 *
 * @example
 * ```ts
 * formatDurationOption(30_000) // '30s'
 * formatDurationOption(120_000) // '2m'
 * ```
 */
export function formatDurationOption(ms: number): string {
  for (const [unit, factor] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms !== 0 && ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return `${ms}ms`;
}

/** Formats a rate in bytes per second: `formatRate(52428800)` → `50.0 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * Formats a duration in milliseconds for a person: `850ms`, `12.3s`,
 * `4m05s`, `2h03m`. `?` for a value that is not finite (an unknown ETA).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return `${m}m${String(s).padStart(2, '0')}s`;
}
