import { interpolateOranges, scaleSequential, type ScaleSequential } from "d3";
import { invalid } from "../options/invalid";

/**
 * A sequential colour scale for activations from 0 to `max`.
 *
 * ColorBrewer's single-hue Oranges ramp varies in lightness only, so it reads the same
 * under every common colour-vision deficiency. Zero and negative activations (the
 * feature is off) map to "transparent" so quiet text keeps the page background;
 * values above `max` clamp; NaN, null and undefined map to `unknown()`, a neutral grey.
 *
 * @throws Error `invalid max: <x>` unless max is a finite number > 0.
 */
export function activationColor(max: number): ScaleSequential<string, string> {
  if (typeof max !== "number" || !Number.isFinite(max) || max <= 0) invalid("max", max);
  return scaleSequential<string, string>((t) => (t <= 0 ? "transparent" : interpolateOranges(0.12 + 0.78 * t)))
    .domain([0, max])
    .clamp(true)
    .unknown("#9e9e9e");
}
