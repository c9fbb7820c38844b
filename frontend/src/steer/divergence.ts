/**
 * Where two continuations part: the first index at which `a` and `b` differ (chars of two
 * strings, or items of two token lists), or null while it cannot be known yet. While one is
 * still streaming and is a prefix of the other, they may still agree, so the answer is null;
 * once the shorter one is complete, they part at its end. Identical complete rows: null.
 */
export function divergence<T>(a: ArrayLike<T>, b: ArrayLike<T>, aComplete = true, bComplete = true): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  if (a.length === b.length) return null;
  const shorterComplete = a.length < b.length ? aComplete : bComplete;
  return shorterComplete ? n : null;
}
