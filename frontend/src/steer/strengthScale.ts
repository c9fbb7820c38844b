import { scaleSymlog } from "d3";
import { invalid } from "../options/invalid";

export interface StrengthTick {
  /** Raw strength at the tick. */
  value: number;
  /** Slider position of the tick, 0…resolution. */
  position: number;
  /** Label in units of the feature's max activation, e.g. `-10×`, `0`, `1×`. */
  label: string;
  /** True for the tick at +max activation. */
  max: boolean;
}

export interface StrengthScaleOptions {
  /** Smallest raw strength (negative). */
  min: number;
  /** Largest raw strength (positive). */
  max: number;
  /** The feature's max activation; strengths are labelled in multiples of it. @default 1 */
  unit?: number;
  /** Slider positions run 0…resolution. @default 1000 */
  resolution?: number;
  /** Width of the linear region around zero, in units. @default 0.1 */
  linear?: number;
}

/** Maps raw strengths to slider positions and back on a signed-log scale. */
export interface StrengthScale {
  readonly unit: number;
  readonly resolution: number;
  position(value: number): number;
  value(position: number): number;
  ticks(): StrengthTick[];
  /** `1.5×` style label of a raw strength in units of max activation. */
  format(value: number): string;
}

function sig(x: number, digits: number): number {
  return x === 0 ? 0 : +x.toPrecision(digits);
}

function unitLabel(u: number): string {
  if (u === 0) return "0";
  return `${sig(u, 2)}×`;
}

/**
 * A signed-log (symlog) slider scale: fine steps near zero, decades further out, both signs.
 * Slider values round to two significant digits of the unit so URLs stay short; positions
 * within 0.5% of zero snap to exactly zero.
 *
 * @throws Error `invalid strength range: …` unless min < 0 < max, or `invalid unit: …`.
 */
export function strengthScale(options: StrengthScaleOptions): StrengthScale {
  const { min, max } = options;
  const unit = options.unit ?? 1;
  const resolution = options.resolution ?? 1000;
  const linear = options.linear ?? 0.1;
  if (!(Number.isFinite(min) && Number.isFinite(max) && min < 0 && max > 0)) invalid("strength range", [min, max]);
  if (!(Number.isFinite(unit) && unit > 0)) invalid("unit", unit);
  if (!(Number.isInteger(resolution) && resolution > 0)) invalid("resolution", resolution);
  const scale = scaleSymlog().domain([min / unit, max / unit]).range([0, resolution]).constant(linear).clamp(true);
  const zero = scale(0);
  const snap = resolution * 0.005;

  const position = (value: number) => (Number.isFinite(value) ? Math.round(scale(value / unit)) : Math.round(zero));
  const value = (pos: number) => {
    if (!Number.isFinite(pos) || Math.abs(pos - zero) <= snap) return 0;
    const u = sig(scale.invert(Math.min(resolution, Math.max(0, pos))), 2);
    return Math.min(max, Math.max(min, sig(u * unit, 6)));
  };
  const ticks = () => {
    const out: StrengthTick[] = [];
    for (let e = -3; e <= 4; e++) {
      for (const sign of [-1, 1]) {
        const u = sign * 10 ** e;
        if (u * unit < min || u * unit > max) continue;
        out.push({ value: u * unit, position: scale(u), label: unitLabel(u), max: u === 1 });
      }
    }
    out.push({ value: 0, position: zero, label: "0", max: false });
    // Keep the decades that are not crowded: at least 6% of the track apart, ±1× and 0 always.
    out.sort((a, b) => a.position - b.position);
    const keep = out.filter((t) => Math.abs(t.value / unit) === 1 || t.value === 0);
    for (const t of out) {
      if (keep.includes(t)) continue;
      if (keep.every((k) => Math.abs(k.position - t.position) >= resolution * 0.06)) keep.push(t);
    }
    return keep.sort((a, b) => a.position - b.position);
  };
  return { unit, resolution, position, value, ticks, format: (v) => unitLabel(v / unit) };
}
