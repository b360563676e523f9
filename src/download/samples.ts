/**
 * Small statistics over the last few measurements (request rates, head
 * waits): the downloader's tail and its `RequestSizer` keep such windows.
 *
 * @example
 * ```ts
 * const rates: number[] = [];
 * for (const r of [5, 1, 9, 3]) keepLast(rates, r, 3); // rates: [1, 9, 3]
 * median(rates); // 3
 * upperQuartile(rates); // 9
 * ```
 */

/** Appends `value` to `samples`, dropping the oldest beyond `kept`. */
export function keepLast(samples: number[], value: number, kept: number): void {
  samples.push(value);
  if (samples.length > kept) samples.shift();
}

/** The median of `values`; undefined when there are none. */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The value a quarter of `values` are at or above (nearest rank); undefined when there are none. */
export function upperQuartile(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.75))];
}
