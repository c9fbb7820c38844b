export type SortDirection = "ascending" | "descending";

/** Compares two keys; missing keys (null) sort last in either direction. */
export function compareKeys(a: number | string | null, b: number | string | null, direction: SortDirection): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  const order = a < b ? -1 : a > b ? 1 : 0;
  return direction === "ascending" ? order : -order;
}
