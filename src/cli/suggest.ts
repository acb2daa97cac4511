/**
 * "Did you mean": the closest of a few known words to a mistyped one (a command,
 * an option), as git and the nats CLI suggest. Optimal string alignment distance
 * (Levenshtein with adjacent swaps counted once: `sned` is one step from `send`).
 */

/** Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known word closest to `word`, if close enough to be what was meant: at most
 * 2 edits (1 for words of 4 letters or fewer), or `word` is the start of exactly
 * one of them (`--cou` for `--count`). Undefined when nothing is close or two are
 * equally close.
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  const starting = known.filter((k) => word.length >= 3 && k.startsWith(word));
  if (starting.length === 1) return starting[0];
  const most = word.replace(/^-+/, '').length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const k of known) {
    const distance = editDistance(word, k);
    if (distance < bestDistance) [best, bestDistance, tie] = [k, distance, false];
    else if (distance === bestDistance) tie = true;
  }
  return bestDistance <= most && !tie ? best : undefined;
}
