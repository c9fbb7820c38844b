import { describe, expect, it } from "vitest";
import { densityBins } from "../src/charts/densityBins";
import type { MapPoint } from "../src/charts/featureMap";

const point = (density: number, dead = false): MapPoint => ({ index: 0, x: 0, y: 0, density, dead });

describe("densityBins", () => {
  it("bins log10 density of live features between the extremes", () => {
    const bins = densityBins([point(1e-4), point(1e-3), point(1e-2), point(1e-2)], 2);
    expect(bins.map((b) => [b.x0, b.x1])).toEqual([[-4, -3], [-3, -2]]);
    expect(bins.map((b) => b.count)).toEqual([1, 3]);
  });

  it("leaves out dead and never-firing features", () => {
    const bins = densityBins([point(1e-3), point(0), point(1e-2, true)], 4);
    expect(bins.reduce((n, b) => n + b.count, 0)).toBe(1);
  });

  it("no live features, no bins", () => {
    expect(densityBins([point(0)])).toEqual([]);
  });
});
