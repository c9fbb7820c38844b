import { select } from "d3";
import { invalid } from "../options/invalid";
import type { TokenData } from "../tokens/tokenData";
import { tokenStrip } from "../tokens/tokenStrip";

/** Tokens either side of the max for each choice of the context-width toggle (null: all). */
export const CONTEXT_WIDTHS: Record<string, number | null> = { "5": 5, "16": 16, full: null };

interface ExampleRecord {
  tokens: string[];
  values: (number | null)[];
  maxPosition: number | null;
}

/**
 * Draws every `[data-example=i]` under `el` as a token strip of `data.examples[i]`, scaled to
 * `data.max` (the feature's max activation) and cut to the context width in `el.dataset.context`.
 * Clicking a `[data-context-width]` link redraws them all at that width and keeps it in the URL
 * (`?ctx=`), without reloading. Returns a function that redraws at a given width.
 */
export function examplesPanel(el: HTMLElement, data: Record<string, unknown>): (width: string) => void {
  const examples = data.examples;
  if (!Array.isArray(examples)) invalid("examples", examples);
  const max = typeof data.max === "number" && data.max > 0 ? data.max : null;

  const draw = (key: string) => {
    if (!(key in CONTEXT_WIDTHS)) invalid("context width", key);
    const strip = tokenStrip().max(max).window(CONTEXT_WIDTHS[key] ?? null);
    for (const holder of Array.from(el.querySelectorAll<HTMLElement>("[data-example]"))) {
      const ex = examples[Number(holder.dataset.example)] as ExampleRecord | undefined;
      if (!ex) invalid("data-example", holder.dataset.example);
      select<HTMLElement, TokenData>(holder)
        .datum({ tokens: ex.tokens, values: ex.values, maxPosition: ex.maxPosition })
        .call(strip);
    }
    el.dataset.context = key;
    for (const link of Array.from(el.querySelectorAll<HTMLAnchorElement>("[data-context-width]"))) {
      const active = link.dataset.contextWidth === key;
      link.classList.toggle("is-active", active);
      if (active) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  };

  for (const link of Array.from(el.querySelectorAll<HTMLAnchorElement>("[data-context-width]"))) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const key = link.dataset.contextWidth ?? "16";
      draw(key);
      const win = el.ownerDocument.defaultView;
      if (win) {
        const url = new URL(win.location.href);
        url.searchParams.set("ctx", key);
        win.history.replaceState(win.history.state, "", url);
      }
    });
  }
  draw(el.dataset.context && el.dataset.context in CONTEXT_WIDTHS ? el.dataset.context : "16");
  return draw;
}
