/** What `delegatedTooltip` needs to know about one kind of tooltip. */
export interface DelegatedTooltipSpec {
  /** The elements under the root that show the tooltip when hovered or focused. */
  selector: string;
  /** Class added to the element while its tooltip shows. */
  hoverClass: string;
  /** Fills `tip` for `target`; returns false when `target` has nothing to show. */
  fill: (tip: HTMLElement, target: HTMLElement) => boolean;
  /** "above": centred on the target's top edge (CSS lifts it); "below": under its left edge. */
  place: "above" | "below";
}

/**
 * One floating tooltip `tip` for every element matching `spec.selector` under `root`, shown on
 * hover and on keyboard focus. Event delegation: elements drawn later are covered too.
 */
export function delegatedTooltip(root: HTMLElement | Document, tip: HTMLElement, spec: DelegatedTooltipSpec): HTMLElement {
  const doc = root instanceof Document ? root : root.ownerDocument;
  const target = (event: Event) => (event.target as Element | null)?.closest?.<HTMLElement>(spec.selector) ?? null;
  const show = (event: Event) => {
    const el = target(event);
    if (!el || !spec.fill(tip, el)) return;
    tip.hidden = false;
    const box = el.getBoundingClientRect();
    const win = doc.defaultView;
    const left = spec.place === "above" ? box.left + box.width / 2 : box.left;
    const top = spec.place === "above" ? box.top : box.bottom + 4;
    tip.style.left = `${Math.round(left + (win?.scrollX ?? 0))}px`;
    tip.style.top = `${Math.round(top + (win?.scrollY ?? 0))}px`;
    el.classList.add(spec.hoverClass);
  };
  const hide = (event: Event) => {
    const el = target(event);
    if (!el) return;
    el.classList.remove(spec.hoverClass);
    tip.hidden = true;
  };
  root.addEventListener("mouseover", show);
  root.addEventListener("mouseout", hide);
  root.addEventListener("focusin", show);
  root.addEventListener("focusout", hide);
  return tip;
}
