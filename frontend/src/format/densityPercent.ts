/**
 * A density (fraction of tokens) as every page writes it: a percentage to 3 significant
 * digits, in plain decimals down to 0.0001% and "<0.0001%" below; "–" for a missing value.
 * Mirrors the `percent` template filter (workers/engine/explain.py `percent`).
 */
export function densityPercent(fraction: number | null | undefined): string {
  if (fraction == null || !Number.isFinite(fraction)) return "–";
  const value = fraction * 100;
  if (value === 0) return "0%";
  if (value < 1e-4) return "<0.0001%";
  return `${+value.toPrecision(3)}%`;
}
