/** `value` to 3 significant digits with a true minus sign, as the server's `sig` filter; "–" when unknown. */
export function formatSig(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const text = value !== 0 && Math.abs(value) >= 1000 ? Math.round(value).toLocaleString("en") : String(+value.toPrecision(3));
  return text.replace("-", "\u2212");
}
