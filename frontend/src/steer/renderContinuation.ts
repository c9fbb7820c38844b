import { select } from "d3";
import type { TokenPiece } from "./rowPieces";

export interface ContinuationView {
  prompt: string;
  text: string;
  /** Char offset where this row parts from the other row; from there on the text is marked. */
  diverge: number | null;
  /** Shows a blinking caret after the text. */
  streaming: boolean;
  /** The finished row's tokens (their texts add up to `text`): each becomes a focusable span
   *  carrying its probability and alternatives for the hover tooltip (alternativesTooltip). */
  tokens?: TokenPiece[] | null;
}

/**
 * Writes a continuation into `el`: the prompt (muted), the text both rows share, and the part
 * after `diverge` in a `<mark>`; with `tokens`, both parts are made of one span per token.
 * Everything goes in with `.text()` / `textContent`: model text is untrusted.
 */
export function renderContinuation(el: HTMLElement, view: ContinuationView): void {
  const cut = view.diverge === null ? view.text.length : Math.min(view.diverge, view.text.length);
  const parts = [
    { cls: "steer-echo", text: view.prompt },
    { cls: "steer-same", text: view.text.slice(0, cut) },
    { cls: "steer-diverged", text: view.text.slice(cut) },
  ];
  const root = select(el);
  const joined = root
    .selectAll<HTMLElement, (typeof parts)[number]>(":scope > .steer-part")
    .data(parts, (p) => p.cls)
    .join((enter) => enter.append((p) => document.createElement(p.cls === "steer-diverged" ? "mark" : "span")))
    .attr("class", (p) => `steer-part ${p.cls}`)
    .text((p) => p.text);
  if (view.tokens && view.tokens.map((t) => t.text).join("") === view.text) {
    const [, same, diverged] = joined.nodes() as [HTMLElement, HTMLElement, HTMLElement];
    same.textContent = "";
    diverged.textContent = "";
    let offset = 0;
    view.tokens.forEach((t, i) => {
      const span = document.createElement("span");
      span.className = "steer-tok";
      span.textContent = t.text;
      span.dataset.i = String(i);
      if (t.prob !== null) {
        span.dataset.p = String(t.prob);
        span.tabIndex = 0;
      }
      if (t.alternatives) span.dataset.alts = JSON.stringify(t.alternatives);
      (offset >= cut ? diverged : same).append(span);
      offset += t.text.length;
    });
  }
  root.selectAll(":scope > .steer-caret").data(view.streaming ? [0] : []).join("span").attr("class", "steer-caret").attr("aria-hidden", "true");
}
