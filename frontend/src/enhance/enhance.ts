import { invalid } from "../options/invalid";
import { tokenTooltip } from "../tokens/tokenTooltip";
import { behaviours } from "./behaviours";
import { chartRenderers } from "./chartRenderers";
import { readChartData } from "./readChartData";

/**
 * Renders every `[data-chart]` element under `root` and wires every `[data-enhance]` one
 * (progressive enhancement of server-rendered pages). A chart whose data is bad shows the
 * error in place, gets `data-chart-error`, and is logged; the others still render. Token
 * strips share one hover tooltip. Returns how many charts rendered.
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
  for (const el of Array.from(root.querySelectorAll<HTMLElement>("[data-enhance]"))) {
    if (el.dataset.enhanced) continue;
    try {
      const wire = behaviours[el.dataset.enhance ?? ""] ?? invalid("data-enhance", el.dataset.enhance);
      wire(el);
      el.dataset.enhanced = "true";
    } catch (error) {
      console.error(`enhance ${el.dataset.enhance}:`, error);
    }
  }
  const doc = root instanceof Document ? root : (root as Node).ownerDocument;
  if (doc?.body && !doc.body.dataset.tokenTooltip) {
    tokenTooltip(doc);
    doc.body.dataset.tokenTooltip = "true";
  }
  return rendered;
}
