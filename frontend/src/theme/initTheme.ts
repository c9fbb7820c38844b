import type { Theme } from "./theme";

/** localStorage key holding the user's choice; absent means "follow the system". */
const KEY = "sfe-theme";

function stored(win: Window): Theme | null {
  try {
    const v = win.localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null; // storage blocked (private mode, sandboxed iframe): follow the system
  }
}

/**
 * Applies the theme to `<html data-theme>` and wires every `[data-theme-toggle]` button.
 * The theme follows `prefers-color-scheme` (live) until a toggle is clicked; the choice is
 * then kept in localStorage. Returns the theme applied.
 */
export function initTheme(doc: Document = document): Theme {
  const win = doc.defaultView as Window;
  const media = typeof win.matchMedia === "function" ? win.matchMedia("(prefers-color-scheme: dark)") : null;
  const system = (): Theme => (media?.matches ? "dark" : "light");
  const buttons = Array.from(doc.querySelectorAll<HTMLElement>("[data-theme-toggle]"));

  const apply = (theme: Theme): Theme => {
    doc.documentElement.dataset.theme = theme;
    for (const b of buttons) {
      b.setAttribute("aria-pressed", String(theme === "dark"));
      b.setAttribute("title", theme === "dark" ? "Switch to light theme" : "Switch to dark theme");
    }
    return theme;
  };

  media?.addEventListener?.("change", () => {
    if (stored(win) === null) apply(system());
  });
  for (const b of buttons) {
    b.addEventListener("click", () => {
      const next: Theme = doc.documentElement.dataset.theme === "dark" ? "light" : "dark";
      try {
        win.localStorage.setItem(KEY, next);
      } catch {
        // not persisted; the toggle still works for this page
      }
      apply(next);
    });
  }
  return apply(stored(win) ?? system());
}
