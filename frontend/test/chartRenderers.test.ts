import { afterEach, describe, expect, it } from "vitest";
import { enhance } from "../src/enhance/enhance";

describe("chartRenderers via enhance", () => {
  afterEach(() => document.body.replaceChildren());

  it("logits: draws both columns from json_script data", () => {
    document.body.innerHTML = `
      <div id="l" data-chart="logits" data-chart-data="l-data"></div>
      <script id="l-data" type="application/json">{"positive":[{"token":" a","value":2}],"negative":[{"token":"<b>","value":-1}]}</script>`;
    expect(enhance(document)).toBe(1);
    const el = document.getElementById("l")!;
    expect(el.querySelectorAll(".logit-row")).toHaveLength(2);
    expect(el.querySelector("b")).toBeNull();
  });

  it("feature-map: draws inline points, with links under the SAE's path", () => {
    document.body.innerHTML = `<div id="m" data-chart="feature-map" data-chart-json='{"base":"/m/s/","points":{"index":[0,1],"x":[0,1],"y":[0,1],"density":[0.1,0.01],"dead":[0,0]}}'></div>`;
    enhance(document);
    const el = document.getElementById("m")!;
    expect(el.dataset.mapReady).toBe("true");
    expect(el.querySelectorAll("circle.map-point")).toHaveLength(2);
  });

  it("feature-map: without a base path the chart reports an error in place", () => {
    const original = console.error;
    console.error = () => {};
    document.body.innerHTML = `<div id="m" data-chart="feature-map" data-chart-json='{"points":{}}'></div>`;
    enhance(document);
    console.error = original;
    expect(document.getElementById("m")!.dataset.chartError).toBe("invalid feature-map base: undefined");
  });

  it("histogram: width, height and label come from the data", () => {
    document.body.innerHTML = `<div id="h" data-chart="histogram" data-chart-json='{"edges":[0,1,2],"counts":[1,2],"width":360,"height":140,"label":"Activations of feature 3"}'></div>`;
    enhance(document);
    const svg = document.querySelector("#h svg")!;
    expect(svg.getAttribute("viewBox")).toBe("0 0 360 140");
    expect(svg.getAttribute("aria-label")).toBe("Activations of feature 3");
  });

  it("tokens: window and maxPosition cut the strip around the max", () => {
    document.body.innerHTML = `<div id="t" data-chart="tokens" data-chart-json='{"tokens":["a","b","c","d","e"],"values":[0,0,1,0,0],"maxPosition":2,"window":1,"max":2}'></div>`;
    enhance(document);
    expect(Array.from(document.querySelectorAll("#t .token")).map((t) => t.textContent)).toEqual(["b", "c", "d"]);
    expect(document.querySelector("#t .token--max")!.textContent).toBe("c");
  });
});

describe("feature-map with the density distribution", () => {
  afterEach(() => document.body.replaceChildren());

  it("draws the density histogram even before the map has coordinates", () => {
    document.body.innerHTML = `
      <div id="m" data-chart="feature-map" data-chart-json='{"base":"/m/s/","points":{"index":[0,1,2],"x":[null,null,null],"y":[null,null,null],"density":[0.1,0.01,0],"dead":[0,0,1]}}'></div>
      <div id="d" data-density-histogram></div>`;
    enhance(document);
    expect(document.querySelector("#m")!.textContent).toBe("Not laid out yet: a worker computes the map after indexing.");
    expect(document.querySelectorAll("#d svg.histogram rect.bar").length).toBeGreaterThan(0);
  });
});
