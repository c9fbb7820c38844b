/** Intervention modes, as DESIGN.md §6 names them on the wire. */
export type SteerMode = "add" | "clamp" | "ablate" | "logit";
/** Which positions a steering intervention acts on ("assistant": a chat's assistant turns). */
export type SteerPositions = "all" | "prompt" | "generated" | "assistant";

/** One turn of a chat, as the `messages` of a `steer` message carry it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Each column's conversation before the message being answered (the state's `prompt`): the
 *  columns share the user's turns and keep their own replies, so they diverge. */
export interface ChatHistory {
  default: ChatMessage[];
  steered: ChatMessage[];
}
/** The two continuations generated side by side. */
export type SteerRow = "default" | "steered";

/**
 * One feature being steered; `strength` is in raw activation units. A CAA steering vector is
 * steered the same way: it has `vector` (its id), `sae` is the SAE it lives at and `index` is -1.
 */
export interface SteerFeature {
  sae: string;
  index: number;
  vector?: number | null;
  strength: number;
  mode: SteerMode;
  /** The feature's max activation (the slider's unit); null when unknown. */
  max_activation?: number | null;
  /** A short explanation shown beside the slider. */
  label?: string | null;
}

/** Everything a generation depends on: what the URL carries and what a `steer` message sends. */
export interface SteerState {
  /** The text to continue or, in a chat, the user's message being answered. */
  prompt: string;
  /** A chat's history (null or absent: plain text continuation). */
  chat?: ChatHistory | null;
  features: SteerFeature[];
  positions: SteerPositions;
  temperature: number;
  top_p: number;
  seed: number;
  max_new_tokens: number;
}

export interface SteerLimits {
  strength_min: number;
  strength_max: number;
  max_features: number;
  max_new_tokens: number;
  max_prompt_chars: number;
  /** Characters of a chat's messages together. */
  max_chat_chars?: number;
}

export interface SteerSaeInfo {
  slug: string;
  d_sae: number;
  hook_name: string;
}

/** A stored generation (permalink): enough to show both columns without generating. */
export interface SteerStoredResult {
  id: string | number;
  default_text: string;
  steered_text: string;
  default_tokens?: unknown[];
  steered_tokens?: unknown[];
  [key: string]: unknown;
}

/** The page's `steer-config` json_script, rendered by the steering view. */
export interface SteerConfig {
  model: string;
  /** Whether the model has a chat template (the page then offers chat mode). */
  chat?: boolean;
  ws_path: string;
  saes: SteerSaeInfo[];
  limits: SteerLimits;
  initial: SteerState;
  result: SteerStoredResult | null;
  /** Where `/api/v1/` lives; defaults to `/api/v1/`. */
  api_root?: string;
  /** What the page says about its link (features left out, and why); shown by the server. */
  notices?: string[];
  /** Whether the reader is signed in (may create steering vectors); absent: unknown. */
  signed_in?: boolean;
  [key: string]: unknown;
}

/** Server → client frames (DESIGN.md §6). */
export interface DeltaFrame {
  type: "delta";
  gen: number | string;
  row: SteerRow;
  seq: number;
  text: string;
}

export interface DoneFrame {
  type: "done";
  gen: number | string;
  row: SteerRow;
  seq?: number;
  text: string;
  /** Token strings of the row (their concatenation is `text`). */
  tokens?: unknown[];
  token_ids?: number[];
  /** Each token's probability, and its step's likeliest tokens as [token, probability]. */
  probs?: number[];
  alternatives?: [string, number][][];
  result?: string | number | null;
}

export interface ErrorFrame {
  type: "error";
  gen?: number | string | null;
  seq?: number;
  message: string;
  code?: string;
  field?: string;
}

export type ServerFrame = DeltaFrame | DoneFrame | ErrorFrame;
