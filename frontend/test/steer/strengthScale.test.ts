import { describe, expect, it } from "vitest";
import { strengthScale } from "../../src/steer/strengthScale";

describe("strengthScale", () => {
  const scale = strengthScale({ min: -1000, max: 1000, unit: 5 });

  it("puts zero in the middle of a symmetric range", () => {
    expect(scale.position(0)).toBe(500);
    expect(scale.value(500)).toBe(0);
  });

  it("covers both signs, monotonically", () => {
    const values = [0, 100, 250, 400, 499, 501, 600, 750, 900, 1000].map((p) => scale.value(p));
    for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]!);
    expect(scale.value(0)).toBe(-1000);
    expect(scale.value(1000)).toBe(1000);
  });

  it("is log-like: each decade of strength gets a similar share of the track", () => {
    const d1 = scale.position(50) - scale.position(5);
    const d2 = scale.position(500) - scale.position(50);
    expect(Math.abs(d1 - d2)).toBeLessThan(25);
  });

  it("round-trips strengths to two significant digits of the unit", () => {
    for (const v of [-400, -20, -5, 5, 12, 20, 300]) {
      expect(scale.value(scale.position(v))).toBeCloseTo(v, 0);
    }
  });

  it("snaps positions next to zero to exactly zero", () => {
    expect(scale.value(502)).toBe(0);
    expect(scale.value(497)).toBe(0);
  });

  it("labels ticks in multiples of the max activation and marks +1× as the max", () => {
    const ticks = scale.ticks();
    const max = ticks.filter((t) => t.max);
    expect(max).toHaveLength(1);
    expect(max[0]!.value).toBe(5);
    expect(max[0]!.position).toBeCloseTo(scale.position(5), 0);
    expect(ticks.map((t) => t.label)).toContain("-1×");
    expect(ticks.map((t) => t.label)).toContain("0");
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!.position).toBeGreaterThan(ticks[i - 1]!.position);
  });

  it("formats a raw strength in units of the max activation", () => {
    expect(scale.format(10)).toBe("2×");
    expect(scale.format(-2.5)).toBe("-0.5×");
    expect(scale.format(0)).toBe("0");
  });

  it("clamps values outside the range to the track ends", () => {
    expect(scale.position(5000)).toBe(1000);
    expect(scale.position(-5000)).toBe(0);
  });

  it("throws on a range that does not cover both signs or a bad unit", () => {
    expect(() => strengthScale({ min: 0, max: 10 })).toThrow("invalid strength range");
    expect(() => strengthScale({ min: -10, max: 10, unit: 0 })).toThrow("invalid unit: 0");
  });
});
