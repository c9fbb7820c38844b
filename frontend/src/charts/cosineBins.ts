import { bin } from "d3";
import type { HistogramBin } from "./histogramBin";

/**
 * Histogram bins of each feature's largest decoder cosine to another feature, `count` equal
 * bins over [lo, 1] where lo is 0, or −1 when some cosine is negative; null and NaN are left out.
 */
export function cosineBins(cosines: (number | null)[], count = 20): HistogramBin[] {
  const values = cosines.filter((c): c is number => c !== null && Number.isFinite(c)).map((c) => Math.min(1, Math.max(-1, c)));
  if (!values.length) return [];
  const lo = values.some((c) => c < 0) ? -1 : 0;
  const step = (1 - lo) / count;
  const thresholds = Array.from({ length: count - 1 }, (_, i) => lo + step * (i + 1));
  // d3.bin puts x == 1 into the last bin because the domain ends at 1 exactly.
  return bin()
    .domain([lo, 1])
    .thresholds(thresholds)(values)
    .map((b) => ({ x0: b.x0 as number, x1: b.x1 as number, count: b.length }));
}
