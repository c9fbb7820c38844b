import { describe, expect, it } from "vitest";
import { chartOptions, type OptionMethods } from "../src/options/chartOptions";
import { check } from "../src/options/check";

interface Options {
  size: number;
  mode: "a" | "b";
  label: string | null;
}

interface Chart extends OptionMethods<Options, Chart> {
  (): Options;
}

function chart(): Chart {
  const o: Options = { size: 1, mode: "a", label: null };
  return chartOptions(() => ({ ...o }), o, { size: check.positive, mode: check.oneOf("a", "b"), label: check.orNull(check.text) });
}

describe("chartOptions", () => {
  it("a method without an argument reads the option", () => {
    expect(chart().size()).toBe(1);
    expect(chart().label()).toBeNull();
  });

  it("a method with an argument sets the option and returns the chart, so setters chain", () => {
    const c = chart();
    expect(c.size(3).mode("b").label("x")).toBe(c);
    expect(c()).toEqual({ size: 3, mode: "b", label: "x" });
  });

  it("each chart has its own options", () => {
    const a = chart().size(5);
    expect(chart().size()).toBe(1);
    expect(a.size()).toBe(5);
  });

  it("a bad value throws invalid <option>: <value> and keeps the old one", () => {
    const c = chart();
    expect(() => c.mode("c" as "a")).toThrow("invalid mode: c");
    expect(() => c.size(0)).toThrow("invalid size: 0");
    expect(c.mode()).toBe("a");
    expect(c.size()).toBe(1);
  });

  it("check.margin merges the sides given into the current margin", () => {
    const current = { top: 1, right: 2, bottom: 3, left: 4 };
    expect(check.margin({ left: 0 }, "margin", current)).toEqual({ top: 1, right: 2, bottom: 3, left: 0 });
    expect(() => check.margin({ top: -1 }, "margin", current)).toThrow("invalid margin.top: -1");
  });

  it("check.accessor takes a string constant or a function", () => {
    const f = () => "red";
    expect(check.accessor("red", "fill")).toBe("red");
    expect(check.accessor(f, "fill")).toBe(f);
    expect(() => check.accessor(3, "fill")).toThrow("invalid fill: 3");
  });
});
