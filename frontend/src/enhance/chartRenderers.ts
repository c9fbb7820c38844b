import { select } from "d3";
import { binsFromEdges } from "../charts/binsFromEdges";
import { featureHistogram } from "../charts/histogram";
import type { HistogramBin } from "../charts/histogramBin";
import { invalid } from "../options/invalid";
import type { TokenData } from "../tokens/tokenData";
import { tokenStrip } from "../tokens/tokenStrip";

type Renderer = (el: HTMLElement, data: unknown) => void;

function record(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null) invalid(name, value);
  return value as Record<string, unknown>;
}

/**
 * One renderer per `data-chart` value. Data shapes (JSON from the server):
 * - histogram: `{edges: number[n+1], counts: (number|null)[n], yScale?: "linear"|"symlog"}`
 * - tokens: `{tokens: string[], values: (number|null)[], max?: number}`
 */
export const chartRenderers: Record<string, Renderer> = {
  histogram(el, data) {
    const d = record(data, "histogram data");
    const bins = binsFromEdges(d.edges as number[], d.counts as (number | null)[]);
    const chart = featureHistogram();
    if (d.yScale !== undefined) chart.yScale(d.yScale as "linear" | "symlog");
    select<HTMLElement, HistogramBin[]>(el).datum(bins).call(chart);
  },
  tokens(el, data) {
    const d = record(data, "tokens data");
    const strip = tokenStrip();
    if (d.max !== undefined && d.max !== null) strip.max(d.max as number);
    select<HTMLElement, TokenData>(el)
      .datum({ tokens: d.tokens as string[], values: (d.values ?? []) as (number | null)[] })
      .call(strip);
  },
};
