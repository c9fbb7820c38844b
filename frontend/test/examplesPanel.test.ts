import { afterEach, describe, expect, it } from "vitest";
import { CONTEXT_STORAGE_KEY, examplesPanel } from "../src/enhance/examplesPanel";

const example = {
  tokens: Array.from({ length: 40 }, (_, i) => `w${i}`),
  values: Array.from({ length: 40 }, (_, i) => (i === 20 ? 4 : 0)),
  maxPosition: 20,
};

function setup(context = "16"): HTMLElement {
  document.body.innerHTML = `
    <section id="ex" data-context="${context}">
      <a href="?ctx=5" data-context-width="5">±5</a><a href="?ctx=16" data-context-width="16">±16</a><a href="?ctx=full" data-context-width="full">full</a>
      <div data-example="0"></div><div data-example="1"></div>
    </section>`;
  return document.getElementById("ex")!;
}

const count = (el: HTMLElement, i: number) => el.querySelectorAll(`[data-example="${i}"] .token`).length;

describe("examplesPanel", () => {
  afterEach(() => {
    document.body.replaceChildren();
    window.history.replaceState(null, "", "/");
    window.localStorage.clear();
  });

  it("draws every example at the width in data-context", () => {
    const el = setup("5");
    examplesPanel(el, { max: 4, examples: [example, example] });
    expect(count(el, 0)).toBe(11);
    expect(count(el, 1)).toBe(11);
  });

  it("the context toggle redraws every strip without reloading and keeps ?ctx= in the URL", () => {
    const el = setup();
    examplesPanel(el, { max: 4, examples: [example, example] });
    expect(count(el, 0)).toBe(33);
    el.querySelector<HTMLAnchorElement>('[data-context-width="full"]')!.click();
    expect(count(el, 0)).toBe(40);
    expect(el.dataset.context).toBe("full");
    expect(new URL(window.location.href).searchParams.get("ctx")).toBe("full");
    const active = el.querySelector('[aria-current="true"]')!;
    expect(active.textContent).toBe("full");
  });

  it("with bosExcluded the first token of every window is marked as excluded from statistics", () => {
    const el = setup("full");
    examplesPanel(el, { max: 4, bosExcluded: true, examples: [example, example] });
    for (const i of [0, 1]) {
      const first = el.querySelector<HTMLElement>(`[data-example="${i}"] .token`)!;
      expect(first.classList.contains("token--excluded")).toBe(true);
      expect(first.title).toBe("BOS: excluded from statistics");
    }
    expect(el.querySelectorAll(".token--excluded")).toHaveLength(2);
  });

  it("colours are scaled to the feature's max, not the example's", () => {
    const el = setup("full");
    examplesPanel(el, { max: 8, examples: [example, example] });
    const peak = el.querySelector<HTMLElement>('[data-example="0"] .token--max')!;
    const other = setup("full");
    examplesPanel(other, { max: 4, examples: [example, example] });
    expect(peak.style.backgroundColor).not.toBe(other.querySelector<HTMLElement>('[data-example="0"] .token--max')!.style.backgroundColor);
  });

  it("a placeholder naming a missing example throws", () => {
    const el = setup();
    expect(() => examplesPanel(el, { max: 4, examples: [example] })).toThrow("invalid data-example: 1");
  });

  it("the width picked carries over to the ← → r links and is stored for the next feature", () => {
    const el = setup();
    const nav = document.createElement("nav");
    nav.dataset.enhance = "feature-nav";
    nav.innerHTML = `<a href="/m/s/2/" rel="prev">‹</a><a href="/m/s/random/?x=1" data-key="r">r</a>`;
    document.body.append(nav);
    examplesPanel(el, { max: 4, examples: [example, example] });
    el.querySelector<HTMLAnchorElement>('[data-context-width="5"]')!.click();
    expect(nav.querySelector("a")!.getAttribute("href")).toBe("/m/s/2/?ctx=5");
    expect(nav.querySelector('[data-key="r"]')!.getAttribute("href")).toBe("/m/s/random/?x=1&ctx=5");
    expect(window.localStorage.getItem(CONTEXT_STORAGE_KEY)).toBe("5");
  });

  it("a page opened without ?ctx= starts at the stored width", () => {
    window.localStorage.setItem(CONTEXT_STORAGE_KEY, "full");
    const el = setup("16");
    examplesPanel(el, { max: 4, examples: [example, example] });
    expect(count(el, 0)).toBe(40);
    expect(new URL(window.location.href).searchParams.get("ctx")).toBe("full");
  });

  it("?ctx= in the URL wins over the stored width", () => {
    window.localStorage.setItem(CONTEXT_STORAGE_KEY, "full");
    window.history.replaceState(null, "", "/?ctx=5");
    const el = setup("5");
    examplesPanel(el, { max: 4, examples: [example, example] });
    expect(count(el, 0)).toBe(11);
  });
});
