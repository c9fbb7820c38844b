import type { SteerFeature } from "./steerTypes";

/** Where an error message belongs on the page. */
export type ErrorTarget =
  | { kind: "prompt" }
  | { kind: "feature"; position: number }
  | { kind: "setting"; name: "positions" | "temperature" | "top_p" | "seed" | "max_new_tokens" }
  | { kind: "general" };

const SETTINGS: [RegExp, "positions" | "temperature" | "top_p" | "seed" | "max_new_tokens"][] = [
  [/max_new_tokens|new tokens|too many tokens/i, "max_new_tokens"],
  [/\btemperature\b/i, "temperature"],
  [/\btop[_ -]?p\b/i, "top_p"],
  [/\bseed\b/i, "seed"],
  [/\bpositions?\b/i, "positions"],
];

/**
 * Picks the control an `error` frame is about, so it can be shown beside it: the frame's
 * `field` when the server sends one (`prompt`, `features.2.strength`, `temperature`…),
 * otherwise the message's wording (`features[2].strength …`, `feature demo:12 …`, `prompt …`).
 */
export function errorTarget(message: string, field: string | null | undefined, features: readonly SteerFeature[]): ErrorTarget {
  const f = field ?? "";
  const at = /^features?\.?\[?(\d+)/.exec(f);
  if (at && Number(at[1]) < features.length) return { kind: "feature", position: Number(at[1]) };
  if (f === "prompt") return { kind: "prompt" };
  for (const [re, name] of SETTINGS) if (f && re.test(f)) return { kind: "setting", name };

  const inMessage = /\bfeatures\[(\d+)\]/.exec(message);
  if (inMessage && Number(inMessage[1]) < features.length) return { kind: "feature", position: Number(inMessage[1]) };
  for (let i = 0; i < features.length; i++) {
    const named = namedIn(features[i]!);
    if (named?.test(message)) return { kind: "feature", position: i };
  }
  if (/\bprompt\b/i.test(message)) return { kind: "prompt" };
  for (const [re, name] of SETTINGS) if (re.test(message)) return { kind: "setting", name };
  if (features.length === 1 && /strength|feature|mode/i.test(message)) return { kind: "feature", position: 0 };
  return { kind: "general" };
}

/** How a message names this feature (`demo:12`, `feature 12`) or vector (`steering vector 3`);
 *  null when it cannot be named (an entry without an SAE or index). */
function namedIn(f: SteerFeature): RegExp | null {
  if (f.vector != null) return Number.isInteger(f.vector) ? new RegExp(`\\bvector\\s*#?${f.vector}\\b`, "i") : null;
  if (typeof f.sae !== "string" || !f.sae || !Number.isInteger(f.index) || f.index < 0) return null;
  const sae = f.sae.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?:\\b${sae}\\s*[#:/]\\s*${f.index}\\b)|(?:\\b(?:feature|index)\\s*#?${f.index}\\b)`, "i");
}
