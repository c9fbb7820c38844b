/** Decoded tokens and one activation per token (null/NaN/missing: unknown). */
export interface TokenData {
  tokens: string[];
  values: ArrayLike<number | null | undefined>;
  /** The token marked as the max (and the centre of a windowed strip); default: the largest value. */
  maxPosition?: number | null;
  /** Position 0 is a BOS token left out of every statistic: drawn with its value, marked `token--excluded`. */
  bosExcluded?: boolean;
}
