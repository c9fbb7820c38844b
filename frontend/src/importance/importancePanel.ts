import { csrfToken } from "../enhance/behaviours";
import { fetchJson } from "../steer/fetchJson";
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
  const { interval = 1000, fetcher = globalThis.fetch.bind(globalThis) } = options;
  const endpoint = el.dataset.endpoint ?? "";
  const win = el.ownerDocument.defaultView;
  const status = el.querySelector<HTMLElement>("[data-importance-status]");
  const fail = (message: string) => {
    if (status) status.textContent = message;
    const button = el.querySelector<HTMLButtonElement>("[data-importance-compute]");
    if (button) button.disabled = false;
  };
  const poll = async (): Promise<void> => {
    const answer = await fetchJson<ImportanceResult>(endpoint, { credentials: "same-origin" }, fetcher);
    if (!answer.ok) return fail(answer.message);
    if (!renderImportance(el, answer.body)) win?.setTimeout(() => void poll(), interval);
  };
  el.querySelector<HTMLButtonElement>("[data-importance-compute]")?.addEventListener("click", async () => {
    const answer = await fetchJson<ImportanceResult>(endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(el.ownerDocument) },
      body: JSON.stringify({ force: el.dataset.status === "done" }),
    }, fetcher);
    if (!answer.ok) return fail(answer.message);
    if (!renderImportance(el, answer.body)) win?.setTimeout(() => void poll(), interval);
  });
  // "unknown": the page did not load the result; read it (and keep polling if a job is pending).
  if (["queued", "running", "unknown"].includes(el.dataset.status ?? "")) void poll();
}
