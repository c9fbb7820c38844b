import { beforeEach, describe, expect, it, vi } from "vitest";
import { renderContinuation } from "../../src/steer/renderContinuation";
import { renderFeatureRows } from "../../src/steer/featureRows";
import type { SteerFeature } from "../../src/steer/steerTypes";

const limits = { strength_min: -1000, strength_max: 1000, max_features: 8, max_new_tokens: 128, max_prompt_chars: 2000 };

describe("renderContinuation", () => {
  beforeEach(() => document.body.replaceChildren());

  it("writes the prompt, the shared part and the marked part as text only", () => {
    const el = document.createElement("div");
    renderContinuation(el, { prompt: "Say <b>", text: " <script>alert(1)</script> ok", diverge: 9, streaming: true });
    expect(el.querySelector("script")).toBeNull();
    expect(el.querySelector("b")).toBeNull();
    expect(el.querySelector(".steer-echo")!.textContent).toBe("Say <b>");
    expect(el.querySelector(".steer-same")!.textContent).toBe(" <script>");
    expect(el.querySelector("mark.steer-diverged")!.textContent).toBe("alert(1)</script> ok");
    expect(el.querySelector(".steer-caret")).not.toBeNull();
  });

  it("marks nothing while the rows agree, and drops the caret when done", () => {
    const el = document.createElement("div");
    renderContinuation(el, { prompt: "", text: "same", diverge: null, streaming: true });
    renderContinuation(el, { prompt: "", text: "same text", diverge: null, streaming: false });
    expect(el.querySelector("mark")!.textContent).toBe("");
    expect(el.querySelector(".steer-same")!.textContent).toBe("same text");
    expect(el.querySelector(".steer-caret")).toBeNull();
    expect(el.querySelectorAll(".steer-part")).toHaveLength(3);
  });
});

describe("renderFeatureRows", () => {
  beforeEach(() => document.body.replaceChildren());
  const feature = (over: Partial<SteerFeature> = {}): SteerFeature => ({ sae: "demo", index: 3, strength: 20, mode: "add", max_activation: 5, label: "<i>cats</i>", ...over });
  const handlers = () => ({ onStrength: vi.fn(), onMode: vi.fn(), onRemove: vi.fn() });

  function render(features: SteerFeature[], h = handlers(), errors: (string | null)[] = []) {
    const ol = document.createElement("ol");
    document.body.append(ol);
    renderFeatureRows(ol, features, { model: "demo", limits, errors, ...h });
    return { ol, h };
  }

  it("shows name, explanation as text, raw value and units of max activation", () => {
    const { ol } = render([feature()]);
    expect(ol.querySelector(".steer-feature-name")!.textContent).toBe("demo#3");
    expect(ol.querySelector(".steer-feature-name")!.getAttribute("href")).toBe("/demo/demo/3/");
    expect(ol.querySelector("i")).toBeNull();
    expect(ol.querySelector(".steer-feature-label")!.textContent).toBe("<i>cats</i>");
    expect(ol.querySelector<HTMLInputElement>(".steer-raw")!.value).toBe("20");
    expect(ol.querySelector(".steer-units")!.textContent).toBe("= 4× max act.");
  });

  it("marks the max activation on the slider's ticks", () => {
    const { ol } = render([feature()]);
    const max = ol.querySelector<HTMLElement>(".steer-tick--max")!;
    expect(max.textContent).toBe("max");
    expect(max.title).toBe("max activation 5");
    expect(parseFloat(max.style.left)).toBeGreaterThan(50);
  });

  it("the slider reports strengths on the signed-log scale", () => {
    const { ol, h } = render([feature()]);
    const slider = ol.querySelector<HTMLInputElement>(".steer-slider")!;
    slider.value = "0";
    slider.dispatchEvent(new Event("input"));
    slider.value = "500";
    slider.dispatchEvent(new Event("input"));
    expect(h.onStrength.mock.calls).toEqual([[0, -1000], [0, 0]]);
  });

  it("updates a row in place, keyed by sae#index", () => {
    const { ol, h } = render([feature(), feature({ index: 4 })]);
    const second = ol.querySelectorAll("li")[1];
    renderFeatureRows(ol, [feature({ index: 4, strength: 5 })], { model: "demo", limits, errors: ["too strong"], ...h });
    expect(ol.querySelectorAll("li")).toHaveLength(1);
    expect(ol.querySelector("li")).toBe(second);
    expect(ol.querySelector(".steer-error")!.textContent).toBe("too strong");
  });

  it("mode and remove call back with the row's position", () => {
    const { ol, h } = render([feature(), feature({ index: 9 })]);
    const select = ol.querySelectorAll<HTMLSelectElement>(".steer-mode")[1]!;
    select.value = "ablate";
    select.dispatchEvent(new Event("change"));
    ol.querySelectorAll<HTMLButtonElement>(".steer-remove")[0]!.click();
    expect(h.onMode).toHaveBeenCalledWith(1, "ablate");
    expect(h.onRemove).toHaveBeenCalledWith(0);
  });

  it("says so when the max activation is unknown", () => {
    const { ol } = render([feature({ max_activation: null })]);
    expect(ol.querySelector(".steer-units")!.textContent).toBe("raw (max activation unknown)");
    expect(ol.querySelector(".steer-tick--max")).toBeNull();
  });
});
