import type { SteerFeature, SteerSaeInfo } from "./steerTypes";

/**
 * The SAE a steering page means when it names none: the SAE of the features being steered,
 * else the first SAE on the residual stream (`hook_resid_*`, the model's main hook), else the
 * first SAE. Null for a model without SAEs.
 */
export function mainSae(saes: readonly SteerSaeInfo[], features: readonly SteerFeature[] = []): SteerSaeInfo | null {
  const used = features.find((f) => f.sae && saes.some((s) => s.slug === f.sae));
  if (used) return saes.find((s) => s.slug === used.sae)!;
  return saes.find((s) => /hook_resid_(pre|mid|post)$/.test(s.hook_name)) ?? saes[0] ?? null;
}

