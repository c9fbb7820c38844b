import { describe, expect, it } from "vitest";
import { errorTarget } from "../../src/steer/errorTarget";
import { parseContrastPairs } from "../../src/steer/parseContrastPairs";
import { parseFeatureRef } from "../../src/steer/parseFeatureRef";
import type { SteerFeature } from "../../src/steer/steerTypes";

describe("parseFeatureRef", () => {
  it("reads sae#index, sae:index, #index and a bare index", () => {
    expect(parseFeatureRef("demo#12")).toEqual({ sae: "demo", index: 12 });
    expect(parseFeatureRef(" res-8.v2:7 ")).toEqual({ sae: "res-8.v2", index: 7 });
    expect(parseFeatureRef("#3")).toEqual({ sae: null, index: 3 });
    expect(parseFeatureRef("42")).toEqual({ sae: null, index: 42 });
  });

  it("is null for words to search for", () => {
    expect(parseFeatureRef("cats")).toBeNull();
    expect(parseFeatureRef("demo#")).toBeNull();
    expect(parseFeatureRef("#-1")).toBeNull();
  });
});

describe("parseContrastPairs", () => {
  it("reads one pair per line and skips blank lines", () => {
    const text = '{"prompt":"I feel","positive":" great","negative":" awful"}\n\n{"prompt":"It is","positive":" good","negative":" bad"}\r\n';
    expect(parseContrastPairs(text)).toEqual([
      { prompt: "I feel", positive: " great", negative: " awful" },
      { prompt: "It is", positive: " good", negative: " bad" },
    ]);
  });

  it("names the first bad line", () => {
    expect(() => parseContrastPairs('{"prompt":"a","positive":"b","negative":"c"}\nnot json')).toThrow("line 2 is not JSON");
    expect(() => parseContrastPairs('{"prompt":"a","positive":"b"}')).toThrow('line 1: "negative" must be a non-empty string');
    expect(() => parseContrastPairs('{"prompt":"a","positive":"b","negative":"b"}')).toThrow("line 1: positive and negative are identical");
    expect(() => parseContrastPairs('{"prompt":"a","positive":"b","negative":"c","x":1}')).toThrow("line 1 has unknown field(s): x");
  });

  it("refuses nothing at all", () => {
    expect(() => parseContrastPairs("\n \n")).toThrow("no contrast pairs");
  });
});

describe("errorTarget", () => {
  const features: SteerFeature[] = [
    { sae: "demo", index: 12, strength: 1, mode: "add" },
    { sae: "demo", index: 7, strength: 1, mode: "add" },
  ];

  it("puts a message about features[i] beside that feature", () => {
    expect(errorTarget("features[1].strength 5000 is outside the allowed range [-1000, 1000]", null, features)).toEqual({ kind: "feature", position: 1 });
  });

  it("finds a feature named sae:index or sae#index", () => {
    expect(errorTarget("feature demo:7 appears twice with mode add", null, features)).toEqual({ kind: "feature", position: 1 });
    expect(errorTarget("unknown feature demo#12", null, features)).toEqual({ kind: "feature", position: 0 });
  });

  it("puts prompt and setting messages beside those controls", () => {
    expect(errorTarget("prompt is too long: 3000 characters (at most 2000)", null, features)).toEqual({ kind: "prompt" });
    expect(errorTarget("max_new_tokens must be between 1 and 128, got 500", null, features)).toEqual({ kind: "setting", name: "max_new_tokens" });
    expect(errorTarget("top_p must be in (0, 1], got 2", null, features)).toEqual({ kind: "setting", name: "top_p" });
  });

  it("prefers the frame's field when there is one", () => {
    expect(errorTarget("bad", "features.0.strength", features)).toEqual({ kind: "feature", position: 0 });
    expect(errorTarget("bad", "temperature", features)).toEqual({ kind: "setting", name: "temperature" });
  });

  it("anything else is general (rate limit, worker gone)", () => {
    expect(errorTarget("rate limit: at most 240 generations per 60 s; try again in 12 s", null, features)).toEqual({ kind: "general" });
    expect(errorTarget("the worker stopped while generating; try again", null, features)).toEqual({ kind: "general" });
  });

  it("does not crash on a steering vector without an SAE, and finds the vector a message names", () => {
    const withVector = [
      { sae: undefined as unknown as string, index: -1, vector: 3, strength: 4, mode: "add" as const },
      { sae: "", index: -1, vector: 5, strength: 4, mode: "add" as const },
      { sae: "demo", index: 7, strength: 1, mode: "add" as const },
    ];
    expect(errorTarget("steering vector 5 is pending, not ready", null, withVector)).toEqual({ kind: "feature", position: 1 });
    expect(errorTarget("unknown feature demo:7: this SAE has 4 features", null, withVector)).toEqual({ kind: "feature", position: 2 });
    expect(errorTarget("the worker stopped while generating; try again", null, withVector)).toEqual({ kind: "general" });
  });
});
