export interface ContrastPair {
  prompt: string;
  positive: string;
  negative: string;
}

const KEYS = ["prompt", "positive", "negative"] as const;

/**
 * Parses JSONL contrast pairs for CAA: one `{"prompt","positive","negative"}` object per line,
 * each a non-empty string, positive ≠ negative; blank lines are skipped. The server checks the
 * same; checking here first gives the message while typing.
 *
 * @throws Error `line <n>: <what is wrong>` for the first bad line, or when there are no pairs.
 */
export function parseContrastPairs(text: string): ContrastPair[] {
  const pairs: ContrastPair[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`${where} is not JSON`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${where} must be an object`);
    const o = value as Record<string, unknown>;
    const extra = Object.keys(o).filter((k) => !(KEYS as readonly string[]).includes(k));
    if (extra.length) throw new Error(`${where} has unknown field(s): ${extra.join(", ")}`);
    for (const key of KEYS) {
      if (typeof o[key] !== "string" || o[key] === "") throw new Error(`${where}: "${key}" must be a non-empty string`);
    }
    if (o.positive === o.negative) throw new Error(`${where}: positive and negative are identical`);
    pairs.push({ prompt: o.prompt as string, positive: o.positive as string, negative: o.negative as string });
  });
  if (pairs.length === 0) throw new Error("no contrast pairs: paste one JSON object per line");
  return pairs;
}
