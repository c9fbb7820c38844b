/** A token whose next-token probability moved under zero ablation (value: mean change). */
export interface TokenMove {
  token_id: number;
  token: string;
  value: number;
}

/** GET/POST /api/v1/models/{model}/saes/{sae}/features/{index}/importance. */
export interface ImportanceResult {
  status: "queued" | "running" | "done" | "failed" | null;
  progress: number;
  error: string;
  loss_delta: { zero: number | null; mean: number | null; resample: number | null } | null;
  n_contexts: number;
  n_predictions: number;
  up: TokenMove[];
  down: TokenMove[];
}

/** GET /api/v1/models/{model}/saes/{sae}/importance. */
export interface ImportanceOverview {
  /** The features with an importance: parallel columns. */
  index: number[];
  density: number[];
  importance: number[];
  /** Every live feature's largest decoder cosine to another feature (null: no neighbour). */
  max_cosine: (number | null)[];
  n_live: number;
  n_dead: number;
}
