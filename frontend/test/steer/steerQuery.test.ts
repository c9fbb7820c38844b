import { describe, expect, it } from "vitest";
import { decodeSteerQuery } from "../../src/steer/decodeSteerQuery";
import { encodeSteerQuery } from "../../src/steer/encodeSteerQuery";
import type { SteerState } from "../../src/steer/steerTypes";

const defaults: SteerState = { prompt: "", features: [], positions: "all", temperature: 0.7, top_p: 0.95, seed: 0, max_new_tokens: 32 };

const state: SteerState = {
  prompt: "The city & <b>council</b>: 100%",
  features: [
    { sae: "demo", index: 12, strength: 20, mode: "add" },
    { sae: "demo", index: 7, strength: -3.5, mode: "clamp" },
    { sae: "demo", index: -1, vector: 4, strength: 8, mode: "add" },
  ],
  positions: "generated",
  temperature: 0,
  top_p: 0.9,
  seed: 42,
  max_new_tokens: 48,
};

describe("encodeSteerQuery / decodeSteerQuery", () => {
  it("writes the query format of the steering view", () => {
    const q = new URLSearchParams(encodeSteerQuery(state));
    expect(q.get("prompt")).toBe(state.prompt);
    expect(q.getAll("f")).toEqual(["demo:12:20", "demo:7:-3.5:clamp"]);
    expect(q.getAll("v")).toEqual(["4:8"]);
    expect([q.get("t"), q.get("p"), q.get("seed"), q.get("n"), q.get("pos")]).toEqual(["0", "0.9", "42", "48", "generated"]);
  });

  it("round-trips a state", () => {
    const { state: back, errors } = decodeSteerQuery(encodeSteerQuery(state), defaults);
    expect(errors).toEqual([]);
    expect(back.prompt).toBe(state.prompt);
    expect(back.features.map((f) => [f.sae, f.index, f.strength, f.mode, f.vector ?? null])).toEqual([
      ["demo", 12, 20, "add", null],
      ["demo", 7, -3.5, "clamp", null],
      ["", -1, 8, "add", 4],
    ]);
    expect({ ...back, features: [] }).toEqual({ ...state, features: [] });
  });

  it("keeps the defaults for missing parts", () => {
    expect(decodeSteerQuery("", defaults)).toEqual({ state: defaults, errors: [] });
  });

  it("drops malformed parts and says which", () => {
    const { state: s, errors } = decodeSteerQuery("f=demo:x:1&f=demo:3:NaN&f=demo:3:1:boost&f=demo:5:2&t=-1&pos=middle&n=0", defaults);
    expect(s.features).toEqual([{ sae: "demo", index: 5, strength: 2, mode: "add" }]);
    expect(s.temperature).toBe(0.7);
    expect(s.positions).toBe("all");
    expect(errors).toEqual(["invalid f: demo:x:1", "invalid f: demo:3:NaN", "invalid f: demo:3:1:boost", "invalid t: -1", "invalid n: 0", "invalid pos: middle"]);
  });
});
