import { describe, expect, it } from "vitest";
import { densityPercent } from "../src/format/densityPercent";

describe("densityPercent", () => {
  it("writes a density as a percentage with 3 significant digits", () => {
    expect(densityPercent(0.2834)).toBe("28.3%");
    expect(densityPercent(0.000417)).toBe("0.0417%");
    expect(densityPercent(1)).toBe("100%");
  });

  it("keeps tiny densities in plain decimals, and says < below 0.0001%", () => {
    expect(densityPercent(1.5e-6)).toBe("0.00015%");
    expect(densityPercent(2e-9)).toBe("<0.0001%");
    expect(densityPercent(0)).toBe("0%");
  });

  it("writes a missing density as a dash", () => {
    expect(densityPercent(null)).toBe("–");
    expect(densityPercent(Number.NaN)).toBe("–");
  });
});
