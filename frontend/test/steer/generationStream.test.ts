import { describe, expect, it } from "vitest";
import { GenerationStream } from "../../src/steer/generationStream";
import type { SteerRow } from "../../src/steer/steerTypes";

const delta = (seq: number, row: SteerRow, text: string) => ({ type: "delta" as const, gen: 1, row, seq, text });
const done = (seq: number, row: SteerRow, text: string, tokens: string[] = []) => ({ type: "done" as const, gen: 1, row, seq, text, tokens, result: "abc" });

describe("GenerationStream", () => {
  it("appends deltas in seq order to their rows", () => {
    const s = new GenerationStream(1);
    s.delta(delta(1, "default", " the"));
    s.delta(delta(2, "steered", " a"));
    s.delta(delta(3, "default", " cat"));
    expect(s.rows.default.text).toBe(" the cat");
    expect(s.rows.steered.text).toBe(" a");
    expect(s.lastSeq()).toBe(3);
  });

  it("ignores a replayed (duplicate) delta", () => {
    const s = new GenerationStream(1);
    s.delta(delta(1, "default", "a"));
    expect(s.delta(delta(1, "default", "a")).changed).toBe(false);
    expect(s.rows.default.text).toBe("a");
  });

  it("holds an early delta, asks once to resume after the gap, and applies it when the gap fills", () => {
    const s = new GenerationStream(1);
    s.delta(delta(1, "default", "a"));
    expect(s.delta(delta(3, "default", "c"))).toEqual({ changed: false, resumeAfter: 1 });
    expect(s.delta(delta(4, "steered", "x")).resumeAfter).toBeNull();
    expect(s.rows.default.text).toBe("a");
    expect(s.delta(delta(2, "default", "b"))).toEqual({ changed: true, resumeAfter: null });
    expect(s.rows.default.text).toBe("abc");
    expect(s.rows.steered.text).toBe("x");
    expect(s.lastSeq()).toBe(4);
  });

  it("a done frame's full text wins over lost deltas", () => {
    const s = new GenerationStream(1);
    s.delta(delta(1, "default", "a"));
    s.delta(delta(3, "default", "c"));
    s.done(done(5, "default", "abcd", ["ab", "cd"]));
    expect(s.rows.default).toEqual({ text: "abcd", done: true, tokens: ["ab", "cd"] });
    s.delta(delta(2, "default", "b"));
    expect(s.rows.default.text).toBe("abcd");
  });

  it("is complete after both done frames and keeps the result id", () => {
    const s = new GenerationStream(1);
    s.done(done(1, "default", "x"));
    expect(s.complete).toBe(false);
    s.done(done(2, "steered", "y"));
    expect(s.complete).toBe(true);
    expect(s.result).toBe("abc");
  });

  it("sequences done frames too: a delta after a done is not a gap", () => {
    const s = new GenerationStream(1);
    s.delta(delta(1, "steered", "a"));
    s.done(done(2, "default", "zz"));
    expect(s.delta(delta(3, "steered", "b")).resumeAfter).toBeNull();
    expect(s.rows.steered.text).toBe("ab");
  });
});
