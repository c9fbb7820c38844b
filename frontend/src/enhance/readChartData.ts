import { invalid } from "../options/invalid";

/**
 * The JSON data of a `[data-chart]` element: from the `<script type="application/json">`
 * named by `data-chart-data` (Django's `json_script`), else from an inline `data-chart-json`.
 *
 * @throws Error `invalid data-chart-data: <id>` when the script is missing, or a JSON SyntaxError.
 */
export function readChartData(el: HTMLElement): unknown {
  const id = el.dataset.chartData;
  if (id) {
    const script = el.ownerDocument.getElementById(id);
    if (!script) invalid("data-chart-data", id);
    return JSON.parse(script.textContent ?? "null");
  }
  const inline = el.dataset.chartJson;
  if (inline === undefined) invalid("data-chart-json", "missing");
  return JSON.parse(inline);
}
