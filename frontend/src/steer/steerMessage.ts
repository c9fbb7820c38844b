import type { SteerState } from "./steerTypes";

/**
 * The websocket `steer` message (DESIGN.md §6) for `state`: features as
 * {sae, index, strength, mode}, steering vectors as {vector, strength}.
 */
export function steerMessage(gen: number | string, model: string, state: SteerState): Record<string, unknown> {
  return {
    type: "steer",
    gen,
    model,
    prompt: state.prompt,
    features: state.features.map((f) =>
      f.vector != null
        ? { vector: f.vector, strength: f.strength }
        : { sae: f.sae, index: f.index, strength: f.mode === "ablate" ? 0 : f.strength, mode: f.mode },
    ),
    positions: state.positions,
    temperature: state.temperature,
    top_p: state.top_p,
    seed: state.seed,
    max_new_tokens: state.max_new_tokens,
  };
}
