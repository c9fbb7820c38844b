import {
  extent,
  interpolateViridis,
  quadtree,
  scaleLinear,
  select,
  zoom,
  zoomIdentity,
  type BaseType,
  type Quadtree,
  type Selection,
  type ZoomTransform,
} from "d3";
import { densityPercent } from "../format/densityPercent";
import type { OptionChecks, OptionMethods } from "../options/chartOptions";
import { check } from "../options/check";
import { invalid } from "../options/invalid";
import { reusableChart } from "./reusableChart";

/** Map coordinates of an SAE's features, columnar (as /<model>/<sae>/map.json serves them);
 * x and y are null for a feature not laid out yet. */
export interface MapData {
  index: number[];
  x: (number | null)[];
  y: (number | null)[];
  density: number[];
  dead: number[];
}

export interface MapPoint {
  index: number;
  x: number;
  y: number;
  density: number;
  dead: boolean;
}

export interface FeatureMapOptions {
  /** Outer width in pixels; null: the container's width (640 when it has none). @default null */
  width: number | null;
  /** Outer height in pixels (reserve it in CSS so nothing moves). @default 440 */
  height: number;
  /** Point radius in pixels, kept constant while zooming; null: smaller for more points. @default null */
  radius: number | null;
  /** "svg" (one circle per feature), "canvas" (one bitmap), or "auto": svg up to 4,000 points. @default "auto" */
  renderer: "auto" | "svg" | "canvas";
  /** Colour of a live feature from log10(density) and the [min, max] of those. @default viridis */
  color: (logDensity: number, domain: [number, number]) => string;
  /** Colour of dead features (drawn beneath the live ones). @default "#9e9e9e" */
  deadColor: string;
  /** Link of a feature (opened on click); null: points are not links. @default null */
  href: ((index: number) => string) | null;
  /** Text shown under a hovered feature's index (its explanation), sync or async. @default null */
  describe: ((index: number) => string | null | Promise<string | null>) | null;
  /** Follows a point's link. @default location.assign */
  navigate: ((url: string) => void) | null;
}

const SVG_LIMIT = 4000;

const defaults: FeatureMapOptions = {
  width: null,
  height: 440,
  radius: null,
  renderer: "auto",
  // Viridis from 0.12: its darkest purple vanishes on the dark theme.
  color: (v, [lo, hi]) => interpolateViridis(0.12 + 0.88 * (hi > lo ? (v - lo) / (hi - lo) : 0.5)),
  deadColor: "#9e9e9e",
  href: null,
  describe: null,
  navigate: null,
};

const checks: OptionChecks<FeatureMapOptions> = {
  width: check.orNull(check.positive),
  height: check.positive,
  radius: check.orNull(check.positive),
  renderer: check.oneOf("auto", "svg", "canvas"),
  color: check.fn,
  deadColor: check.text,
  href: check.fnOrNull,
  describe: check.fnOrNull,
  navigate: check.fnOrNull,
};

/** A zoomable, pannable scatter of every feature: call on a selection whose datum is MapData. */
export interface FeatureMap extends OptionMethods<FeatureMapOptions, FeatureMap> {
  <E extends HTMLElement, P extends BaseType, PD>(selection: Selection<E, MapData, P, PD>): void;
}

/** Converts columnar map data to points, dropping rows whose coordinates are not finite. */
export function mapPoints(data: MapData): MapPoint[] {
  if (typeof data !== "object" || data === null || !Array.isArray(data.index)) invalid("map data", data);
  const n = data.index.length;
  for (const key of ["x", "y", "density", "dead"] as const) {
    if (!Array.isArray(data[key]) || data[key].length !== n) invalid(`map data.${key}`, `${data[key]?.length} for ${n} features`);
  }
  const points: MapPoint[] = [];
  for (let i = 0; i < n; ++i) {
    const x = data.x[i];
    const y = data.y[i];
    if (x == null || y == null || !Number.isFinite(x) || !Number.isFinite(y)) continue;
    points.push({ index: data.index[i] as number, x, y, density: data.density[i] as number, dead: !!data.dead[i] });
  }
  return points;
}

/** [min, max] of log10(density) over live features with a positive density. */
export function logDensityDomain(points: MapPoint[]): [number, number] {
  const [lo, hi] = extent(points, (p) => (!p.dead && p.density > 0 ? Math.log10(p.density) : undefined));
  return lo === undefined || hi === undefined ? [-6, 0] : [lo, hi];
}

/** Creates a feature map with the defaults above. Bad option values throw `invalid <option>: <x>`. */
export function featureMap(): FeatureMap {
  return reusableChart({ ...defaults }, checks, (container: HTMLElement, data: MapData, o) => render(container, mapPoints(data), o));
}

function render(container: HTMLElement, points: MapPoint[], o: FeatureMapOptions): void {
  if (points.length === 0) {
    // Indexed but not yet laid out (map coordinates come from a later step): say so.
    select(container).selectAll("*").remove();
    select(container).append("p").attr("class", "feature-map__empty muted").text("Not laid out yet: a worker computes the map after indexing.");
    return;
  }
  const width = o.width ?? (container.clientWidth || 640);
  const height = o.height;
  const pad = 12;
  const radius = o.radius ?? (points.length > 20000 ? 1.2 : points.length > 2000 ? 2 : 4);
  const useCanvas = o.renderer === "canvas" || (o.renderer === "auto" && points.length > SVG_LIMIT);
  const domain = logDensityDomain(points);
  // Log densities are snapped to 64 steps of the domain: the eye cannot tell them apart, and
  // the canvas renderer then fills one path per colour.
  const step = (domain[1] - domain[0]) / 64 || 1;
  const snap = (v: number) => domain[0] + Math.round((v - domain[0]) / step) * step;
  const fill = (p: MapPoint) => (p.dead || !(p.density > 0) ? o.deadColor : o.color(snap(Math.log10(p.density)), domain));
  // Dead features first, so live ones are drawn on top of them.
  const ordered = [...points].sort((a, b) => Number(b.dead) - Number(a.dead));

  const [x0, x1] = extent(points, (p) => p.x) as [number, number] | [undefined, undefined];
  const [y0, y1] = extent(points, (p) => p.y) as [number, number] | [undefined, undefined];
  // One scale for both axes keeps distances honest.
  const span = Math.max((x1 ?? 1) - (x0 ?? 0), (y1 ?? 1) - (y0 ?? 0)) || 1;
  const size = Math.min(width, height) - 2 * pad;
  const cx = ((x0 ?? 0) + (x1 ?? 1)) / 2;
  const cy = ((y0 ?? 0) + (y1 ?? 1)) / 2;
  const x = scaleLinear().domain([cx - span / 2, cx + span / 2]).range([width / 2 - size / 2, width / 2 + size / 2]);
  const y = scaleLinear().domain([cy - span / 2, cy + span / 2]).range([height / 2 + size / 2, height / 2 - size / 2]);

  const root = select(container);
  root.selectAll(".feature-map__fallback").remove();
  root.style("position", "relative");
  const stage = root
    .selectAll<HTMLDivElement, null>("div.feature-map__stage")
    .data([null])
    .join("div")
    .attr("class", "feature-map__stage")
    .style("height", `${height}px`);
  stage.selectAll("*").remove();

  const tip = root
    .selectAll<HTMLDivElement, null>("div.map-tooltip")
    .data([null])
    .join((enter) => {
      const div = enter.append("div").attr("class", "map-tooltip").attr("role", "status");
      div.append("strong");
      div.append("span").attr("class", "map-tooltip__density");
      div.append("span").attr("class", "map-tooltip__text");
      return div;
    })
    .property("hidden", true);

  let hovered: number | null = null;
  const showTip = (p: MapPoint | null, px: number, py: number) => {
    if (p === null) {
      hovered = null;
      tip.property("hidden", true);
      return;
    }
    tip.property("hidden", false).style("left", `${Math.round(px)}px`).style("top", `${Math.round(py)}px`);
    if (hovered === p.index) return;
    hovered = p.index;
    tip.select("strong").text(`#${p.index}`);
    tip.select(".map-tooltip__density").text(p.dead ? " dead" : ` density ${densityPercent(p.density)}`);
    const text = tip.select(".map-tooltip__text").text("");
    const described = o.describe?.(p.index);
    if (described instanceof Promise) {
      described.then((t) => hovered === p.index && text.text(t ?? "")).catch(() => undefined);
    } else if (described) {
      text.text(described);
    }
  };
  const open = (p: MapPoint) => {
    const url = o.href?.(p.index);
    if (!url) return;
    if (o.navigate) o.navigate(url);
    else container.ownerDocument.defaultView?.location.assign(url);
  };

  let transform: ZoomTransform = zoomIdentity;
  const zoomer = zoom<HTMLElement, null>().scaleExtent([0.5, 60]);

  if (!useCanvas) {
    const svg = stage
      .append("svg")
      .attr("class", "feature-map__svg")
      .attr("width", width)
      .attr("height", height)
      .attr("viewBox", `0 0 ${width} ${height}`)
      .attr("role", "img")
      .attr("aria-label", `Map of ${points.length} features`);
    const g = svg.append("g").attr("class", "points");
    const circles = g
      .selectAll<SVGCircleElement, MapPoint>("circle")
      .data(ordered)
      .join("circle")
      .attr("class", (p) => (p.dead ? "map-point map-point--dead" : "map-point"))
      .attr("data-index", (p) => p.index)
      .attr("cx", (p) => x(p.x))
      .attr("cy", (p) => y(p.y))
      .attr("r", radius)
      .attr("fill", fill)
      .on("mouseenter", (event: MouseEvent, p) => {
        const [px, py] = [x(p.x) * transform.k + transform.x, y(p.y) * transform.k + transform.y];
        showTip(p, px, py);
        select(event.currentTarget as SVGCircleElement).classed("is-hovered", true);
      })
      .on("mouseleave", (event: MouseEvent) => {
        showTip(null, 0, 0);
        select(event.currentTarget as SVGCircleElement).classed("is-hovered", false);
      })
      .on("click", (_event, p) => open(p));
    if (o.href) circles.style("cursor", "pointer");
    zoomer.on("zoom", (event: { transform: ZoomTransform }) => {
      transform = event.transform;
      g.attr("transform", transform.toString());
      circles.attr("r", radius / transform.k);
      showTip(null, 0, 0);
    });
  } else {
    const ratio = container.ownerDocument.defaultView?.devicePixelRatio ?? 1;
    const canvas = stage
      .append("canvas")
      .attr("class", "feature-map__canvas")
      .attr("width", Math.round(width * ratio))
      .attr("height", Math.round(height * ratio))
      .style("width", `${width}px`)
      .style("height", `${height}px`)
      .attr("role", "img")
      .attr("aria-label", `Map of ${points.length} features`);
    const ctx = (canvas.node() as HTMLCanvasElement).getContext("2d");
    const tree: Quadtree<MapPoint> = quadtree<MapPoint>()
      .x((p) => x(p.x))
      .y((p) => y(p.y))
      .addAll(ordered);
    // One path per colour (dead first): a fill per colour, not per point, keeps zooming
    // smooth with hundreds of thousands of features.
    const byColor = new Map<string, MapPoint[]>();
    for (const p of ordered) {
      const c = fill(p);
      const list = byColor.get(c);
      if (list) list.push(p);
      else byColor.set(c, [p]);
    }
    const draw = () => {
      if (!ctx) return;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.translate(transform.x, transform.y);
      ctx.scale(transform.k, transform.k);
      const r = radius / transform.k;
      for (const [c, list] of byColor) {
        ctx.fillStyle = c;
        ctx.beginPath();
        for (const p of list) {
          const px = x(p.x);
          const py = y(p.y);
          ctx.moveTo(px + r, py);
          ctx.arc(px, py, r, 0, 2 * Math.PI);
        }
        ctx.fill();
      }
    };
    const find = (event: MouseEvent): MapPoint | null => {
      const box = (canvas.node() as HTMLCanvasElement).getBoundingClientRect();
      const [mx, my] = transform.invert([event.clientX - box.left, event.clientY - box.top]);
      return tree.find(mx, my, (radius + 3) / transform.k) ?? null;
    };
    canvas
      .on("mousemove", (event: MouseEvent) => {
        const p = find(event);
        if (p) showTip(p, x(p.x) * transform.k + transform.x, y(p.y) * transform.k + transform.y);
        else showTip(null, 0, 0);
        canvas.style("cursor", p && o.href ? "pointer" : "default");
      })
      .on("mouseleave", () => showTip(null, 0, 0))
      .on("click", (event: MouseEvent) => {
        const p = find(event);
        if (p) open(p);
      });
    zoomer.on("zoom", (event: { transform: ZoomTransform }) => {
      transform = event.transform;
      draw();
      showTip(null, 0, 0);
    });
    draw();
  }
  (stage as unknown as Selection<HTMLElement, null, null, undefined>).call(zoomer);
  legend(root, domain, o, points.length, points.some((p) => p.dead));
}

function legend(
  root: Selection<HTMLElement, unknown, null, undefined>,
  domain: [number, number],
  o: FeatureMapOptions,
  count: number,
  anyDead: boolean,
): void {
  const stops = Array.from({ length: 11 }, (_, i) => `${o.color(domain[0] + ((domain[1] - domain[0]) * i) / 10, domain)} ${i * 10}%`);
  const box = root.selectAll<HTMLDivElement, null>("div.map-legend").data([null]).join("div").attr("class", "map-legend");
  box.selectAll("*").remove();
  box.append("span").attr("class", "map-legend__label").text(`${count.toLocaleString("en")} features · density`);
  box.append("span").attr("class", "map-legend__end").text(densityPercent(10 ** domain[0]));
  box.append("span").attr("class", "map-legend__ramp").style("background", `linear-gradient(to right, ${stops.join(", ")})`);
  box.append("span").attr("class", "map-legend__end").text(densityPercent(10 ** domain[1]));
  if (anyDead) box.append("span").attr("class", "map-legend__dead").text("dead");
}

