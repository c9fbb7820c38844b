import { bin, extent } from "d3";
import type { HistogramBin } from "./histogramBin";
import type { MapPoint } from "./featureMap";

/**
 * Histogram bins of log10(density) over the live features (dead and zero-density ones are
 * left out: they have no logarithm), `count` bins between the observed extremes.
 */
export function densityBins(points: Pick<MapPoint, "density" | "dead">[], count = 30): HistogramBin[] {
  const logs = points.filter((p) => !p.dead && p.density > 0).map((p) => Math.log10(p.density));
  const [lo, hi] = extent(logs);
  if (lo === undefined || hi === undefined) return [];
  const step = (hi - lo || 1) / count;
  const thresholds = Array.from({ length: count - 1 }, (_, i) => lo + step * (i + 1));
  return bin()
    .domain([lo, lo + step * count])
    .thresholds(thresholds)(logs)
    .map((b) => ({ x0: b.x0 as number, x1: b.x1 as number, count: b.length }));
}
