import { format } from "d3";
import { delegatedTooltip } from "./delegatedTooltip";

/**
 * One floating tooltip for every `.token` under `root`: hovering (or focusing) a token shows
 * its text and activation (`data-value`, to the strip's `data-precision` significant digits,
 * 3 by default). Event delegation, so strips drawn later are covered too. Text is set with
 * textContent, never markup. Returns the tooltip element.
 */
export function tokenTooltip(root: HTMLElement | Document = document): HTMLElement {
  const doc = root instanceof Document ? root : root.ownerDocument;
  let tip = doc.querySelector<HTMLElement>("div.token-tooltip");
  if (!tip) {
    tip = doc.createElement("div");
    tip.className = "token-tooltip";
    tip.setAttribute("role", "tooltip");
    tip.hidden = true;
    tip.append(doc.createElement("span"), doc.createElement("strong"));
    doc.body.append(tip);
  }
  const [label, value] = Array.from(tip.children) as [HTMLElement, HTMLElement];
  return delegatedTooltip(root, tip, {
    selector: ".token",
    hoverClass: "token--hover",
    place: "above",
    fill: (_, token) => {
      const v = Number(token.dataset.value);
      label.textContent = token.textContent ?? "";
      const digits = Number(token.closest<HTMLElement>(".token-strip")?.dataset.precision ?? 3) || 3;
      value.textContent = Number.isFinite(v) ? format(`.${digits}~g`)(v) : "unknown";
      return true;
    },
  });
}
