import { select } from "d3";
import { beforeEach, describe, expect, it } from "vitest";
import { featureMap, logDensityDomain, mapPoints, type MapData } from "../src/charts/featureMap";
import { expectSnapshot } from "./snapshot";

const data: MapData = {
  index: [0, 1, 2, 3],
  x: [0, 1, 0, 1],
  y: [0, 0, 1, NaN],
  density: [0, 1e-4, 1e-2, 0.1],
  dead: [1, 0, 0, 0],
};

function render(d: MapData, chart = featureMap().width(200).height(100)): HTMLDivElement {
  const div = document.createElement("div");
  document.body.append(div);
  select<HTMLDivElement, MapData>(div).datum(d).call(chart);
  return div;
}

describe("featureMap", () => {
  beforeEach(() => document.body.replaceChildren());

  it("mapPoints drops features without finite coordinates", () => {
    expect(mapPoints(data).map((p) => p.index)).toEqual([0, 1, 2]);
  });

  it("mapPoints rejects columns of different lengths", () => {
    expect(() => mapPoints({ ...data, x: [0] })).toThrow("invalid map data.x: 1 for 4 features");
  });

  it("the colour domain is log10 density over live features", () => {
    expect(logDensityDomain(mapPoints(data))).toEqual([-4, -2]);
    expect(logDensityDomain([])).toEqual([-6, 0]);
  });

  it("draws one circle per point, dead ones grey and beneath the live ones", () => {
    const div = render(data);
    const circles = Array.from(div.querySelectorAll("circle.map-point"));
    expect(circles).toHaveLength(3);
    expect(circles[0]!.getAttribute("data-index")).toBe("0");
    expect(circles[0]!.getAttribute("fill")).toBe("#9e9e9e");
    expect(circles[1]!.getAttribute("fill")).not.toBe(circles[2]!.getAttribute("fill"));
  });

  it("uses one scale for both axes, so the map is not stretched", () => {
    const div = render(data);
    const at = (i: number) => {
      const c = div.querySelector(`circle[data-index="${i}"]`)!;
      return [+c.getAttribute("cx")!, +c.getAttribute("cy")!];
    };
    const [x0, y0] = at(0) as [number, number];
    const [x1] = at(1) as [number, number];
    const [, y2] = at(2) as [number, number];
    expect(x1 - x0).toBeCloseTo(y0 - y2);
  });

  it("clicking a point navigates to its href", () => {
    const visited: string[] = [];
    const div = render(data, featureMap().width(200).height(100).href((i) => `/m/s/${i}/`).navigate((u) => visited.push(u)));
    div.querySelector<SVGCircleElement>('circle[data-index="2"]')!.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(visited).toEqual(["/m/s/2/"]);
  });

  it("hovering a point shows its index and description, as text", async () => {
    const div = render(data, featureMap().width(200).height(100).describe(async (i) => `<b>feature ${i}</b>`));
    div.querySelector('circle[data-index="1"]')!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    div.querySelector('circle[data-index="1"]')!.dispatchEvent(new MouseEvent("mouseenter"));
    await Promise.resolve();
    await Promise.resolve();
    const tip = div.querySelector<HTMLElement>(".map-tooltip")!;
    expect(tip.hidden).toBe(false);
    expect(tip.querySelector("strong")!.textContent).toBe("#1");
    expect(tip.querySelector(".map-tooltip__text")!.textContent).toBe("<b>feature 1</b>");
    expect(tip.querySelector("b")).toBeNull();
  });

  it("draws a legend with the density range", () => {
    const div = render(data);
    const ends = Array.from(div.querySelectorAll(".map-legend__end")).map((e) => e.textContent);
    expect(ends).toEqual(["0.01%", "1%"]);
  });

  it("featureMap(data) matches the snapshot", () => {
    const div = render(
      { index: [0, 1, 2, 3, 4, 5], x: [0, 1.5, -0.25, 0.75, 2, null], y: [0, 0.5, 1.125, -1, 0.333, 1], density: [0, 1e-4, 3e-3, 0.02, 0.5, 0.1], dead: [1, 0, 0, 0, 0, 0] },
      featureMap().width(240).height(160).renderer("svg").href((i) => `/m/s/${i}/`),
    );
    expectSnapshot("featureMap.html", div);
  });

  it("bad options throw invalid <option>: <x>", () => {
    expect(() => featureMap().renderer("webgl" as never)).toThrow("invalid renderer: webgl");
    expect(() => featureMap().height(0)).toThrow("invalid height: 0");
  });
});

describe("featureMap canvas renderer", () => {
  beforeEach(() => document.body.replaceChildren());

  it("renderer('canvas') draws one canvas and finds the point under the mouse for hover and click", () => {
    const visited: string[] = [];
    const chart = featureMap().width(200).height(100).renderer("canvas").href((i) => `/f/${i}/`).navigate((u) => visited.push(u));
    const div = render(data, chart);
    const canvas = div.querySelector("canvas.feature-map__canvas")!;
    expect(div.querySelectorAll("circle")).toHaveLength(0);
    // jsdom lays nothing out: the canvas's box is at (0, 0), so client coordinates are chart
    // coordinates. Index 1 is at data (1, 0): 38 px right of the centre and 38 px below it.
    const x = 100 + 38;
    const y = 50 + 38;
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: x, clientY: y }));
    expect(div.querySelector<HTMLElement>(".map-tooltip")!.hidden).toBe(false);
    expect(div.querySelector(".map-tooltip strong")!.textContent).toBe("#1");
    canvas.dispatchEvent(new MouseEvent("click", { clientX: x, clientY: y }));
    expect(visited).toEqual(["/f/1/"]);
  });

  it("renderer 'auto' switches to canvas above 4,000 points", () => {
    const n = 4001;
    const many: MapData = {
      index: Array.from({ length: n }, (_, i) => i),
      x: Array.from({ length: n }, (_, i) => Math.cos(i)),
      y: Array.from({ length: n }, (_, i) => Math.sin(i)),
      density: Array.from({ length: n }, () => 0.01),
      dead: Array.from({ length: n }, () => 0),
    };
    const div = render(many);
    expect(div.querySelector("canvas")).not.toBeNull();
    expect(div.querySelector("svg")).toBeNull();
  });
});

describe("featureMap without coordinates", () => {
  it("says there is no map yet instead of drawing an empty stage", () => {
    const div = render({ index: [0], x: [NaN], y: [NaN], density: [0], dead: [0] });
    expect(div.querySelector("svg, canvas")).toBeNull();
    expect(div.textContent).toBe("Not laid out yet: a worker computes the map after indexing.");
  });
});
