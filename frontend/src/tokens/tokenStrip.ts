import { max as d3max, select, type BaseType, type ScaleSequential, type Selection } from "d3";
import { reusableChart } from "../charts/reusableChart";
import type { OptionChecks, OptionMethods } from "../options/chartOptions";
import { check } from "../options/check";
import { invalid } from "../options/invalid";
import { activationColor } from "../scales/activationColor";
import { readableTextColor } from "../scales/readableTextColor";
import { displayToken } from "./displayToken";
import type { TokenData } from "./tokenData";
import { tokenKind } from "./tokenKind";

export interface TokenStripOptions {
  /** Activation drawn in the strongest colour; null: the largest finite value in the data. @default null */
  max: number | null;
  /** Builds the colour scale for a max; swap it to change the palette. @default activationColor */
  color: (max: number) => ScaleSequential<string, string>;
  /** Significant digits of the value shown in each token's tooltip. @default 3 */
  precision: number;
  /** Tokens shown either side of the max token; null shows every token. @default null */
  window: number | null;
}

const defaults: TokenStripOptions = { max: null, color: activationColor, precision: 3, window: null };

const checks: OptionChecks<TokenStripOptions> = {
  max: check.orNull(check.positive),
  color: check.fn,
  // toPrecision's range.
  precision: check.integer(1, 21),
  window: check.orNull(check.integer(0)),
};

interface TokenItem {
  token: string;
  value: number;
  isMax: boolean;
  excluded: boolean;
}

/** The title of a BOS token drawn but left out of the statistics. */
export const EXCLUDED_TITLE = "BOS: excluded from statistics";

/** A reusable token heatmap: call it on a selection whose datum is TokenData, call again to update. */
export interface TokenStrip extends OptionMethods<TokenStripOptions, TokenStrip> {
  <E extends HTMLElement, D extends TokenData, P extends BaseType, PD>(selection: Selection<E, D, P, PD>): void;
}

/**
 * Creates a token strip. Model text is untrusted: every token is written with `.text()`,
 * so markup in a token shows as characters and never becomes an element.
 */
export function tokenStrip(): TokenStrip {
  return reusableChart({ ...defaults }, checks, render);
}

/** The position of the largest finite value (the first one on ties); 0 when there is none. */
function argmax(values: ArrayLike<number | null | undefined>, n: number): number {
  let best = 0;
  let top = -Infinity;
  for (let i = 0; i < n; ++i) {
    const v = values[i];
    if (v != null && Number.isFinite(+v) && +v > top) {
      top = +v;
      best = i;
    }
  }
  return best;
}

function render(container: HTMLElement, data: TokenData, o: TokenStripOptions): void {
  if (typeof data !== "object" || data === null || !Array.isArray(data.tokens)) invalid("tokens", data);
  const values = data.values ?? [];
  const n = data.tokens.length;
  const centre = data.maxPosition ?? argmax(values, n);
  const start = o.window === null ? 0 : Math.max(0, centre - o.window);
  const stop = o.window === null ? n : Math.min(n, centre + o.window + 1);
  const all = Array.from({ length: n }, (_, i) => {
    const v = values[i];
    return v == null ? NaN : +v;
  });
  const marked = data.maxPosition != null || (all[centre] ?? 0) > 0;
  const items: TokenItem[] = [];
  for (let i = start; i < stop; ++i) {
    items.push({
      token: String(data.tokens[i]),
      value: all[i] as number,
      isMax: marked && i === centre,
      excluded: data.bosExcluded === true && i === 0,
    });
  }
  const observed = d3max(all, (v) => (Number.isFinite(v) ? v : undefined)) ?? 0;
  // Nothing fired: any positive max gives the same all-transparent strip.
  const color = o.color(o.max ?? (observed > 0 ? observed : 1));

  select(container)
    .selectAll<HTMLSpanElement, TokenData>("span.token-strip")
    .data([data])
    .join("span")
    .attr("class", `token-strip${start > 0 ? " token-strip--cut-before" : ""}${stop < n ? " token-strip--cut-after" : ""}`)
    .attr("data-precision", o.precision === defaults.precision ? null : o.precision)
    .selectAll<HTMLSpanElement, TokenItem>("span.token")
    .data(items)
    .join("span")
    .attr("class", (d) => {
      const kind = tokenKind(d.token);
      return `token token--${kind}${Number.isFinite(d.value) ? "" : " token--unknown"}${d.isMax ? " token--max" : ""}${d.excluded ? " token--excluded" : ""}`;
    })
    .attr("title", (d) => (d.excluded ? EXCLUDED_TITLE : null))
    .text((d) => displayToken(d.token))
    // tokenTooltip shows this value on hover; the server renders the same attribute.
    .attr("data-value", (d) => (Number.isFinite(d.value) ? String(d.value) : "NaN"))
    .style("background-color", (d) => color(d.value))
    .style("color", (d) => readableTextColor(color(d.value)));
}
