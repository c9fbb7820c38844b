import { select } from "d3";

export interface ContinuationView {
  prompt: string;
  text: string;
  /** Char offset where this row parts from the other row; from there on the text is marked. */
  diverge: number | null;
  /** Shows a blinking caret after the text. */
  streaming: boolean;
}

/**
 * Writes a continuation into `el`: the prompt (muted), the text both rows share, and the part
 * after `diverge` in a `<mark>`. Everything goes in with `.text()`: model text is untrusted.
 */
export function renderContinuation(el: HTMLElement, view: ContinuationView): void {
  const cut = view.diverge === null ? view.text.length : Math.min(view.diverge, view.text.length);
  const parts = [
    { cls: "steer-echo", text: view.prompt },
    { cls: "steer-same", text: view.text.slice(0, cut) },
    { cls: "steer-diverged", text: view.text.slice(cut) },
  ];
  const root = select(el);
  root
    .selectAll<HTMLElement, (typeof parts)[number]>(":scope > .steer-part")
    .data(parts, (p) => p.cls)
    .join((enter) => enter.append((p) => document.createElement(p.cls === "steer-diverged" ? "mark" : "span")))
    .attr("class", (p) => `steer-part ${p.cls}`)
    .text((p) => p.text);
  root.selectAll(":scope > .steer-caret").data(view.streaming ? [0] : []).join("span").attr("class", "steer-caret").attr("aria-hidden", "true");
}
