/** Decoded tokens and one activation per token (null/NaN/missing: unknown). */
export interface TokenData {
  tokens: string[];
  values: ArrayLike<number | null | undefined>;
  /** The token marked as the max (and the centre of a windowed strip); default: the largest value. */
  maxPosition?: number | null;
}
