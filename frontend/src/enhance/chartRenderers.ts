import { select } from "d3";
import { binsFromEdges } from "../charts/binsFromEdges";
import { densityBins } from "../charts/densityBins";
import { featureMap, type MapData } from "../charts/featureMap";
import { featureHistogram } from "../charts/histogram";
import { getJson } from "../http";
import type { HistogramBin } from "../charts/histogramBin";
import { logitBars, type LogitData } from "../charts/logitBars";
import { invalid } from "../options/invalid";
import type { TokenData } from "../tokens/tokenData";
import { tokenStrip } from "../tokens/tokenStrip";
import { examplesPanel } from "./examplesPanel";
import { explanationLookup } from "./explanationLookup";

type Renderer = (el: HTMLElement, data: unknown) => void;

function record(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null) invalid(name, value);
  return value as Record<string, unknown>;
}

/**
 * One renderer per `data-chart` value. Data shapes (JSON from the server):
 * - histogram: `{edges: number[n+1], counts: (number|null)[n], yScale?: "linear"|"symlog", width?, height?, label?}`
 * - tokens: `{tokens: string[], values: (number|null)[], max?: number, maxPosition?: number, window?: number, bosExcluded?: boolean}`
 * - logits: `{positive: [{token, value}], negative: [{token, value}]}`
 * - examples: `{max: number|null, bosExcluded?: boolean, examples: [{tokens, values, maxPosition}]}`, drawn into the
 *   element's `[data-example=i]` children; `[data-context-width]` links switch the context width
 * - feature-map: `{src: url of {points: MapData}, base: "/<model>/<sae>/"}` or `{points: MapData, base}`
 */
export const chartRenderers: Record<string, Renderer> = {
  histogram(el, data) {
    const d = record(data, "histogram data");
    const bins = binsFromEdges(d.edges as number[], d.counts as (number | null)[]);
    const chart = featureHistogram();
    if (d.yScale !== undefined) chart.yScale(d.yScale as "linear" | "symlog");
    if (d.width !== undefined) chart.width(d.width as number);
    if (d.height !== undefined) chart.height(d.height as number);
    if (d.label !== undefined) chart.label(d.label as string);
    select<HTMLElement, HistogramBin[]>(el).datum(bins).call(chart);
  },
  tokens(el, data) {
    const d = record(data, "tokens data");
    const strip = tokenStrip();
    if (d.max !== undefined && d.max !== null) strip.max(d.max as number);
    if (d.window !== undefined && d.window !== null) strip.window(d.window as number);
    select<HTMLElement, TokenData>(el)
      .datum({
        tokens: d.tokens as string[],
        values: (d.values ?? []) as (number | null)[],
        maxPosition: (d.maxPosition ?? null) as number | null,
        bosExcluded: d.bosExcluded === true,
      })
      .call(strip);
  },
  logits(el, data) {
    select<HTMLElement, LogitData>(el).datum(record(data, "logits data") as unknown as LogitData).call(logitBars());
  },
  examples(el, data) {
    examplesPanel(el, record(data, "examples data"));
  },
  "feature-map"(el, data) {
    const d = record(data, "feature-map data");
    const base = typeof d.base === "string" ? d.base : invalid("feature-map base", d.base);
    // Square on a phone, 440 px tall elsewhere (styles.css reserves the same height).
    const chart = featureMap()
      .height(Math.min(440, Math.max(240, el.clientWidth || 440)))
      .href((i) => `${base}${i}/`)
      .describe(explanationLookup(base));
    const draw = (points: unknown) => {
      const data = record(points, "map points") as unknown as MapData;
      select<HTMLElement, MapData>(el).datum(data).call(chart);
      el.dataset.mapReady = "true";
      // The same data gives the SAE's density distribution, drawn where the page asks for it.
      const target = el.ownerDocument.querySelector<HTMLElement>("[data-density-histogram]");
      const bins = densityBins(data.density.map((density, i) => ({ density, dead: !!data.dead[i] })));
      if (target && bins.length) {
        select<HTMLElement, HistogramBin[]>(target)
          .datum(bins)
          .call(featureHistogram().width(280).height(120).label("Features by log10 density"));
        target.dataset.chartRendered = "true";
      }
    };
    if (d.points !== undefined) return draw(d.points);
    if (typeof d.src !== "string") invalid("feature-map src", d.src);
    el.setAttribute("aria-busy", "true");
    getJson<{ points: unknown }>(d.src)
      .then((body) => draw(body.points))
      .catch((error: unknown) => {
        el.dataset.chartError = String(error);
        el.textContent = `Map unavailable: ${error instanceof Error ? error.message : String(error)}`;
      })
      .finally(() => el.removeAttribute("aria-busy"));
  },
};
