import { select, type Selection } from "d3";
import type { Margin } from "./margin";

/** The one `<svg class=…>` of a chart in `container`: created on the first call, resized and relabelled on each. */
export function chartSvg<D>(
  container: Element,
  className: string,
  datum: D,
  o: { width: number; height: number; margin: Margin; label: string },
): Selection<SVGSVGElement, D, Element, unknown> {
  return select(container)
    .selectAll<SVGSVGElement, D>(`svg.${className}`)
    .data([datum])
    .join((enter) => enter.append("svg").attr("class", className).attr("role", "img"))
    .attr("viewBox", `0 0 ${o.width} ${o.height}`)
    .attr("width", o.width)
    .attr("height", o.height)
    .attr("aria-label", o.label);
}
