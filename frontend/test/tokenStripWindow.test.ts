import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import type { TokenData } from "../src/tokens/tokenData";
import { tokenStrip } from "../src/tokens/tokenStrip";

const data: TokenData = {
  tokens: Array.from({ length: 20 }, (_, i) => `t${i}`),
  values: Array.from({ length: 20 }, (_, i) => (i === 12 ? 3 : i === 11 ? 1 : 0)),
  maxPosition: 12,
};

function render(d: TokenData, strip = tokenStrip()): HTMLDivElement {
  const div = document.createElement("div");
  document.body.append(div);
  select<HTMLDivElement, TokenData>(div).datum(d).call(strip);
  return div;
}

const texts = (div: HTMLElement) => Array.from(div.querySelectorAll("span.token")).map((t) => t.textContent);

describe("tokenStrip window", () => {
  beforeEach(() => document.body.replaceChildren());

  it("window(n) shows n tokens either side of the max and marks the cuts", () => {
    const div = render(data, tokenStrip().window(2));
    expect(texts(div)).toEqual(["t10", "t11", "t12", "t13", "t14"]);
    const strip = div.querySelector(".token-strip")!;
    expect(strip.classList.contains("token-strip--cut-before")).toBe(true);
    expect(strip.classList.contains("token-strip--cut-after")).toBe(true);
  });

  it("a window at the edge cuts one side only", () => {
    const div = render({ ...data, maxPosition: 1 }, tokenStrip().window(5));
    expect(texts(div)[0]).toBe("t0");
    expect(div.querySelector(".token-strip--cut-before")).toBeNull();
  });

  it("window(null) shows every token", () => {
    expect(texts(render(data, tokenStrip().window(null)))).toHaveLength(20);
  });

  it("switching the window redraws in place", () => {
    const strip = tokenStrip().window(1);
    const div = render(data, strip);
    select<HTMLDivElement, TokenData>(div).datum(data).call(strip.window(null));
    expect(texts(div)).toHaveLength(20);
    expect(div.querySelector(".token-strip--cut-before")).toBeNull();
    expect(div.querySelectorAll(".token-strip")).toHaveLength(1);
  });

  it("the max token is marked, found from the values when no position is given", () => {
    const div = render({ tokens: data.tokens, values: data.values });
    const marked = Array.from(div.querySelectorAll(".token--max")).map((t) => t.textContent);
    expect(marked).toEqual(["t12"]);
  });

  it("a strip where nothing fired marks no max", () => {
    const div = render({ tokens: ["a", "b"], values: [0, 0] });
    expect(div.querySelector(".token--max")).toBeNull();
  });

  it("colours are scaled to the whole example, not the visible window", () => {
    const narrow = render(data, tokenStrip().window(0));
    const full = render(data);
    const bg = (div: HTMLElement, text: string) =>
      Array.from(div.querySelectorAll<HTMLElement>(".token")).find((t) => t.textContent === text)!.style.backgroundColor;
    expect(bg(narrow, "t12")).toBe(bg(full, "t12"));
  });

  it("each token carries its value for the tooltip", () => {
    const div = render(data, tokenStrip().window(1));
    expect(Array.from(div.querySelectorAll<HTMLElement>(".token")).map((t) => t.dataset.value)).toEqual(["1", "3", "0"]);
  });

  it("a negative window throws", () => {
    expect(() => tokenStrip().window(-1)).toThrow("invalid window: -1");
  });
});
