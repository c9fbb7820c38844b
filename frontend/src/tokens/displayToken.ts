const VISIBLE: Record<string, string> = { "\n": "↵", "\r": "␍", "\t": "⇥" };

/**
 * The text shown for a decoded token: line breaks and tabs become visible marks (↵ ␍ ⇥),
 * other control characters become `\xNN`, a whitespace-only token shows its spaces as
 * middle dots, and the empty token shows as ∅. The result is plain text, never markup.
 */
export function displayToken(token: string): string {
  if (token === "") return "∅";
  if (/^ +$/.test(token)) return "·".repeat(token.length);
  return token
    .replace(/[\n\r\t]/g, (c) => VISIBLE[c] ?? c)
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
