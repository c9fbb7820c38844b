import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import { binsFromEdges } from "../src/charts/binsFromEdges";
import { featureHistogram } from "../src/charts/histogram";
import type { HistogramBin } from "../src/charts/histogramBin";
import { expectSnapshot } from "./snapshot";

const bins = binsFromEdges([0, 1, 2, 3, 4], [5, 10, 2, 0]);

function container(): HTMLDivElement {
  const div = document.createElement("div");
  document.body.append(div);
  return div;
}

describe("featureHistogram", () => {
  beforeEach(() => {
    document.body.replaceChildren();
  });

  it("featureHistogram() has documented defaults", () => {
    const chart = featureHistogram();
    expect(chart.width()).toBe(320);
    expect(chart.height()).toBe(120);
    expect(chart.yScale()).toBe("linear");
    expect(chart.margin()).toEqual({ top: 8, right: 8, bottom: 22, left: 36 });
  });

  it("setters chain and getters read back", () => {
    const chart = featureHistogram().width(200).height(80).yScale("symlog").margin({ left: 20 });
    expect(chart.width()).toBe(200);
    expect(chart.height()).toBe(80);
    expect(chart.yScale()).toBe("symlog");
    expect(chart.margin().left).toBe(20);
    expect(chart.margin().top).toBe(8);
  });

  it("histogram(bins) renders one bar per bin, taller for larger counts", () => {
    const div = container();
    select<HTMLDivElement, HistogramBin[]>(div).datum(bins).call(featureHistogram());
    const bars = div.querySelectorAll("rect.bar");
    expect(bars).toHaveLength(4);
    const heights = Array.from(bars, (b) => +b.getAttribute("height")!);
    expect(heights[1]).toBeGreaterThan(heights[0]!);
    expect(heights[0]).toBeGreaterThan(heights[2]!);
    expect(heights[3]).toBe(0);
    expect(div.querySelector("svg")?.getAttribute("aria-label")).toBe("Activation histogram");
  });

  it("calling again with new bins updates the same svg", () => {
    const div = container();
    const chart = featureHistogram();
    select<HTMLDivElement, HistogramBin[]>(div).datum(bins).call(chart);
    const svg = div.querySelector("svg");
    select<HTMLDivElement, HistogramBin[]>(div).datum(binsFromEdges([0, 2, 4], [1, 3])).call(chart.width(240));
    expect(div.querySelectorAll("svg")).toHaveLength(1);
    expect(div.querySelector("svg")).toBe(svg);
    expect(div.querySelectorAll("rect.bar")).toHaveLength(2);
    expect(svg?.getAttribute("width")).toBe("240");
  });

  it("a NaN count is drawn as an explicit missing bar in the unknown colour", () => {
    const div = container();
    select<HTMLDivElement, HistogramBin[]>(div).datum(binsFromEdges([0, 1, 2], [4, null])).call(featureHistogram());
    const missing = div.querySelectorAll("rect.missing");
    expect(missing).toHaveLength(1);
    expect(missing[0]!.getAttribute("fill")).toBe("#9e9e9e");
    expect(+missing[0]!.getAttribute("height")!).toBeGreaterThan(0);
    expect(missing[0]!.querySelector("title")?.textContent).toContain("no data");
  });

  it("fill accepts a function of the bin", () => {
    const div = container();
    const chart = featureHistogram().fill((b) => (b.x0 >= 2 ? "red" : "blue"));
    select<HTMLDivElement, HistogramBin[]>(div).datum(bins).call(chart);
    expect(Array.from(div.querySelectorAll("rect.bar"), (b) => b.getAttribute("fill"))).toEqual(["blue", "blue", "red", "red"]);
  });

  it("bad options throw invalid <option>: <x>", () => {
    expect(() => featureHistogram().yScale("log" as "linear")).toThrow("invalid yScale: log");
    expect(() => featureHistogram().width(-5)).toThrow("invalid width: -5");
    expect(() => featureHistogram().height(NaN)).toThrow("invalid height: NaN");
    expect(() => featureHistogram().margin({ top: -1 })).toThrow("invalid margin.top: -1");
  });

  it("mismatched edges and counts throw invalid edges", () => {
    expect(() => binsFromEdges([0, 1], [1, 2])).toThrow("invalid edges: 2 edges for 2 counts");
    expect(() => binsFromEdges([0, 2, 1], [1, 2])).toThrow("invalid edges: [2, 1] at bin 1");
  });

  it("histogram(bins) matches the SVG snapshot", () => {
    const div = container();
    select<HTMLDivElement, HistogramBin[]>(div)
      .datum(binsFromEdges([0, 0.5, 1, 1.5, 2, 2.5], [120, 64, 30, null, 4]))
      .call(featureHistogram().fill("#4f5b66"));
    expectSnapshot("histogram.svg", div);
  });
});
