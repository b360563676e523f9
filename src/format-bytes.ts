/**
 * Byte counts for people, in IEC units: the one formatter behind every
 * size in a message, whether the core's errors or the CLI's display.
 */

const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * Formats a byte count for a person in IEC units with three significant
 * digits: `1536` → `1.50 KiB`, `16777216` → `16.0 MiB`, `512` → `512 B`.
 *
 * @example
 * ```ts
 * formatBytes(67108864) // '64.0 MiB'
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '?';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < IEC_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const sign = bytes < 0 ? '-' : '';
  if (unit === 0) return `${sign}${value} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${sign}${value.toFixed(digits)} ${IEC_UNITS[unit]}`;
}
