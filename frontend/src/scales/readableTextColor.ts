import { lab } from "d3";

/**
 * The text colour that stays readable on `background`: near-black on light fills,
 * white on dark ones, and null (inherit the theme's colour) on a transparent fill.
 */
export function readableTextColor(background: string): string | null {
  if (background === "transparent") return null;
  const l = lab(background).l;
  return Number.isFinite(l) && l < 58 ? "#ffffff" : "#111111";
}
