import { select, type Selection } from "d3";
import { describe, expect, it } from "vitest";
import { reusableChart } from "../src/charts/reusableChart";
import type { OptionMethods } from "../src/options/chartOptions";
import { check } from "../src/options/check";

interface Options {
  prefix: string;
}

interface Label extends OptionMethods<Options, Label> {
  (selection: Selection<HTMLElement, string, null, undefined>): void;
}

const label = (): Label => reusableChart({ prefix: "#" }, { prefix: check.text }, (el: HTMLElement, d: string, o) => void (el.textContent = o.prefix + d));

describe("reusableChart", () => {
  it("chart(selection) renders each element's datum with the current options", () => {
    const a = document.createElement("p");
    const b = document.createElement("p");
    const chart = label();
    select<HTMLElement, string>(a).datum("1").call(chart);
    select<HTMLElement, string>(b).datum("2").call(chart.prefix("§"));
    expect([a.textContent, b.textContent]).toEqual(["#1", "§2"]);
  });
});
