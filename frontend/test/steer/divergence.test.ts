import { describe, expect, it } from "vitest";
import { divergeOffset } from "../../src/steer/divergeOffset";
import { divergence } from "../../src/steer/divergence";

describe("divergence", () => {
  it("is the first differing char", () => {
    expect(divergence(" the cat sat", " the car sat")).toBe(7);
  });

  it("is the first differing token", () => {
    expect(divergence([" the", " cat", " sat"], [" the", " dog", " sat"])).toBe(1);
  });

  it("is unknown while the shorter row is still streaming and agrees so far", () => {
    expect(divergence(" the", " the cat", false, false)).toBeNull();
  });

  it("is the end of the shorter row once that row is complete", () => {
    expect(divergence(" the", " the cat", true, false)).toBe(4);
  });

  it("is null for identical complete rows", () => {
    expect(divergence("abc", "abc")).toBeNull();
  });
});

describe("divergeOffset", () => {
  const row = (text: string, tokens: unknown[] | null = null, done = true) => ({ text, tokens, done });

  it("snaps to the start of the first differing token when token strings are known", () => {
    const a = row(" the cat sat", [" the", " cat", " sat"]);
    const b = row(" the car sat", [" the", " car", " sat"]);
    expect(divergeOffset(a, b)).toBe(4);
  });

  it("falls back to chars with token ids", () => {
    expect(divergeOffset(row(" the cat", [1, 2]), row(" the car", [1, 3]))).toBe(7);
  });

  it("falls back to chars while streaming", () => {
    expect(divergeOffset(row(" the cat", null, false), row(" the dog", null, false))).toBe(5);
  });
});
