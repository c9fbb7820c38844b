import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import { logitBars, type LogitData } from "../src/charts/logitBars";
import { expectSnapshot } from "./snapshot";

const data: LogitData = {
  positive: [
    { token: " cat", value: 2 },
    { token: "<script>alert(1)</script>", value: 1 },
  ],
  negative: [{ token: "\n", value: -0.5 }],
};

function render(d: LogitData, chart = logitBars(), div = document.createElement("div")): HTMLDivElement {
  document.body.append(div);
  select<HTMLDivElement, LogitData>(div).datum(d).call(chart);
  return div;
}

describe("logitBars", () => {
  beforeEach(() => document.body.replaceChildren());

  it("draws a negative and a positive column with one row per token", () => {
    const div = render(data);
    expect(div.querySelectorAll(".logit-col--positive .logit-row")).toHaveLength(2);
    expect(div.querySelectorAll(".logit-col--negative .logit-row")).toHaveLength(1);
    expect(div.querySelector(".logit-col--negative h3")!.textContent).toBe("Negative");
  });

  it("bars are |value| over the largest |value|", () => {
    const div = render(data);
    const widths = Array.from(div.querySelectorAll<HTMLElement>(".logit-bar > span")).map((s) => s.style.width);
    expect(widths).toEqual(["25%", "100%", "50%"]);
  });

  it("scale() fixes the full-length value", () => {
    const div = render(data, logitBars().scale(4));
    expect(div.querySelector<HTMLElement>(".logit-col--positive .logit-bar > span")!.style.width).toBe("50%");
  });

  it("token markup renders as text and newlines are visible", () => {
    const div = render(data);
    expect(div.querySelector("script")).toBeNull();
    const tokens = Array.from(div.querySelectorAll(".logit-token")).map((t) => t.textContent);
    expect(tokens).toEqual(["↵", " cat", "<script>alert(1)</script>"]);
  });

  it("reuses server-rendered rows instead of adding new ones", () => {
    const div = document.createElement("div");
    div.innerHTML =
      '<div class="logit-col logit-col--negative"><h3>Negative</h3><ol><li class="logit-row"><span class="logit-token">x</span><span class="logit-bar"><span></span></span><span class="logit-value">-1</span></li></ol></div>' +
      '<div class="logit-col logit-col--positive"><h3>Positive</h3><ol></ol></div>';
    render(data, logitBars(), div);
    expect(div.querySelectorAll(".logit-col")).toHaveLength(2);
    expect(div.querySelectorAll(".logit-row")).toHaveLength(3);
    expect(div.querySelector(".logit-col--negative .logit-value")!.textContent).toBe("−0.5"); // d3.format writes a true minus sign, as the server does
  });

  it("logitBars(data) matches the snapshot", () => {
    const div = render({
      positive: [
        { token: " cat", value: 2.71828 },
        { token: " dog", value: 1.25 },
        { token: "<b>", value: 0.333333 },
      ],
      negative: [
        { token: "\n", value: -1.5 },
        { token: " the", value: -0.0123 },
        { token: " nan", value: NaN },
      ],
    });
    expectSnapshot("logitBars.html", div);
  });

  it("bad options throw invalid <option>: <x>", () => {
    expect(() => logitBars().scale(0)).toThrow("invalid scale: 0");
    expect(() => logitBars().format("x" as never)).toThrow("invalid format: x");
  });
});
