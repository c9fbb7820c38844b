/** Decoded tokens and one activation per token (null/NaN/missing: unknown). */
export interface TokenData {
  tokens: string[];
  values: ArrayLike<number | null | undefined>;
}
