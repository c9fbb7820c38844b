import type { SteerState } from "./steerTypes";

/**
 * The query string (without `?`) that restores `state` on `/<model>/steer/`:
 * `prompt`, `f=sae:index:strength[:mode]` once per feature (mode omitted for `add`),
 * `v=vector:strength` once per steering vector, `t` temperature, `p` top-p, `seed`, `n` max new tokens, `pos` positions,
 * `chat=1` in chat mode (the conversation itself lives in the permalink of each reply).
 */
export function encodeSteerQuery(state: SteerState): string {
  const q = new URLSearchParams();
  q.set("prompt", state.prompt);
  for (const f of state.features) {
    if (f.vector != null) continue;
    const parts = [f.sae, String(f.index), String(f.strength)];
    if (f.mode !== "add") parts.push(f.mode);
    q.append("f", parts.join(":"));
  }
  for (const f of state.features) if (f.vector != null) q.append("v", `${f.vector}:${f.strength}`);
  q.set("t", String(state.temperature));
  q.set("p", String(state.top_p));
  q.set("seed", String(state.seed));
  q.set("n", String(state.max_new_tokens));
  q.set("pos", state.positions);
  if (state.chat) q.set("chat", "1");
  return q.toString();
}
