import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import { importanceScatter, type ImportancePoint } from "../src/charts/importanceScatter";

const points: ImportancePoint[] = [
  { index: 1, density: 1e-4, importance: 0.01 },
  { index: 2, density: 1e-2, importance: 0.5 },
  { index: 3, density: 1e-1, importance: -0.02 },
];

function container(): HTMLDivElement {
  const div = document.createElement("div");
  document.body.append(div);
  return div;
}

describe("importanceScatter", () => {
  beforeEach(() => document.body.replaceChildren());

  it("importanceScatter() has documented defaults", () => {
    const chart = importanceScatter();
    expect(chart.width()).toBe(420);
    expect(chart.height()).toBe(260);
    expect(chart.radius()).toBe(3);
    expect(chart.href()).toBeNull();
    expect(chart.margin()).toEqual({ top: 10, right: 12, bottom: 34, left: 48 });
  });

  it("setters chain and getters read back", () => {
    const chart = importanceScatter().width(300).radius(2).margin({ left: 30 }).label("x");
    expect([chart.width(), chart.radius(), chart.margin().left, chart.margin().top, chart.label()]).toEqual([300, 2, 30, 10, "x"]);
  });

  it("scatter(points) draws one dot per point, log density on x and importance upwards", () => {
    const div = container();
    select<HTMLDivElement, ImportancePoint[]>(div).datum(points).call(importanceScatter());
    const dots = Array.from(div.querySelectorAll<SVGCircleElement>("circle.dot"));
    expect(dots.map((d) => d.dataset.index)).toEqual(["1", "2", "3"]);
    const cx = dots.map((d) => Number(d.getAttribute("cx")));
    const cy = dots.map((d) => Number(d.getAttribute("cy")));
    expect(cx[0]).toBeLessThan(cx[1] as number);
    expect(cx[1]).toBeLessThan(cx[2] as number);
    expect(cy[1]).toBeLessThan(cy[0] as number); // more important is higher
    expect(div.querySelector("svg")?.getAttribute("aria-label")).toBe("Density against importance");
  });

  it("leaves out points with no density or a non-finite importance", () => {
    const div = container();
    const bad = [...points, { index: 4, density: 0, importance: 1 }, { index: 5, density: 0.1, importance: Number.NaN }];
    select<HTMLDivElement, ImportancePoint[]>(div).datum(bad).call(importanceScatter());
    expect(div.querySelectorAll("circle.dot")).toHaveLength(3);
  });

  it("calling it again updates in place", () => {
    const div = container();
    const chart = importanceScatter();
    select<HTMLDivElement, ImportancePoint[]>(div).datum(points).call(chart);
    select<HTMLDivElement, ImportancePoint[]>(div).datum(points.slice(0, 1)).call(chart);
    expect(div.querySelectorAll("svg")).toHaveLength(1);
    expect(div.querySelectorAll("circle.dot")).toHaveLength(1);
  });

  it("an empty scatter still draws its axes", () => {
    const div = container();
    select<HTMLDivElement, ImportancePoint[]>(div).datum([] as ImportancePoint[]).call(importanceScatter());
    expect(div.querySelector("g.x-axis")).not.toBeNull();
    expect(div.querySelectorAll("circle.dot")).toHaveLength(0);
  });

  it("bad options throw invalid <option>", () => {
    expect(() => importanceScatter().width(-1)).toThrow("invalid width: -1");
    expect(() => importanceScatter().radius(0)).toThrow("invalid radius: 0");
    expect(() => importanceScatter().href("x" as never)).toThrow("invalid href: x");
  });

  it("a dot's title names the feature, with model text never parsed as HTML", () => {
    const div = container();
    select<HTMLDivElement, ImportancePoint[]>(div).datum(points).call(importanceScatter());
    expect(div.querySelector("circle.dot title")?.textContent).toBe("#1: density 0.01%, loss +0.01");
  });
});

describe("importanceScatter x axis", () => {
  it("never runs past log10 density 0", () => {
    const div = document.createElement("div");
    select<HTMLDivElement, ImportancePoint[]>(div).datum([{ index: 1, density: 0.9, importance: 1 }]).call(importanceScatter().width(420));
    const cx = Number(div.querySelector("circle.dot")?.getAttribute("cx"));
    expect(cx).toBeLessThanOrEqual(420 - 12);
    const ticks = Array.from(div.querySelectorAll("g.x-axis text")).map((t) => Number((t.textContent ?? "").replace("−", "-")));
    expect(Math.max(...ticks)).toBeLessThanOrEqual(0);
  });
});
