import type { DeltaFrame, DoneFrame, SteerRow } from "./steerTypes";

export interface RowText {
  text: string;
  /** True once the row's `done` frame arrived; `text` is then the full, authoritative text. */
  done: boolean;
  /** The `done` frame's tokens (token strings, or ids, as the server sends them). */
  tokens: unknown[] | null;
  /** Each token's probability and the likeliest tokens at its step, when the server sent them. */
  probs?: number[] | null;
  alternatives?: [string, number][][] | null;
}

export interface StreamUpdate {
  /** Whether either row's text changed. */
  changed: boolean;
  /** Set when a gap was found: ask the server to `resume` with this `after_seq`. */
  resumeAfter: number | null;
}

export interface GenerationStreamOptions {
  /** Sequence number of the first frame. @default 1 */
  firstSeq?: number;
  /**
   * A finished default row to keep (an earlier generation's, when only the steering changed):
   * the row starts done with it, and the default frames of this generation are sequenced but
   * change nothing. The server still decodes and stores both rows, so the permalink is whole.
   */
  keepDefault?: RowText | null;
}

type Sequenced = { seq?: number; apply: () => boolean };

/**
 * Assembles one generation's frames into the two rows' texts. Frames are numbered across both
 * rows (`seq`, deltas and `done`s alike) and applied in order: a duplicate (replayed) frame is
 * ignored, an early one is held until the gap before it fills, and each new gap asks once for a
 * resume. A `done` frame replaces its row's text at once with the full text, so a lost delta
 * never survives it; later deltas of a finished row are ignored.
 */
export class GenerationStream {
  readonly gen: number | string;
  readonly rows: Record<SteerRow, RowText> = {
    default: { text: "", done: false, tokens: null },
    steered: { text: "", done: false, tokens: null },
  };
  result: string | number | null = null;
  /** Whether the default row is a kept one (GenerationStreamOptions.keepDefault). */
  readonly keptDefault: boolean;
  private applied: number;
  private readonly held = new Map<number, Sequenced>();
  private asked: number | null = null;

  constructor(gen: number | string, options: GenerationStreamOptions = {}) {
    this.gen = gen;
    this.applied = (options.firstSeq ?? 1) - 1;
    const keep = options.keepDefault;
    this.keptDefault = Boolean(keep?.done);
    if (keep?.done) this.rows.default = { ...keep };
  }

  get complete(): boolean {
    return this.rows.default.done && this.rows.steered.done;
  }

  /** The last sequence number applied without a gap (the `after_seq` of a resume). */
  lastSeq(): number {
    return this.applied;
  }

  delta(frame: DeltaFrame): StreamUpdate {
    return this.sequence(frame.seq, () => {
      const row = this.rows[frame.row];
      if (row.done || !frame.text) return false;
      row.text += frame.text;
      return true;
    });
  }

  done(frame: DoneFrame & { seq?: number }): StreamUpdate {
    if (frame.result !== undefined && frame.result !== null) this.result = frame.result;
    if (frame.row === "default" && this.keptDefault) {
      if (typeof frame.seq !== "number") return { changed: false, resumeAfter: null };
      const update = this.sequence(frame.seq, () => false);
      return { changed: false, resumeAfter: this.complete ? null : update.resumeAfter };
    }
    const row = this.rows[frame.row];
    const changed = row.text !== frame.text || !row.done;
    row.text = frame.text;
    row.done = true;
    row.tokens = Array.isArray(frame.tokens) ? frame.tokens : null;
    row.probs = Array.isArray(frame.probs) ? frame.probs : undefined;
    row.alternatives = Array.isArray(frame.alternatives) ? frame.alternatives : undefined;
    if (this.complete) this.held.clear();
    if (typeof frame.seq !== "number") return { changed, resumeAfter: null };
    const update = this.sequence(frame.seq, () => false);
    return { changed: changed || update.changed, resumeAfter: this.complete ? null : update.resumeAfter };
  }

  private sequence(seq: number | undefined, apply: () => boolean): StreamUpdate {
    if (!Number.isInteger(seq) || seq! <= this.applied) return { changed: false, resumeAfter: null };
    this.held.set(seq!, { seq: seq!, apply });
    let changed = false;
    for (let f = this.held.get(this.applied + 1); f; f = this.held.get(this.applied + 1)) {
      this.held.delete(this.applied + 1);
      changed = f.apply() || changed;
      this.applied += 1;
    }
    let resumeAfter: number | null = null;
    if (this.held.size > 0 && this.asked !== this.applied && !this.complete) {
      this.asked = this.applied;
      resumeAfter = this.applied;
    }
    return { changed, resumeAfter };
  }
}
