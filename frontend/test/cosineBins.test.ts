import { describe, expect, it } from "vitest";
import { cosineBins } from "../src/charts/cosineBins";

describe("cosineBins", () => {
  it("bins cosines over [0, 1] with 1 in the last bin", () => {
    const bins = cosineBins([0.1, 0.3, 0.9, 1], 4);
    expect(bins.map((b) => [b.x0, b.x1])).toEqual([[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1]]);
    expect(bins.map((b) => b.count)).toEqual([1, 1, 0, 2]);
  });

  it("spans [-1, 1] when some cosine is negative", () => {
    const bins = cosineBins([-0.5, 0.5], 2);
    expect(bins.map((b) => [b.x0, b.x1, b.count])).toEqual([[-1, 0, 1], [0, 1, 1]]);
  });

  it("leaves out null and NaN; nothing left, no bins", () => {
    expect(cosineBins([null, Number.NaN])).toEqual([]);
    expect(cosineBins([null, 0.5], 2).reduce((n, b) => n + b.count, 0)).toBe(1);
  });
});
