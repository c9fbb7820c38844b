export type SortKind = "number" | "text";

/** A cell's sort key: its `data-value` when present, else its text; null when there is none. */
export function cellKey(cell: Element | undefined, kind: SortKind): number | string | null {
  const raw = (cell?.getAttribute("data-value") ?? cell?.textContent ?? "").trim();
  if (raw === "") return null;
  if (kind === "text") return raw.toLowerCase();
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}
