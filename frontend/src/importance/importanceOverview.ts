import { select } from "d3";
import { cosineBins } from "../charts/cosineBins";
import { featureHistogram } from "../charts/histogram";
import type { HistogramBin } from "../charts/histogramBin";
import { importanceScatter, type ImportancePoint } from "../charts/importanceScatter";
import { getJson, postJson, type HttpError } from "../http";
import type { ImportanceOverview } from "./importanceTypes";
import { overviewPoints } from "./overviewPoints";

/** Draws the SAE overview into a `[data-importance-overview]` card from the columns of its data. */
export function drawOverview(el: HTMLElement, data: ImportanceOverview): void {
  const { points, omitted } = overviewPoints(data);
  const scatter = el.querySelector<HTMLElement>("[data-importance-scatter]");
  if (scatter) {
    scatter.replaceChildren();
    const base = el.dataset.base;
    const chart = importanceScatter().width(Math.min(520, Math.max(280, scatter.clientWidth || 420)));
    if (base) chart.href((i) => `${base}${i}/`);
    select<HTMLElement, ImportancePoint[]>(scatter).datum(points).call(chart);
    scatter.dataset.chartRendered = "true";
  }
  showEmpty(el, points.length === 0);
  const note = el.querySelector<HTMLElement>("[data-importance-omitted]");
  if (note) {
    note.textContent = omitted && points.length
      ? `${omitted.toLocaleString("en")} of ${data.n_live.toLocaleString("en")} live features have no importance yet and are omitted.`
      : "";
  }
  const histogram = el.querySelector<HTMLElement>("[data-cosine-histogram]");
  const bins = cosineBins(data.max_cosine);
  if (histogram && bins.length) {
    select<HTMLElement, HistogramBin[]>(histogram)
      .datum(bins)
      .call(featureHistogram().width(320).height(140).label("Features by largest decoder cosine"));
    histogram.dataset.chartRendered = "true";
  }
}

/**
 * With no importance at all, the scatter gives way to `[data-importance-empty]`: why it is
 * empty and what to do; its `[data-importance-compute-all]` button queues every live feature.
 */
function showEmpty(el: HTMLElement, empty: boolean): void {
  const box = el.querySelector<HTMLElement>("[data-importance-empty]");
  const scatter = el.querySelector<HTMLElement>("[data-importance-scatter]");
  if (!box) return;
  box.hidden = !empty;
  if (scatter) scatter.hidden = empty;
  const button = box.querySelector<HTMLButtonElement>("[data-importance-compute-all]");
  if (!button || button.dataset.wired) return;
  button.dataset.wired = "true";
  const status = box.querySelector<HTMLElement>("[data-importance-compute-status]");
  button.addEventListener("click", () => {
    button.disabled = true;
    postJson<{ queued: number }>(button.dataset.url ?? "", {}, { doc: el.ownerDocument })
      .then((r) => {
        if (status) status.textContent = `Queued ${r.queued.toLocaleString("en")} features on the index queue; the chart fills in as they finish (reload to see it).`;
      })
      .catch((error: unknown) => {
        button.disabled = false;
        if (status) status.textContent = error instanceof Error ? error.message : String(error);
      });
  });
}

/** Fetches `data-src` and draws the overview; a failure is shown in place. */
export async function importanceOverview(el: HTMLElement, fetcher?: typeof fetch): Promise<void> {
  el.setAttribute("aria-busy", "true");
  let data: ImportanceOverview;
  try {
    data = await getJson<ImportanceOverview>(el.dataset.src ?? "", { fetcher });
  } catch (error) {
    const message = (error as HttpError).message;
    el.dataset.chartError = message;
    const scatter = el.querySelector<HTMLElement>("[data-importance-scatter]");
    if (scatter) scatter.textContent = `Overview unavailable: ${message}`;
    return;
  } finally {
    el.removeAttribute("aria-busy");
  }
  drawOverview(el, data);
}
