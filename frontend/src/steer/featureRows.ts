import { select, type Selection } from "d3";
import { featureKey } from "./featureKey";
import { strengthScale, type StrengthScale } from "./strengthScale";
import type { SteerFeature, SteerLimits, SteerMode } from "./steerTypes";

export interface FeatureRowsOptions {
  model: string;
  limits: SteerLimits;
  /** Error shown under each feature, by position; missing: none. */
  errors: readonly (string | null | undefined)[];
  onStrength: (position: number, strength: number) => void;
  onMode: (position: number, mode: SteerMode) => void;
  onRemove: (position: number) => void;
}

const MODES: { value: SteerMode; label: string }[] = [
  { value: "add", label: "add" },
  { value: "clamp", label: "clamp" },
  { value: "ablate", label: "ablate" },
  { value: "logit", label: "logit bias" },
];

interface Row {
  key: string;
  position: number;
  feature: SteerFeature;
  scale: StrengthScale;
  error: string | null;
}

function rowScale(f: SteerFeature, limits: SteerLimits): StrengthScale {
  const unit = f.max_activation && f.max_activation > 0 ? f.max_activation : 1;
  const hi = limits.strength_max > 0 ? limits.strength_max : 1000;
  const lo = limits.strength_min < 0 ? limits.strength_min : -hi;
  return strengthScale({ min: lo, max: hi, unit });
}

function rawText(v: number): string {
  return Number.isFinite(v) ? String(+v.toPrecision(4)) : "";
}

/**
 * Renders (or updates) one control row per steered feature into `list` (an `<ol>`): name and
 * explanation, mode, remove, a signed-log strength slider with ticks in multiples of the
 * feature's max activation (the +1× tick marks the max), and the raw value as a number box.
 * Rows are keyed by `sae#index`, so a slider being dragged is updated in place, never replaced.
 */
export function renderFeatureRows(list: HTMLElement, features: readonly SteerFeature[], o: FeatureRowsOptions): void {
  const rows: Row[] = features.map((feature, position) => ({
    key: featureKey(feature),
    position,
    feature,
    scale: rowScale(feature, o.limits),
    error: o.errors[position] ?? null,
  }));

  select(list)
    .selectAll<HTMLLIElement, Row>("li.steer-feature")
    .data(rows, (d) => d.key)
    .join((enter) => enter.append("li").attr("class", "steer-feature").each(function (d) {
      build(select(this), d, o);
    }))
    .each(function (d) {
      update(select(this), d);
    });
}

function build(li: Selection<HTMLLIElement, Row, null, undefined>, d: Row, o: FeatureRowsOptions): void {
  const { sae, index, vector } = d.feature;
  const name = d.key;
  const id = `steer-f-${name}`.replace(/[^\w-]/g, "_");
  li.attr("data-feature", name);
  const head = li.append("div").attr("class", "steer-feature-head");
  if (vector != null) head.append("span").attr("class", "steer-feature-name").text(`vector ${vector}`);
  else head.append("a").attr("class", "steer-feature-name").attr("href", `/${o.model}/${sae}/${index}/`).text(name);
  head.append("span").attr("class", "steer-feature-label");
  const mode = head.append("select").attr("class", "steer-mode").attr("aria-label", `Mode of ${name}`).property("hidden", vector != null);
  mode.selectAll("option").data(MODES).join("option").attr("value", (m) => m.value).text((m) => m.label);
  mode.on("change", function () {
    o.onMode(li.datum().position, (this as HTMLSelectElement).value as SteerMode);
  });
  head
    .append("button")
    .attr("type", "button")
    .attr("class", "steer-remove")
    .attr("aria-label", `Remove ${name}`)
    .attr("title", "Remove")
    .text("×")
    .on("click", () => o.onRemove(li.datum().position));

  const body = li.append("div").attr("class", "steer-strength");
  const track = body.append("div").attr("class", "steer-slider-wrap");
  track
    .append("input")
    .attr("type", "range")
    .attr("id", id)
    .attr("class", "steer-slider")
    .attr("min", 0)
    .attr("max", d.scale.resolution)
    .attr("step", 1)
    .attr("aria-label", `Strength of ${name}`)
    .on("input", function () {
      const row = li.datum();
      o.onStrength(row.position, row.scale.value(+(this as HTMLInputElement).value));
    });
  track.append("div").attr("class", "steer-ticks").attr("aria-hidden", "true");

  const value = body.append("div").attr("class", "steer-value");
  value
    .append("input")
    .attr("type", "number")
    .attr("class", "steer-raw")
    .attr("step", "any")
    .attr("aria-label", `Raw strength of ${name}`)
    .on("change", function () {
      const v = Number((this as HTMLInputElement).value);
      if ((this as HTMLInputElement).value.trim() !== "" && Number.isFinite(v)) o.onStrength(li.datum().position, v);
    });
  value.append("span").attr("class", "steer-units");
  li.append("p").attr("class", "steer-error").attr("role", "alert");
}

function update(li: Selection<HTMLLIElement, Row, null, undefined>, d: Row): void {
  const f = d.feature;
  const knownMax = !!(f.max_activation && f.max_activation > 0);
  li.classed("steer-feature--error", d.error !== null).classed("steer-feature--ablate", f.mode === "ablate");
  li.select(".steer-feature-label")
    .classed("steer-feature-label--none", !f.label)
    .text(f.label || (f.vector != null ? "steering vector" : "no explanation yet"))
    .attr("title", f.label || null);
  li.select<HTMLSelectElement>(".steer-mode").property("value", f.mode);

  const slider = li.select<HTMLInputElement>(".steer-slider");
  const pos = d.scale.position(f.strength);
  // Writing the value while it is being dragged would fight the pointer when rounding differs.
  if (d.scale.value(+slider.property("value")) !== f.strength) slider.property("value", pos);
  slider.property("disabled", f.mode === "ablate").attr("aria-valuetext", `${d.scale.format(f.strength)} max activation (${rawText(f.strength)})`);

  const pct = (p: number) => `${(100 * p) / d.scale.resolution}%`;
  li.select(".steer-ticks")
    .selectAll<HTMLSpanElement, ReturnType<StrengthScale["ticks"]>[number]>("span.steer-tick")
    .data(d.scale.ticks(), (t) => t.label)
    .join("span")
    .attr("class", (t) => {
      const u = Math.abs(t.value / d.scale.unit);
      const minor = u !== 0 && u !== 1 && u !== 10;
      return `steer-tick${t.max && knownMax ? " steer-tick--max" : ""}${t.value === 0 ? " steer-tick--zero" : ""}${minor ? " steer-tick--minor" : ""}`;
    })
    .attr("title", (t) => (t.max && knownMax ? `max activation ${rawText(t.value)}` : rawText(t.value)))
    .style("left", (t) => pct(t.position))
    .text((t) => (t.max && knownMax ? "max" : t.label));

  const raw = li.select<HTMLInputElement>(".steer-raw");
  if (document.activeElement !== raw.node()) raw.property("value", rawText(f.strength));
  li.select(".steer-units").text(
    f.vector != null
      ? "× the contrast vector"
      : f.mode === "ablate"
        ? "ablated"
        : knownMax
          ? `= ${d.scale.format(f.strength)} max act.`
          : "raw (max activation unknown)",
  );
  li.select(".steer-error").text(d.error ?? "");
}
