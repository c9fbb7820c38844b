import { describe, expect, it } from "vitest";
import { activationColor } from "../src/scales/activationColor";

describe("activationColor", () => {
  it("activationColor(max)(NaN) is the unknown colour", () => {
    const color = activationColor(3);
    expect(color(NaN)).toBe(color.unknown());
    expect(color(null as unknown as number)).toBe(color.unknown());
  });

  it("values above max clamp to the top colour", () => {
    const color = activationColor(3);
    expect(color(30)).toBe(color(3));
  });

  it("zero and negative values are transparent", () => {
    const color = activationColor(3);
    expect(color(0)).toBe("transparent");
    expect(color(-1)).toBe("transparent");
  });

  it("colours darken as the activation grows", () => {
    const color = activationColor(1);
    const lightness = (c: string) => {
      const [r, g, b] = c.match(/\d+/g)!.map(Number);
      return r! + g! + b!;
    };
    expect(lightness(color(0.2))).toBeGreaterThan(lightness(color(0.6)));
    expect(lightness(color(0.6))).toBeGreaterThan(lightness(color(1)));
  });

  it("a max that is not a positive finite number throws invalid max", () => {
    expect(() => activationColor(0)).toThrow("invalid max: 0");
    expect(() => activationColor(NaN)).toThrow("invalid max: NaN");
  });
});
