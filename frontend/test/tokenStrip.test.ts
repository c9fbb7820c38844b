import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import { activationColor } from "../src/scales/activationColor";
import type { TokenData } from "../src/tokens/tokenData";
import { tokenStrip } from "../src/tokens/tokenStrip";
import { expectSnapshot } from "./snapshot";

function render(data: TokenData, strip = tokenStrip()): HTMLDivElement {
  const div = document.createElement("div");
  document.body.append(div);
  select<HTMLDivElement, TokenData>(div).datum(data).call(strip);
  return div;
}

function tokens(div: HTMLElement): HTMLSpanElement[] {
  return Array.from(div.querySelectorAll<HTMLSpanElement>("span.token"));
}

describe("tokenStrip", () => {
  beforeEach(() => {
    document.body.replaceChildren();
  });

  it("tokenStrip(data) matches the snapshot", () => {
    const div = render(
      { tokens: ["<|endoftext|>", "The", " cat", "\n", " sat", " on", "  ", " mat"], values: [0, 0.125, 2.5, null, 1.333, 0, 0.05, NaN], maxPosition: 2 },
      tokenStrip().max(3).window(4).precision(4),
    );
    expectSnapshot("tokenStrip.html", div);
  });

  it("renders one span per token in order", () => {
    const div = render({ tokens: ["The", " cat", " sat"], values: [0, 1, 0.5] });
    expect(tokens(div).map((t) => t.textContent)).toEqual(["The", " cat", " sat"]);
  });

  it("markup in a token renders as text and creates no element", () => {
    const evil = "<img src=x onerror=alert(1)>";
    const div = render({ tokens: [evil, "<b>bold</b>"], values: [1, 0] });
    expect(div.querySelector("img")).toBeNull();
    expect(div.querySelector("b")).toBeNull();
    const [first] = tokens(div);
    expect(first!.textContent).toBe(evil);
    expect(first!.children).toHaveLength(0);
    expect(div.innerHTML).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });

  it("an excluded BOS keeps its value and is marked, as text, with a title", () => {
    const bos = "<|endoftext|><img src=x>";
    const div = render({ tokens: [bos, "The", " cat"], values: [3.5, 0, 1], maxPosition: 2, bosExcluded: true });
    const [first, second] = tokens(div);
    expect(first!.classList.contains("token--excluded")).toBe(true);
    expect(first!.getAttribute("title")).toBe("BOS: excluded from statistics");
    expect(first!.dataset.value).toBe("3.5");
    expect(first!.textContent).toBe(bos);
    expect(div.querySelector("img")).toBeNull();
    expect(second!.classList.contains("token--excluded")).toBe(false);
    expect(second!.hasAttribute("title")).toBe(false);
  });

  it("without bosExcluded position 0 is an ordinary token", () => {
    const [first] = tokens(render({ tokens: ["<|endoftext|>", "The"], values: [0, 1] }));
    expect(first!.classList.contains("token--excluded")).toBe(false);
    expect(first!.hasAttribute("title")).toBe(false);
  });

  it("the strongest activation gets the top colour of the scale", () => {
    const div = render({ tokens: ["a", "b"], values: [0, 2] });
    const expected = activationColor(2)(2);
    const probe = document.createElement("span");
    probe.style.backgroundColor = expected;
    expect(tokens(div)[1]!.style.backgroundColor).toBe(probe.style.backgroundColor);
  });

  it("a zero activation leaves the background transparent", () => {
    const div = render({ tokens: ["a", "b"], values: [0, 2] });
    expect(tokens(div)[0]!.style.backgroundColor).toBe("transparent");
  });

  it("NaN and missing activations get the scale's unknown colour", () => {
    const div = render({ tokens: ["a", "b", "c"], values: [NaN, null] });
    const probe = document.createElement("span");
    probe.style.backgroundColor = activationColor(1).unknown();
    const [a, b, c] = tokens(div);
    for (const t of [a!, b!, c!]) {
      expect(t.style.backgroundColor).toBe(probe.style.backgroundColor);
      expect(t.classList.contains("token--unknown")).toBe(true);
    }
  });

  it("newlines, tabs and special tokens are shown visibly", () => {
    const div = render({ tokens: ["\n", "a\tb", "<|endoftext|>", "  "], values: [0, 0, 0, 0] });
    const [nl, tab, eot, spaces] = tokens(div);
    expect(nl!.textContent).toBe("↵");
    expect(nl!.classList.contains("token--newline")).toBe(true);
    expect(tab!.textContent).toBe("a⇥b");
    expect(eot!.textContent).toBe("<|endoftext|>");
    expect(eot!.classList.contains("token--special")).toBe(true);
    expect(spaces!.textContent).toBe("··");
  });

  it("max() fixes the colour scale's top instead of the data's largest value", () => {
    const div = render({ tokens: ["a"], values: [1] }, tokenStrip().max(4));
    const probe = document.createElement("span");
    probe.style.backgroundColor = activationColor(4)(1);
    expect(tokens(div)[0]!.style.backgroundColor).toBe(probe.style.backgroundColor);
  });

  it("calling again updates the tokens in place", () => {
    const strip = tokenStrip();
    const div = render({ tokens: ["a", "b", "c"], values: [1, 2, 3] }, strip);
    select<HTMLDivElement, TokenData>(div).datum({ tokens: ["x"], values: [1] }).call(strip);
    expect(div.querySelectorAll(".token-strip")).toHaveLength(1);
    expect(tokens(div).map((t) => t.textContent)).toEqual(["x"]);
  });

  it("bad options throw invalid <option>: <x>", () => {
    expect(() => tokenStrip().max(0)).toThrow("invalid max: 0");
    expect(() => tokenStrip().max(Infinity)).toThrow("invalid max: Infinity");
    expect(() => tokenStrip().precision(0)).toThrow("invalid precision: 0");
    expect(() => tokenStrip().color("red" as never)).toThrow("invalid color: red");
  });
});
