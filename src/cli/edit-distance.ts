/**
 * How far apart two words are, for "did you mean" suggestions.
 *
 * Written here rather than taken from npm: `fastest-levenshtein` and `leven`
 * (both small and well kept) compute plain Levenshtein distance, which counts
 * a swap of two neighbouring letters (`--concurnecy`), the commonest typo, as
 * two edits. The optimal-string-alignment variant of Damerau–Levenshtein
 * counts it as one, and on option names of a few letters it is twenty lines.
 */

/**
 * The optimal-string-alignment distance between `a` and `b`: the fewest
 * insertions, deletions, substitutions and swaps of adjacent characters
 * that turn one into the other (no substring edited twice).
 *
 * @example
 * ```ts
 * editDistance('concurency', 'concurrency') // 1 (a letter missing)
 * editDistance('concurnecy', 'concurrency') // 2
 * editDistance('retires', 'retries')        // 1 (two letters swapped)
 * ```
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: the distance between a's first i characters and b's first j.
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}
