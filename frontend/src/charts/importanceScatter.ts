import { axisLeft, extent, scaleLinear, type BaseType, type Selection } from "d3";
import { densityPercent } from "../format/densityPercent";
import type { Accessor } from "../options/accessor";
import type { OptionChecks, OptionMethods } from "../options/chartOptions";
import { check } from "../options/check";
import { invalid } from "../options/invalid";
import { resolve } from "../options/resolve";
import { chartAxes } from "./chartAxes";
import { chartSvg } from "./chartSvg";
import type { Margin } from "./margin";
import { reusableChart } from "./reusableChart";

/** One feature of the overview: its density (fraction of tokens) and importance (loss increase, nats). */
export interface ImportancePoint {
  index: number;
  density: number;
  importance: number;
}

export interface ImportanceScatterOptions {
  /** Outer width in pixels. @default 420 */
  width: number;
  /** Outer height in pixels. @default 260 */
  height: number;
  /** Space for the axes. @default {top: 10, right: 12, bottom: 34, left: 48} */
  margin: Margin;
  /** Dot radius in pixels. @default 3 */
  radius: number;
  /** Dot fill: a constant or a function of the point. @default "currentColor" */
  fill: Accessor<ImportancePoint, string>;
  /** Link of a dot (opened on click), or null for none. @default null */
  href: ((index: number) => string) | null;
  /** Accessible name. @default "Density against importance" */
  label: string;
}

const defaults: ImportanceScatterOptions = {
  width: 420,
  height: 260,
  margin: { top: 10, right: 12, bottom: 34, left: 48 },
  radius: 3,
  fill: "currentColor",
  href: null,
  label: "Density against importance",
};

const checks: OptionChecks<ImportanceScatterOptions> = {
  width: check.positive,
  height: check.positive,
  margin: check.margin,
  radius: check.positive,
  fill: check.accessor,
  href: check.fnOrNull,
  label: check.text,
};

/** A reusable scatter of log10 density (x) against importance (y); points with density ≤ 0 or a non-finite value are left out. */
export interface ImportanceScatter extends OptionMethods<ImportanceScatterOptions, ImportanceScatter, { margin: Partial<Margin> }> {
  <E extends HTMLElement | SVGElement, P extends BaseType, PD>(selection: Selection<E, ImportancePoint[], P, PD>): void;
}

/** Creates the scatter with the defaults above. Bad option values throw `invalid <option>: <x>`. */
export function importanceScatter(): ImportanceScatter {
  return reusableChart({ ...defaults, margin: { ...defaults.margin } }, checks, render);
}

/** The extent widened to at least `minSpan` (around its centre), plus 5% on each side. */
function padded(ext: [number, number] | [undefined, undefined], minSpan: (lo: number, hi: number) => number): [number, number] {
  const [lo, hi] = ext;
  if (lo === undefined || hi === undefined) return [0, 1];
  const span = Math.max(hi - lo, minSpan(lo, hi));
  const mid = (lo + hi) / 2;
  return [mid - span * 0.55, mid + span * 0.55];
}

function render(container: HTMLElement | SVGElement, points: ImportancePoint[], o: ImportanceScatterOptions): void {
  if (!Array.isArray(points)) invalid("points", points);
  const { width, height, margin } = o;
  if (width <= margin.left + margin.right) invalid("width", width);
  if (height <= margin.top + margin.bottom) invalid("height", height);
  const shown = points.filter((p) => p.density > 0 && Number.isFinite(p.density) && Number.isFinite(p.importance));
  const [x0, x1] = padded(extent(shown, (p) => Math.log10(p.density)), () => 1); // at least a decade
  const x = scaleLinear()
    .domain([Math.min(x0, -1), Math.min(x1, 0)]) // a density is at most 1
    .range([margin.left, width - margin.right]);
  const y = scaleLinear()
    .domain(padded(extent(shown, (p) => p.importance), (lo, hi) => Math.max(Math.abs(lo), Math.abs(hi)) || 1))
    .range([height - margin.bottom, margin.top])
    .nice(4);

  const svg = chartSvg(container, "importance-scatter", shown, o);

  const dots = svg
    .selectAll<SVGGElement, null>("g.dots")
    .data([null])
    .join("g")
    .attr("class", "dots")
    .selectAll<SVGCircleElement, ImportancePoint>("circle")
    .data(shown, (p) => p.index)
    .join("circle")
    .attr("class", "dot")
    .attr("data-index", (p) => p.index)
    .attr("cx", (p) => x(Math.log10(p.density)))
    .attr("cy", (p) => y(p.importance))
    .attr("r", o.radius)
    .attr("fill", (p, i) => resolve(o.fill, p, i))
    .attr("fill-opacity", 0.7)
    .style("cursor", () => (o.href ? "pointer" : null));
  dots
    .selectAll("title")
    .data((p) => [p])
    .join("title")
    .text((p) => `#${p.index}: density ${densityPercent(p.density)}, loss +${+p.importance.toPrecision(3)}`);
  const href = o.href;
  if (href) dots.on("click", (_event: MouseEvent, p: ImportancePoint) => container.ownerDocument?.defaultView?.location.assign(href(p.index)));
  else dots.on("click", null);

  chartAxes(svg, x, axisLeft(y).ticks(4, "~g"), o);
  svg
    .selectAll<SVGTextElement, string>("text.x-label")
    .data(["log10 density"])
    .join("text")
    .attr("class", "x-label")
    .attr("x", width - margin.right)
    .attr("y", height - 4)
    .attr("text-anchor", "end")
    .attr("font-size", 10)
    .attr("fill", "currentColor")
    .text((d) => d);
}
