import { afterEach, describe, expect, it, vi } from "vitest";
import { enhance } from "../src/enhance/enhance";

describe("enhance", () => {
  afterEach(() => {
    document.body.replaceChildren();
    vi.restoreAllMocks();
  });

  it("renders a histogram from a json_script element", () => {
    document.body.innerHTML = `
      <div id="h" data-chart="histogram" data-chart-data="h-data"></div>
      <script id="h-data" type="application/json">{"edges":[0,1,2],"counts":[3,1]}</script>`;
    expect(enhance(document)).toBe(1);
    const el = document.getElementById("h")!;
    expect(el.querySelector("svg.histogram")).not.toBeNull();
    expect(el.dataset.chartRendered).toBe("true");
  });

  it("renders a token strip from inline data-chart-json", () => {
    document.body.innerHTML = `<div id="t" data-chart="tokens" data-chart-json='{"tokens":["a","b"],"values":[0,1]}'></div>`;
    enhance(document);
    expect(document.querySelectorAll("#t span.token")).toHaveLength(2);
  });

  it("an unknown chart kind shows the error in place and the others still render", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    document.body.innerHTML = `
      <div id="bad" data-chart="pie" data-chart-json="{}"></div>
      <div id="ok" data-chart="tokens" data-chart-json='{"tokens":["a"],"values":[1]}'></div>`;
    expect(enhance(document)).toBe(1);
    expect(document.getElementById("bad")!.dataset.chartError).toBe("invalid data-chart: pie");
    expect(document.querySelectorAll("#ok span.token")).toHaveLength(1);
  });
});
