import type { SteerFeature } from "./steerTypes";

/** A feature's identity in the panel: `sae#index`, or `vector:<id>` for a steering vector. */
export function featureKey(f: Pick<SteerFeature, "sae" | "index" | "vector">): string {
  return f.vector != null ? `vector:${f.vector}` : `${f.sae}#${f.index}`;
}
