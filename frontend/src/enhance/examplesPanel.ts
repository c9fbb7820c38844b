import { select } from "d3";
import { invalid } from "../options/invalid";
import type { TokenData } from "../tokens/tokenData";
import { tokenStrip } from "../tokens/tokenStrip";

/** Tokens either side of the max for each choice of the context-width toggle (null: all). */
export const CONTEXT_WIDTHS: Record<string, number | null> = { "5": 5, "16": 16, full: null };
/** Where the last width picked is kept (localStorage), so it holds across features and visits. */
export const CONTEXT_STORAGE_KEY = "sfe:example-context";

interface ExampleRecord {
  tokens: string[];
  values: (number | null)[];
  maxPosition: number | null;
}

/**
 * Draws every `[data-example=i]` under `el` as a token strip of `data.examples[i]`, scaled to
 * `data.max` (the feature's max activation) and cut to the context width in `el.dataset.context`.
 * Clicking a `[data-context-width]` link redraws them all at that width without reloading, and
 * keeps it in the URL (`?ctx=`), on the page's ← → r links and in localStorage; a page opened
 * without `?ctx=` starts at the stored width. Returns a function that redraws at a given width.
 */
export function examplesPanel(el: HTMLElement, data: Record<string, unknown>): (width: string) => void {
  const examples = data.examples;
  if (!Array.isArray(examples)) invalid("examples", examples);
  const max = typeof data.max === "number" && data.max > 0 ? data.max : null;
  const bosExcluded = data.bosExcluded === true;

  const draw = (key: string) => {
    if (!(key in CONTEXT_WIDTHS)) invalid("context width", key);
    const strip = tokenStrip().max(max).window(CONTEXT_WIDTHS[key] ?? null);
    for (const holder of Array.from(el.querySelectorAll<HTMLElement>("[data-example]"))) {
      const ex = examples[Number(holder.dataset.example)] as ExampleRecord | undefined;
      if (!ex) invalid("data-example", holder.dataset.example);
      select<HTMLElement, TokenData>(holder)
        .datum({ tokens: ex.tokens, values: ex.values, maxPosition: ex.maxPosition, bosExcluded })
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

  const doc = el.ownerDocument;
  const win = doc.defaultView;
  // The choice follows the reader: into the URL, the ← → r links, and storage for next visits.
  const keep = (key: string) => {
    if (win) {
      const url = new URL(win.location.href);
      url.searchParams.set("ctx", key);
      win.history.replaceState(win.history.state, "", url);
      try {
        win.localStorage.setItem(CONTEXT_STORAGE_KEY, key);
      } catch {
        // storage may be off (private mode): the URL still carries the choice
      }
    }
    for (const a of Array.from(doc.querySelectorAll<HTMLAnchorElement>("[data-enhance=feature-nav] a[href]"))) {
      const url = new URL(a.href, doc.baseURI);
      url.searchParams.set("ctx", key);
      a.href = url.pathname + url.search;
    }
  };

  for (const link of Array.from(el.querySelectorAll<HTMLAnchorElement>("[data-context-width]"))) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const key = link.dataset.contextWidth ?? "16";
      draw(key);
      keep(key);
    });
  }
  let start = el.dataset.context && el.dataset.context in CONTEXT_WIDTHS ? el.dataset.context : "16";
  if (win && !new URL(win.location.href).searchParams.has("ctx")) {
    let stored: string | null = null;
    try {
      stored = win.localStorage.getItem(CONTEXT_STORAGE_KEY);
    } catch {
      stored = null;
    }
    if (stored && stored in CONTEXT_WIDTHS && stored !== start) {
      start = stored;
      keep(stored);
    }
  }
  draw(start);
  return draw;
}
