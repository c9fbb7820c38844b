import type { SteerFeature, SteerMode, SteerPositions, SteerState } from "./steerTypes";

const MODES: readonly string[] = ["add", "clamp", "ablate", "logit"];
const POSITIONS: readonly string[] = ["all", "prompt", "generated", "assistant"];

export interface DecodedSteerQuery {
  state: SteerState;
  /** One `invalid <param>: <value>` line per part that was ignored. */
  errors: string[];
}

/**
 * Reads a steering URL query (see encodeSteerQuery) over `defaults`. A malformed part keeps the
 * default and adds an error line instead of throwing, because URLs get hand-edited.
 */
export function decodeSteerQuery(search: string | URLSearchParams, defaults: SteerState): DecodedSteerQuery {
  const q = typeof search === "string" ? new URLSearchParams(search) : search;
  const errors: string[] = [];
  const state: SteerState = { ...defaults, features: [...defaults.features] };
  const num = (key: string, ok: (v: number) => boolean): number | undefined => {
    const raw = q.get(key);
    if (raw === null) return undefined;
    const v = Number(raw);
    if (raw.trim() === "" || !ok(v)) {
      errors.push(`invalid ${key}: ${raw}`);
      return undefined;
    }
    return v;
  };
  const prompt = q.get("prompt");
  if (prompt !== null) state.prompt = prompt;
  if (q.has("f") || q.has("v")) {
    const features: SteerFeature[] = [];
    for (const raw of q.getAll("f")) {
      const [sae, index, strength, mode = "add", ...rest] = raw.split(":");
      const i = Number(index);
      const s = Number(strength);
      if (!sae || rest.length || !Number.isInteger(i) || i < 0 || strength === undefined || strength.trim() === "" || !Number.isFinite(s) || !MODES.includes(mode)) {
        errors.push(`invalid f: ${raw}`);
        continue;
      }
      features.push({ sae, index: i, strength: s, mode: mode as SteerMode });
    }
    for (const raw of q.getAll("v")) {
      const [id, strength, ...rest] = raw.split(":");
      const v = Number(id);
      const s = Number(strength);
      if (rest.length || !Number.isInteger(v) || v < 1 || strength === undefined || strength.trim() === "" || !Number.isFinite(s)) {
        errors.push(`invalid v: ${raw}`);
        continue;
      }
      features.push({ sae: "", index: -1, vector: v, strength: s, mode: "add" });
    }
    state.features = features;
  }
  state.temperature = num("t", (v) => Number.isFinite(v) && v >= 0) ?? state.temperature;
  state.top_p = num("p", (v) => Number.isFinite(v) && v > 0 && v <= 1) ?? state.top_p;
  state.seed = num("seed", (v) => Number.isInteger(v) && v >= 0) ?? state.seed;
  state.max_new_tokens = num("n", (v) => Number.isInteger(v) && v > 0) ?? state.max_new_tokens;
  if (q.get("chat") === "1") state.chat = state.chat ?? { default: [], steered: [] };
  const pos = q.get("pos");
  if (pos !== null) {
    if (POSITIONS.includes(pos)) state.positions = pos as SteerPositions;
    else errors.push(`invalid pos: ${pos}`);
  }
  return { state, errors };
}
