export interface FeatureRef {
  /** The SAE slug; null when the text named only an index (`#12`), meaning the default SAE. */
  sae: string | null;
  index: number;
}

/**
 * Reads a feature typed directly into the search box: `sae#index`, `#index`, `sae:index` or
 * a bare index. Anything else (a word to search for) gives null.
 */
export function parseFeatureRef(text: string): FeatureRef | null {
  const m = /^\s*(?:([A-Za-z0-9][\w.-]*)\s*[#:]|#)?\s*(\d{1,9})\s*$/.exec(text);
  if (!m) return null;
  return { sae: m[1] ?? null, index: Number(m[2]) };
}
