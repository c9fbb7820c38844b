import { invalid } from "../options/invalid";
import type { HistogramBin } from "./histogramBin";

/**
 * Pairs `edges` (n + 1 ascending bin edges, as stored on a Feature) with `counts` (n).
 * A null or missing count becomes NaN, which the histogram draws as an explicit "no data" bar.
 *
 * @throws Error `invalid edges: <x>` when the lengths disagree or an edge is not finite and ascending.
 */
export function binsFromEdges(edges: ArrayLike<number>, counts: ArrayLike<number | null | undefined>): HistogramBin[] {
  if (edges.length !== counts.length + 1) invalid("edges", `${edges.length} edges for ${counts.length} counts`);
  const bins: HistogramBin[] = [];
  for (let i = 0; i < counts.length; ++i) {
    const x0 = edges[i] as number;
    const x1 = edges[i + 1] as number;
    if (!Number.isFinite(x0) || !Number.isFinite(x1) || x1 < x0) invalid("edges", `[${x0}, ${x1}] at bin ${i}`);
    const c = counts[i];
    bins.push({ x0, x1, count: c == null ? NaN : +c });
  }
  return bins;
}
