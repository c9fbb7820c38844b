import { getJson, postJson, type HttpError } from "../http";
import type { ImportanceResult } from "./importanceTypes";
import { renderImportance } from "./renderImportance";

export interface ImportancePanelOptions {
  /** Milliseconds between status polls while a job is pending. @default 1000 */
  interval: number;
  /** The fetch to use (tests pass their own). @default globalThis.fetch */
  fetcher: typeof fetch;
}

/**
 * Wires a `[data-importance]` card: its button POSTs to `data-endpoint` (forcing a recompute
 * when a result is shown), then the card polls GET until the job ends and fills in the numbers.
 * A card rendered while a job is pending, or without its result (`unknown`), reads it at once.
 */
export function importancePanel(el: HTMLElement, options: Partial<ImportancePanelOptions> = {}): void {
  const { interval = 1000, fetcher } = options;
  const endpoint = el.dataset.endpoint ?? "";
  const win = el.ownerDocument.defaultView;
  const status = el.querySelector<HTMLElement>("[data-importance-status]");
  const fail = (message: string) => {
    if (status) status.textContent = message;
    const button = el.querySelector<HTMLButtonElement>("[data-importance-compute]");
    if (button) button.disabled = false;
  };
  const show = (request: Promise<ImportanceResult>): Promise<void> =>
    request.then(
      (result) => {
        if (!renderImportance(el, result)) win?.setTimeout(() => void poll(), interval);
      },
      (error: HttpError) => fail(error.message),
    );
  const poll = () => show(getJson(endpoint, { fetcher }));
  el.querySelector<HTMLButtonElement>("[data-importance-compute]")?.addEventListener("click", () => {
    void show(postJson(endpoint, { force: el.dataset.status === "done" }, { doc: el.ownerDocument, fetcher }));
  });
  // "unknown": the page did not load the result; read it (and keep polling if a job is pending).
  if (["queued", "running", "unknown"].includes(el.dataset.status ?? "")) void poll();
}
