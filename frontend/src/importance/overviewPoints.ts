import type { ImportancePoint } from "../charts/importanceScatter";
import type { ImportanceOverview } from "./importanceTypes";

/** The scatter's points (features with a finite importance and a positive density) and how many live features are left out. */
export function overviewPoints(o: ImportanceOverview): { points: ImportancePoint[]; omitted: number } {
  const points: ImportancePoint[] = [];
  o.index.forEach((index, i) => {
    const importance = o.importance[i] ?? Number.NaN;
    const density = o.density[i] ?? 0;
    if (Number.isFinite(importance) && density > 0) points.push({ index, density, importance });
  });
  return { points, omitted: Math.max(0, o.n_live - points.length) };
}
