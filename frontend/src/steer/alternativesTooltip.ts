import { delegatedTooltip } from "../tokens/delegatedTooltip";

/** A probability as a short percentage: "42%", "3.1%", "0.04%", "<0.01%". */
export function formatProbability(p: number): string {
  if (!Number.isFinite(p)) return "?";
  const pct = p * 100;
  if (pct >= 10) return `${Math.round(pct)}%`;
  if (pct >= 1) return `${pct.toFixed(1)}%`;
  if (pct >= 0.01) return `${pct.toFixed(2)}%`;
  return "<0.01%";
}

/** A token with its whitespace made visible (a leading space reads as "␣"). */
export function visibleToken(token: string): string {
  return token.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥") || "∅";
}

function readAlternatives(raw: string | undefined): [string, number][] {
  if (!raw) return [];
  try {
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed.filter((a): a is [string, number] => Array.isArray(a) && typeof a[0] === "string" && typeof a[1] === "number") : [];
  } catch {
    return [];
  }
}

/**
 * One floating tooltip for every `.steer-tok` under `root` (the continuation columns): hovering
 * or focusing a generated token shows its probability and the likeliest tokens at that step, as
 * bars (scaled to the likeliest), the chosen one marked. Token text is model output: it goes in
 * with textContent only. Returns the tooltip element.
 */
export function alternativesTooltip(root: HTMLElement): HTMLElement {
  const doc = root.ownerDocument;
  const tip = doc.createElement("div");
  tip.className = "steer-alts";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  doc.body.append(tip);
  return delegatedTooltip(root, tip, { selector: ".steer-tok", hoverClass: "steer-tok--hover", place: "below", fill: fillAlternatives });
}

function fillAlternatives(tip: HTMLElement, token: HTMLElement): boolean {
  if (token.dataset.p === undefined) return false;
  const doc = tip.ownerDocument;
  const chosen = token.textContent ?? "";
  const head = doc.createElement("div");
  head.className = "steer-alts-head";
  const name = doc.createElement("code");
  name.textContent = visibleToken(chosen);
  const p = doc.createElement("strong");
  p.textContent = formatProbability(Number(token.dataset.p));
  head.append(name, " ", p);
  const list = doc.createElement("ol");
  const alternatives = readAlternatives(token.dataset.alts);
  // Bars relative to the likeliest (the labels give the absolute probabilities).
  const top = Math.max(...alternatives.map(([, q]) => q), Number.MIN_VALUE);
  for (const [alt, q] of alternatives) {
    const li = doc.createElement("li");
    if (alt === chosen) li.className = "steer-alts-chosen";
    const label = doc.createElement("code");
    label.textContent = visibleToken(alt);
    const bar = doc.createElement("span");
    bar.className = "steer-alts-bar";
    bar.style.width = `${Math.max(2, Math.round((q / top) * 100))}%`;
    const value = doc.createElement("span");
    value.className = "steer-alts-p";
    value.textContent = formatProbability(q);
    li.append(label, bar, value);
    list.append(li);
  }
  tip.replaceChildren(head, list);
  return true;
}
