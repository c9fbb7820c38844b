import type { ChatMessage, SteerState } from "./steerTypes";

/** A column's whole conversation: its history, then the user's message being answered. */
export function chatMessages(history: ChatMessage[], ask: string): ChatMessage[] {
  return [...history, { role: "user", content: ask }];
}

/**
 * The websocket `steer` message (DESIGN.md §6) for `state`: features as
 * {sae, index, strength, mode}, steering vectors as {vector, strength}. A chat sends `messages`
 * (the default column's conversation) instead of `prompt`, and `steered_messages` once the
 * steered column's replies differ from the default's.
 */
export function steerMessage(gen: number | string, model: string, state: SteerState): Record<string, unknown> {
  const input: Record<string, unknown> = { prompt: state.prompt };
  if (state.chat) {
    const messages = chatMessages(state.chat.default, state.prompt);
    const steered = chatMessages(state.chat.steered, state.prompt);
    delete input.prompt;
    input.messages = messages;
    if (JSON.stringify(steered) !== JSON.stringify(messages)) input.steered_messages = steered;
  }
  return {
    type: "steer",
    gen,
    model,
    ...input,
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
