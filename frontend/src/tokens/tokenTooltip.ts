import { format } from "d3";

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
  const el = tip;
  const [label, value] = Array.from(el.children) as [HTMLElement, HTMLElement];

  const show = (event: Event) => {
    const token = (event.target as Element | null)?.closest?.<HTMLElement>(".token");
    if (!token) return;
    const v = Number(token.dataset.value);
    label.textContent = token.textContent ?? "";
    const digits = Number(token.closest<HTMLElement>(".token-strip")?.dataset.precision ?? 3) || 3;
    value.textContent = Number.isFinite(v) ? format(`.${digits}~g`)(v) : "unknown";
    el.hidden = false;
    const box = token.getBoundingClientRect();
    const win = doc.defaultView;
    el.style.left = `${Math.round(box.left + box.width / 2 + (win?.scrollX ?? 0))}px`;
    el.style.top = `${Math.round(box.top + (win?.scrollY ?? 0))}px`;
    token.classList.add("token--hover");
  };
  const hide = (event: Event) => {
    const token = (event.target as Element | null)?.closest?.<HTMLElement>(".token");
    if (!token) return;
    token.classList.remove("token--hover");
    el.hidden = true;
  };
  root.addEventListener("mouseover", show);
  root.addEventListener("mouseout", hide);
  root.addEventListener("focusin", show);
  root.addEventListener("focusout", hide);
  return el;
}
