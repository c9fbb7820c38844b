import { importanceOverview } from "./importanceOverview";
import { importancePanel } from "./importancePanel";

/** Runs `load` once `el` is at least a tenth on screen (at once where IntersectionObserver is missing). */
function whenVisible(el: HTMLElement, load: () => void): void {
  const win = el.ownerDocument.defaultView;
  if (!win || !("IntersectionObserver" in win)) return load();
  const observer = new win.IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    load();
  }, { threshold: 0.1 });
  observer.observe(el);
}

/**
 * Wires every importance card and SAE overview under `root` (once each). The overview's data
 * (a value per live feature: megabytes on large SAEs) is fetched when the card comes into view.
 */
export function mountImportance(root: ParentNode = document): void {
  for (const el of Array.from(root.querySelectorAll<HTMLElement>("[data-importance]"))) {
    if (el.dataset.importanceWired) continue;
    el.dataset.importanceWired = "true";
    importancePanel(el);
  }
  for (const el of Array.from(root.querySelectorAll<HTMLElement>("[data-importance-overview]"))) {
    if (el.dataset.importanceWired) continue;
    el.dataset.importanceWired = "true";
    whenVisible(el, () => void importanceOverview(el));
  }
}
