import { axisLeft, max, scaleLinear, scaleSymlog, type BaseType, type Selection } from "d3";
import type { Accessor } from "../options/accessor";
import type { OptionChecks, OptionMethods } from "../options/chartOptions";
import { check } from "../options/check";
import { invalid } from "../options/invalid";
import { resolve } from "../options/resolve";
import { chartAxes } from "./chartAxes";
import { chartSvg } from "./chartSvg";
import type { HistogramBin } from "./histogramBin";
import type { Margin } from "./margin";
import { reusableChart } from "./reusableChart";

export interface HistogramOptions {
  /** Outer width in pixels (the SVG scales down with CSS). @default 320 */
  width: number;
  /** Outer height in pixels. @default 120 */
  height: number;
  /** Space for the axes, in pixels. @default {top: 8, right: 8, bottom: 22, left: 36} */
  margin: Margin;
  /** "linear", or "symlog" when counts span orders of magnitude (zero stays zero). @default "linear" */
  yScale: "linear" | "symlog";
  /** Bar fill: a constant or a function of the bin and its index. @default "currentColor" */
  fill: Accessor<HistogramBin, string>;
  /** Colour of a bin whose count is unknown (NaN): a faint, dashed, full-height box. @default "#9e9e9e" */
  unknown: string;
  /** Accessible name of the chart. @default "Activation histogram" */
  label: string;
}

const defaults: HistogramOptions = {
  width: 320,
  height: 120,
  margin: { top: 8, right: 8, bottom: 22, left: 36 },
  yScale: "linear",
  fill: "currentColor",
  unknown: "#9e9e9e",
  label: "Activation histogram",
};

const checks: OptionChecks<HistogramOptions> = {
  width: check.positive,
  height: check.positive,
  margin: check.margin,
  yScale: check.oneOf("linear", "symlog"),
  fill: check.accessor,
  unknown: check.text,
  label: check.text,
};

/** A reusable histogram: configure it, call it on a selection whose datum is the bins, call again to update. */
export interface FeatureHistogram extends OptionMethods<HistogramOptions, FeatureHistogram, { margin: Partial<Margin> }> {
  <E extends HTMLElement | SVGElement, P extends BaseType, PD>(selection: Selection<E, HistogramBin[], P, PD>): void;
}

/** Creates a histogram chart with the defaults above. Bad option values throw `invalid <option>: <x>`. */
export function featureHistogram(): FeatureHistogram {
  return reusableChart({ ...defaults, margin: { ...defaults.margin } }, checks, render);
}

function render(container: HTMLElement | SVGElement, bins: HistogramBin[], o: HistogramOptions): void {
  if (!Array.isArray(bins)) invalid("bins", bins);
  const { width, height, margin } = o;
  if (width <= margin.left + margin.right) invalid("width", width);
  if (height <= margin.top + margin.bottom) invalid("height", height);
  for (const [i, b] of bins.entries()) {
    if (!Number.isFinite(b.x0) || !Number.isFinite(b.x1) || b.x1 < b.x0) invalid("bins", `[${b.x0}, ${b.x1}] at bin ${i}`);
  }

  const x0 = bins.length ? (bins[0] as HistogramBin).x0 : 0;
  const x1 = bins.length ? (bins[bins.length - 1] as HistogramBin).x1 : 1;
  const x = scaleLinear()
    .domain([x0, x1 > x0 ? x1 : x0 + 1])
    .range([margin.left, width - margin.right]);
  const top = max(bins, (b) => (Number.isFinite(b.count) ? b.count : undefined)) ?? 0;
  const y = (o.yScale === "symlog" ? scaleSymlog() : scaleLinear())
    .domain([0, top > 0 ? top : 1])
    .range([height - margin.bottom, margin.top]);
  if (o.yScale === "linear") y.nice(3);

  const svg = chartSvg(container, "histogram", bins, o);

  svg
    .selectAll<SVGGElement, null>("g.bars")
    .data([null])
    .join("g")
    .attr("class", "bars")
    .selectAll<SVGRectElement, HistogramBin>("rect")
    .data(bins, (_, i) => i)
    .join("rect")
    .attr("class", (b) => (Number.isFinite(b.count) ? "bar" : "bar missing"))
    .attr("x", (b) => x(b.x0) + 0.5)
    .attr("width", (b) => Math.max(0, x(b.x1) - x(b.x0) - 1))
    .attr("y", (b) => (Number.isFinite(b.count) ? y(b.count) : margin.top))
    .attr("height", (b) => (Number.isFinite(b.count) ? y(0) - y(b.count) : height - margin.bottom - margin.top))
    .attr("fill", (b, i) => (Number.isFinite(b.count) ? resolve(o.fill, b, i) : o.unknown))
    .attr("fill-opacity", (b) => (Number.isFinite(b.count) ? null : 0.15))
    .attr("stroke", (b) => (Number.isFinite(b.count) ? null : o.unknown))
    .attr("stroke-dasharray", (b) => (Number.isFinite(b.count) ? null : "3,2"))
    .selectAll("title")
    .data((b) => [b])
    .join("title")
    .text((b) => `${b.x0}–${b.x1}: ${Number.isFinite(b.count) ? b.count : "no data"}`);

  chartAxes(svg, x, axisLeft(y).ticks(3, "~s"), o);
}
