import { divergence } from "./divergence";
import type { RowText } from "./generationStream";

function pieces(row: RowText): string[] | null {
  const t = row.tokens;
  if (!row.done || !t || !t.every((x) => typeof x === "string")) return null;
  return (t as string[]).join("") === row.text ? (t as string[]) : null;
}

/**
 * The char offset at which the default and steered rows part, or null while unknown (or when
 * they agree). When both rows are done and their `tokens` are the token strings, the offset is
 * snapped back to the start of the first differing token; otherwise it is the first differing
 * char (token ids alone do not say where a token starts in the text).
 */
export function divergeOffset(a: RowText, b: RowText): number | null {
  const ta = pieces(a);
  const tb = pieces(b);
  if (ta && tb) {
    const k = divergence(ta, tb);
    return k === null ? null : tb.slice(0, k).join("").length;
  }
  return divergence(a.text, b.text, a.done, b.done);
}
