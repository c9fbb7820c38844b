/** How a token is shown: special (BOS/EOS/pad markers), newline, whitespace-only, or text. */
export type TokenKind = "special" | "newline" | "whitespace" | "text";

const SPECIAL = /^(<\|[^|<>]*\|>|<\/?(s|bos|eos|pad|unk|mask)>|\[(CLS|SEP|PAD|UNK|MASK|BOS|EOS)\])$/i;

/** Classifies a decoded token string for display. */
export function tokenKind(token: string): TokenKind {
  if (SPECIAL.test(token)) return "special";
  if (/[\n\r]/.test(token)) return "newline";
  if (token === "" || /^\s+$/.test(token)) return "whitespace";
  return "text";
}
