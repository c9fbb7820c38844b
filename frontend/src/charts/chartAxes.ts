import { axisBottom, type Axis, type AxisScale, type NumberValue, type Selection } from "d3";
import type { Margin } from "./margin";

/** Draws or updates a chart's x axis along the bottom margin (a tick per 60 px, at least 2) and `yAxis` in the left margin. */
export function chartAxes<D>(
  svg: Selection<SVGSVGElement, D, Element, unknown>,
  x: AxisScale<NumberValue>,
  yAxis: Axis<NumberValue>,
  o: { width: number; height: number; margin: Margin },
): void {
  const { width, height, margin } = o;
  svg
    .selectAll<SVGGElement, null>("g.x-axis")
    .data([null])
    .join("g")
    .attr("class", "x-axis")
    .attr("transform", `translate(0,${height - margin.bottom})`)
    .call(axisBottom(x).ticks(Math.max(2, Math.floor((width - margin.left - margin.right) / 60))));
  svg
    .selectAll<SVGGElement, null>("g.y-axis")
    .data([null])
    .join("g")
    .attr("class", "y-axis")
    .attr("transform", `translate(${margin.left},0)`)
    .call(yAxis);
}
