import { beforeEach, describe, expect, it } from "vitest";
import { alternativesTooltip, formatProbability, visibleToken } from "../../src/steer/alternativesTooltip";
import { renderContinuation } from "../../src/steer/renderContinuation";
import { rowPieces } from "../../src/steer/rowPieces";

const alts = (...xs: [string, number][]) => xs;

describe("rowPieces", () => {
  it("cuts a finished row into its tokens with their probabilities and alternatives", () => {
    const row = { text: " a b", done: true, tokens: [" a", " b"], probs: [0.5, 0.25], alternatives: [alts([" a", 0.5]), alts([" c", 0.3], [" b", 0.25])] };
    expect(rowPieces(row)).toEqual([
      { text: " a", prob: 0.5, alternatives: [[" a", 0.5]] },
      { text: " b", prob: 0.25, alternatives: [[" c", 0.3], [" b", 0.25]] },
    ]);
  });

  it("gives nothing while streaming or when the tokens do not add up to the text", () => {
    expect(rowPieces({ text: " a", done: false, tokens: [" a"] })).toBeNull();
    expect(rowPieces({ text: "é", done: true, tokens: ["\ufffd", "\ufffd"] })).toBeNull();
    expect(rowPieces({ text: "ab", done: true, tokens: [1, 2] })).toBeNull();
  });

  it("keeps the tokens without probabilities when the server sent none (older results)", () => {
    expect(rowPieces({ text: "ab", done: true, tokens: ["a", "b"] })).toEqual([
      { text: "a", prob: null, alternatives: null },
      { text: "b", prob: null, alternatives: null },
    ]);
  });
});

describe("formatProbability", () => {
  it("is a short percentage", () => {
    expect([0.423, 0.031, 0.0004, 0.00001, Number.NaN].map(formatProbability)).toEqual(["42%", "3.1%", "0.04%", "<0.01%", "?"]);
    expect(visibleToken(" the\n")).toBe("␣the↵");
  });
});

describe("token spans and their tooltip", () => {
  beforeEach(() => document.body.replaceChildren());

  function render() {
    const el = document.createElement("div");
    document.body.append(el);
    const tokens = [
      { text: " <script>", prob: 0.6, alternatives: alts([" <script>", 0.6], [" <b>", 0.2]) },
      { text: " ok", prob: 0.1, alternatives: alts([" no", 0.7], [" ok", 0.1]) },
    ];
    renderContinuation(el, { prompt: "P", text: " <script> ok", diverge: 9, streaming: false, tokens });
    return el;
  }

  it("puts one span per token, the diverged ones inside the mark, as text only", () => {
    const el = render();
    expect(el.querySelector("script")).toBeNull();
    expect([...el.querySelectorAll(".steer-same .steer-tok")].map((s) => s.textContent)).toEqual([" <script>"]);
    expect([...el.querySelectorAll("mark.steer-diverged .steer-tok")].map((s) => s.textContent)).toEqual([" ok"]);
    expect(el.querySelector(".steer-same")!.textContent + el.querySelector(".steer-diverged")!.textContent).toBe(" <script> ok");
  });

  it("shows the probability and the alternatives of the hovered token, the chosen one marked", () => {
    const el = render();
    const tip = alternativesTooltip(el);
    const second = el.querySelectorAll<HTMLElement>(".steer-tok")[1]!;
    second.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.hidden).toBe(false);
    expect(tip.querySelector(".steer-alts-head")!.textContent).toBe("␣ok 10%");
    expect([...tip.querySelectorAll("li")].map((li) => li.textContent)).toEqual(["␣no70%", "␣ok10%"]);
    expect(tip.querySelector(".steer-alts-chosen code")!.textContent).toBe("␣ok");
    el.querySelectorAll<HTMLElement>(".steer-tok")[0]!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.querySelector("script")).toBeNull();
    expect(tip.querySelector(".steer-alts-head code")!.textContent).toBe("␣<script>");
    second.dispatchEvent(new MouseEvent("mouseout", { bubbles: true }));
    expect(tip.hidden).toBe(true);
  });
});
