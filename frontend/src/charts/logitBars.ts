import { format as d3format, select, type BaseType, type Selection } from "d3";
import type { OptionChecks, OptionMethods } from "../options/chartOptions";
import { check } from "../options/check";
import { invalid } from "../options/invalid";
import { displayToken } from "../tokens/displayToken";
import { reusableChart } from "./reusableChart";

/** One token and its direct effect on the logits. */
export interface LogitEntry {
  token: string;
  value: number;
}

/** The tokens a feature promotes most (positive) and suppresses most (negative). */
export interface LogitData {
  positive: LogitEntry[];
  negative: LogitEntry[];
}

export interface LogitBarsOptions {
  /** Value drawn as a full bar; null: the largest |value| in the data. @default null */
  scale: number | null;
  /** Formats each value. @default d3.format(".3~g") */
  format: (value: number) => string;
}

const defaults: LogitBarsOptions = { scale: null, format: d3format(".3~g") };

const checks: OptionChecks<LogitBarsOptions> = {
  scale: check.orNull(check.positive),
  format: check.fn,
};

/** A reusable pair of bar lists (HTML, so it reflows like text): call on a selection whose datum is LogitData. */
export interface LogitBars extends OptionMethods<LogitBarsOptions, LogitBars> {
  <E extends HTMLElement, P extends BaseType, PD>(selection: Selection<E, LogitData, P, PD>): void;
}

/**
 * Creates logit bars: a "Negative" and a "Positive" column, one row per token with its
 * text, a bar as long as |value| / scale and the value. Tokens are written with .text().
 */
export function logitBars(): LogitBars {
  return reusableChart({ ...defaults }, checks, render);
}

function entries(value: unknown, name: string): LogitEntry[] {
  if (!Array.isArray(value)) invalid(name, value);
  return value.map((e, i) => {
    if (typeof e !== "object" || e === null || typeof e.token !== "string") invalid(`${name}[${i}]`, e);
    return { token: e.token, value: Number(e.value) };
  });
}

function render(container: HTMLElement, data: LogitData, o: LogitBarsOptions): void {
  if (typeof data !== "object" || data === null) invalid("logits", data);
  const columns = [
    { key: "negative", title: "Negative", rows: entries(data.negative ?? [], "negative") },
    { key: "positive", title: "Positive", rows: entries(data.positive ?? [], "positive") },
  ];
  let top = o.scale ?? 0;
  if (o.scale === null) for (const c of columns) for (const r of c.rows) if (Number.isFinite(r.value)) top = Math.max(top, Math.abs(r.value));
  const width = (v: number) => (top > 0 && Number.isFinite(v) ? Math.round(1000 * Math.min(1, Math.abs(v) / top)) / 10 : 0);

  const col = select(container)
    .selectAll<HTMLDivElement, (typeof columns)[number]>("div.logit-col")
    .data(columns)
    .join((enter) => {
      const div = enter.append("div");
      div.append("h3");
      div.append("ol");
      return div;
    })
    .attr("class", (c) => `logit-col logit-col--${c.key}`);
  col.select("h3").text((c) => c.title);
  const row = col
    .select("ol")
    .selectAll<HTMLLIElement, LogitEntry>("li.logit-row")
    .data((c) => c.rows)
    .join((enter) => {
      const li = enter.append("li").attr("class", "logit-row");
      li.append("span").attr("class", "logit-token");
      li.append("span").attr("class", "logit-bar").append("span");
      li.append("span").attr("class", "logit-value");
      return li;
    });
  row.select(".logit-token").text((d) => displayToken(d.token)).attr("title", (d) => JSON.stringify(d.token));
  row.select(".logit-bar > span").style("width", (d) => `${width(d.value)}%`);
  row.select(".logit-value").text((d) => (Number.isFinite(d.value) ? o.format(d.value) : "–"));
}
