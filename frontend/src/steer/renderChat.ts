import { select } from "d3";
import { renderContinuation, type ContinuationView } from "./renderContinuation";
import type { ChatMessage } from "./steerTypes";

type Turn = { role: ChatMessage["role"]; content: string | null };

/**
 * Writes one column of a chat into `el`: its history, the user's message being answered and
 * the reply (rendered by renderContinuation, so streaming, divergence marks and token hovers
 * work as for a plain continuation). Everything goes in as text: model text is untrusted.
 */
export function renderChat(el: HTMLElement, history: ChatMessage[], ask: string, reply: Omit<ContinuationView, "prompt">): void {
  const root = select(el);
  root.selectAll(":scope > :not(.steer-turn)").remove(); // a plain continuation's parts
  const turns: Turn[] = [...history, ...(ask ? [{ role: "user" as const, content: ask }, { role: "assistant" as const, content: null }] : [])];
  const joined = root
    .selectAll<HTMLElement, Turn>(":scope > .steer-turn")
    .data(turns)
    .join("div")
    .attr("class", (t) => `steer-turn steer-turn--${t.role}${t.content === null ? " steer-turn--reply" : ""}`)
    .attr("data-role", (t) => t.role);
  joined.each(function (t) {
    if (t.content !== null) {
      this.textContent = t.content;
      return;
    }
    if (!this.querySelector(":scope > .steer-part")) this.textContent = "";
    renderContinuation(this, { ...reply, prompt: "" });
  });
}

/** Removes a chat's turns from a column about to show a plain continuation. */
export function clearChat(el: HTMLElement): void {
  select(el).selectAll(":scope > .steer-turn").remove();
}
