import { divergence } from "./divergence";
import type { RowText } from "./generationStream";
import { rowPieces } from "./rowPieces";

function pieces(row: RowText): string[] | null {
  return rowPieces(row)?.map((p) => p.text) ?? null;
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
