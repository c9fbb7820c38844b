import { invalid } from "../options/invalid";
import { chartRenderers } from "./chartRenderers";
import { readChartData } from "./readChartData";

/**
 * Renders every `[data-chart]` element under `root` (progressive enhancement of
 * server-rendered pages). A chart whose data is bad shows the error in place, gets
 * `data-chart-error`, and is logged; the others still render. Returns how many rendered.
 */
export function enhance(root: ParentNode = document): number {
  let rendered = 0;
  for (const el of Array.from(root.querySelectorAll<HTMLElement>("[data-chart]"))) {
    try {
      const render = chartRenderers[el.dataset.chart ?? ""] ?? invalid("data-chart", el.dataset.chart);
      render(el, readChartData(el));
      el.dataset.chartRendered = "true";
      rendered += 1;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      el.dataset.chartError = message;
      el.textContent = `Chart unavailable: ${message}`;
      console.error(`chart ${el.dataset.chart}:`, error);
    }
  }
  return rendered;
}
