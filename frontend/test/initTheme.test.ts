import { afterEach, describe, expect, it } from "vitest";
import { initTheme } from "../src/theme/initTheme";

describe("initTheme", () => {
  afterEach(() => {
    localStorage.clear();
    document.body.replaceChildren();
    delete document.documentElement.dataset.theme;
  });

  it("follows the system (light here) when nothing is stored", () => {
    expect(initTheme(document)).toBe("light");
    expect(document.documentElement.dataset.theme).toBe("light");
  });

  it("a stored choice wins over the system", () => {
    localStorage.setItem("sfe-theme", "dark");
    expect(initTheme(document)).toBe("dark");
  });

  it("the toggle flips the theme and persists it", () => {
    document.body.innerHTML = `<button data-theme-toggle>Theme</button>`;
    initTheme(document);
    const button = document.querySelector<HTMLButtonElement>("[data-theme-toggle]")!;
    button.click();
    expect(document.documentElement.dataset.theme).toBe("dark");
    expect(button.getAttribute("aria-pressed")).toBe("true");
    expect(localStorage.getItem("sfe-theme")).toBe("dark");
    button.click();
    expect(document.documentElement.dataset.theme).toBe("light");
    expect(localStorage.getItem("sfe-theme")).toBe("light");
  });
});
