import type { RowText } from "./generationStream";

/** One generated token as the columns show it: its text, its probability, the likeliest tokens. */
export interface TokenPiece {
  text: string;
  prob: number | null;
  alternatives: [string, number][] | null;
}

/**
 * A finished row cut into its tokens, or null while it streams or when its `tokens` are not
 * strings that add up to its text (token ids, or a character split across tokens). Each piece
 * carries its probability and alternatives when the server sent them (`done.probs`,
 * `done.alternatives`).
 */
export function rowPieces(row: RowText): TokenPiece[] | null {
  const t = row.tokens;
  if (!row.done || !t || !t.every((x) => typeof x === "string")) return null;
  const texts = t as string[];
  if (texts.join("") !== row.text) return null;
  const probs = row.probs?.length === texts.length ? row.probs : null;
  const alts = row.alternatives?.length === texts.length ? row.alternatives : null;
  return texts.map((text, i) => ({ text, prob: probs ? probs[i]! : null, alternatives: alts ? alts[i]! : null }));
}
