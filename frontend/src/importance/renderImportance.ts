import { formatSig } from "./formatSig";
import type { ImportanceResult, TokenMove } from "./importanceTypes";

function tokenLine(doc: Document, label: string, tokens: TokenMove[]): HTMLParagraphElement {
  const p = doc.createElement("p");
  const muted = doc.createElement("span");
  muted.className = "muted";
  muted.textContent = label;
  p.append(muted);
  for (const t of tokens.slice(0, 5)) {
    const code = doc.createElement("code");
    code.className = "importance-token";
    code.textContent = t.token; // model text: never HTML
    code.title = `${t.value > 0 ? "+" : ""}${formatSig(t.value)} probability`;
    p.append(" ", code);
  }
  return p;
}

/**
 * Shows an importance result in a server-rendered `[data-importance]` card: the three loss
 * deltas, the note, the moved tokens, the progress bar and status text. Returns true when the
 * job has ended (done or failed), false while it is queued or running.
 */
export function renderImportance(el: HTMLElement, r: ImportanceResult): boolean {
  const doc = el.ownerDocument;
  el.dataset.status = r.status ?? "";
  const done = r.status === "done";
  for (const method of ["zero", "mean", "resample"] as const) {
    const dd = el.querySelector<HTMLElement>(`[data-importance-value="${method}"]`);
    if (dd) dd.textContent = done ? formatSig(r.loss_delta?.[method]) : "—";
  }
  const note = el.querySelector<HTMLElement>("[data-importance-note]");
  if (note) {
    note.textContent = done
      ? `nats per token, on ${r.n_contexts} example windows (${r.n_predictions} predictions)`
      : r.status === "failed"
        ? `Failed: ${r.error}`
        : "Not computed yet.";
  }
  const tokens = el.querySelector<HTMLElement>("[data-importance-tokens]");
  if (tokens) {
    tokens.replaceChildren();
    if (done && r.down.length) tokens.append(tokenLine(doc, "Ablating lowers", r.down));
    if (done && r.up.length) tokens.append(tokenLine(doc, "Ablating raises", r.up));
  }
  const pending = r.status === "queued" || r.status === "running";
  const bar = el.querySelector<HTMLProgressElement>("[data-importance-progress]");
  if (bar) {
    bar.hidden = !pending;
    bar.value = Math.min(1, Math.max(0, r.progress));
  }
  const status = el.querySelector<HTMLElement>("[data-importance-status]");
  if (status) status.textContent = pending ? `${r.status}… ${Math.round(r.progress * 100)}%` : "";
  const button = el.querySelector<HTMLButtonElement>("[data-importance-compute]");
  if (button) {
    button.disabled = pending;
    button.textContent = done ? "Recompute importance" : "Compute importance";
  }
  return !pending;
}
