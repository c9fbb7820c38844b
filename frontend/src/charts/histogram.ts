import { axisBottom, axisLeft, max, scaleLinear, scaleSymlog, select, type BaseType, type Selection } from "d3";
import type { Accessor } from "../options/accessor";
import { invalid } from "../options/invalid";
import { resolve } from "../options/resolve";
import type { HistogramBin } from "./histogramBin";

export interface Margin {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

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

/** A reusable histogram: configure it, call it on a selection whose datum is the bins, call again to update. */
export interface FeatureHistogram {
  <E extends HTMLElement | SVGElement, P extends BaseType, PD>(selection: Selection<E, HistogramBin[], P, PD>): void;
  width(): number;
  width(value: number): FeatureHistogram;
  height(): number;
  height(value: number): FeatureHistogram;
  margin(): Margin;
  margin(value: Partial<Margin>): FeatureHistogram;
  yScale(): HistogramOptions["yScale"];
  yScale(value: HistogramOptions["yScale"]): FeatureHistogram;
  fill(): Accessor<HistogramBin, string>;
  fill(value: Accessor<HistogramBin, string>): FeatureHistogram;
  unknown(): string;
  unknown(value: string): FeatureHistogram;
  label(): string;
  label(value: string): FeatureHistogram;
}

function positive(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) invalid(name, value);
  return value;
}

function nonNegative(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) invalid(name, value);
  return value;
}

function text(name: string, value: unknown): string {
  if (typeof value !== "string") invalid(name, value);
  return value;
}

/** Creates a histogram chart with the defaults above. Bad option values throw `invalid <option>: <x>`. */
export function featureHistogram(): FeatureHistogram {
  const o: HistogramOptions = { ...defaults, margin: { ...defaults.margin } };

  const chart = (<E extends HTMLElement | SVGElement, P extends BaseType, PD>(selection: Selection<E, HistogramBin[], P, PD>) => {
    selection.each(function (bins) {
      render(this, bins, o);
    });
  }) as FeatureHistogram;

  // Each method is a getter with no argument and a chaining setter with one (Bostock's reusable charts).
  const option = <K extends keyof HistogramOptions>(key: K, check: (v: unknown) => HistogramOptions[K]) =>
    function (this: unknown, ...args: unknown[]) {
      if (args.length === 0) return o[key];
      o[key] = check(args[0]);
      return chart;
    };

  chart.width = option("width", (v) => positive("width", v)) as FeatureHistogram["width"];
  chart.height = option("height", (v) => positive("height", v)) as FeatureHistogram["height"];
  chart.margin = option("margin", (v) => {
    if (typeof v !== "object" || v === null) invalid("margin", v);
    const m = { ...o.margin, ...(v as Partial<Margin>) };
    for (const side of ["top", "right", "bottom", "left"] as const) nonNegative(`margin.${side}`, m[side]);
    return m;
  }) as FeatureHistogram["margin"];
  chart.yScale = option("yScale", (v) => {
    if (v !== "linear" && v !== "symlog") invalid("yScale", v);
    return v;
  }) as FeatureHistogram["yScale"];
  chart.fill = option("fill", (v) => {
    if (typeof v !== "string" && typeof v !== "function") invalid("fill", v);
    return v as Accessor<HistogramBin, string>;
  }) as FeatureHistogram["fill"];
  chart.unknown = option("unknown", (v) => text("unknown", v)) as FeatureHistogram["unknown"];
  chart.label = option("label", (v) => text("label", v)) as FeatureHistogram["label"];
  return chart;
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

  const svg = select(container)
    .selectAll<SVGSVGElement, HistogramBin[]>("svg.histogram")
    .data([bins])
    .join((enter) => enter.append("svg").attr("class", "histogram").attr("role", "img"))
    .attr("viewBox", `0 0 ${width} ${height}`)
    .attr("width", width)
    .attr("height", height)
    .attr("aria-label", o.label);

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

  svg
    .selectAll<SVGGElement, null>("g.x-axis")
    .data([null])
    .join("g")
    .attr("class", "x-axis")
    .attr("transform", `translate(0,${height - margin.bottom})`)
    .call(axisBottom(x).ticks(Math.max(2, Math.floor((width - margin.left - margin.right) / 60))));

  svg
    .selectAll<SVGGElement, null>("g.y-axis")
    .data([null])
    .join("g")
    .attr("class", "y-axis")
    .attr("transform", `translate(${margin.left},0)`)
    .call(axisLeft(y).ticks(3, "~s"));
}
