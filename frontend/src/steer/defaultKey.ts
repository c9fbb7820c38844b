import { chatMessages } from "./steerMessage";
import type { SteerState } from "./steerTypes";

/**
 * What the default (unsteered) row depends on: its input (the prompt, or a chat's default
 * conversation) and the sampling settings. Two states with the same key give the same default
 * text (the engine is seeded), so a finished default row can be kept while only the steering
 * changes.
 */
export function defaultKey(state: SteerState): string {
  const input = state.chat ? chatMessages(state.chat.default, state.prompt) : state.prompt;
  return JSON.stringify([input, state.temperature, state.top_p, state.seed, state.max_new_tokens]);
}
