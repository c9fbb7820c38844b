import { select } from "d3";
import { getJson, type HttpError } from "../http";
import { parseFeatureRef } from "./parseFeatureRef";

/** A feature the user can add, from the search API or typed as `sae#index`. */
export interface FeatureCandidate {
  sae: string;
  index: number;
  label: string | null;
  max_activation: number | null;
  /** Where it came from, shown after the name: `exact` (typed as `sae#index`), `index`,
   *  `explanation`, `token`, `text`. */
  match: string;
}

/** An SAE the box may offer features of: its slug and, when known, its number of features. */
export interface SearchSae {
  slug: string;
  d_sae?: number;
}

interface SearchItem {
  sae: string;
  index: number;
  explanation?: string | null;
  max_activation?: number | null;
  match?: string;
}

export interface FeatureSearchOptions {
  model: string;
  /** The model's SAEs, the main one first: a bare `#index` offers each SAE that has that
   *  index, in this order; search results of other SAEs or past an SAE's size are dropped. */
  saes: readonly SearchSae[];
  apiRoot: string;
  onPick: (candidate: FeatureCandidate) => void;
  fetcher?: typeof fetch;
  /** @default 200 */
  debounceMs?: number;
}

/**
 * The "add a feature" box: searches `GET {api}/search` by explanation, token or index as you
 * type, and always offers a typed `sae#index` / `#index` directly, first and marked `exact`,
 * so it works before (or without) the search endpoint. Enter adds the typed feature when the
 * text names one (whether or not the suggestions have arrived), else the first suggestion.
 */
export class FeatureSearch {
  readonly input: HTMLInputElement;
  private readonly results: HTMLUListElement;
  private readonly status: HTMLElement;
  private readonly o: FeatureSearchOptions;
  private candidates: FeatureCandidate[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private query = 0;

  constructor(container: HTMLElement, options: FeatureSearchOptions) {
    this.o = options;
    const root = select(container).append("div").attr("class", "steer-search");
    const label = root.append("label").attr("class", "steer-search-label");
    label.append("span").attr("class", "visually-hidden").text("Add a feature");
    this.input = label
      .append("input")
      .attr("type", "search")
      .attr("class", "steer-search-input")
      .attr("autocomplete", "off")
      .attr("placeholder", "Add a feature: search explanations or tokens, or type sae#index")
      .on("input", () => this.schedule())
      .on("keydown", (event: KeyboardEvent) => {
        if (event.key === "Enter") {
          event.preventDefault();
          this.enter();
        } else if (event.key === "Escape") {
          this.clear();
        }
      })
      .node()!;
    this.results = root.append("ul").attr("class", "steer-search-results").node()!;
    this.status = root.append("p").attr("class", "steer-search-status muted").attr("aria-live", "polite").node()!;
  }

  /** Shows a message under the box (e.g. why a feature could not be added). */
  message(text: string, error = false): void {
    select(this.status).classed("steer-error-text", error).text(text);
  }

  clear(): void {
    this.input.value = "";
    this.show([]);
    this.message("");
  }

  /** Enter: the feature the text names, else the first suggestion. */
  private enter(): void {
    const text = this.input.value;
    if (parseFeatureRef(text)) {
      const exact = this.candidates.find((c) => c.match === "exact") ?? this.typed(text)[0];
      if (exact) this.pick(exact);
      else this.message(this.noSuchFeature(text), true);
      return;
    }
    const first = this.candidates[0];
    if (first) this.pick(first);
  }

  private noSuchFeature(text: string): string {
    const ref = parseFeatureRef(text)!;
    const sae = ref.sae === null ? null : this.o.saes.find((s) => s.slug === ref.sae);
    if (ref.sae !== null && !sae) return `No SAE “${ref.sae}” on ${this.o.model}.`;
    if (sae?.d_sae !== undefined) return `${sae.slug} has ${sae.d_sae} features (0–${sae.d_sae - 1}).`;
    return `No SAE of ${this.o.model} has a feature #${ref.index}.`;
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    const text = this.input.value;
    const typed = this.typed(text);
    this.query += 1; // answers to earlier text are stale now
    this.show(typed);
    this.message("");
    if (text.trim().length < 1) return;
    this.timer = setTimeout(() => void this.search(text, typed), this.o.debounceMs ?? 200);
  }

  /** The features the text names exactly: `sae#index` if that SAE has that index; `#index`:
   *  that index of every SAE that has it, the main SAE first. */
  private typed(text: string): FeatureCandidate[] {
    const ref = parseFeatureRef(text);
    if (!ref) return [];
    return this.o.saes
      .filter((s) => (ref.sae === null || s.slug === ref.sae) && has(s, ref.index))
      .map((s) => ({ sae: s.slug, index: ref.index, label: null, max_activation: null, match: "exact" }));
  }

  private async search(text: string, typed: FeatureCandidate[]): Promise<void> {
    const id = ++this.query;
    const q = new URLSearchParams({ q: text, model: this.o.model, limit: "10" });
    let answer: { items?: SearchItem[] };
    try {
      answer = await getJson(`${this.o.apiRoot}search?${q}`, { fetcher: this.o.fetcher });
    } catch (error) {
      const e = error as HttpError;
      if (id === this.query && typed.length === 0) this.message(e.json ? e.message : "Search is unavailable; type sae#index to add a feature.", e.json);
      return;
    }
    if (id !== this.query) return;
    const saes = new Map(this.o.saes.map((s) => [s.slug, s]));
    const found = (answer.items ?? [])
      .filter((it) => saes.has(it.sae) && has(saes.get(it.sae)!, it.index))
      .map<FeatureCandidate>((it) => ({
        sae: it.sae,
        index: it.index,
        label: it.explanation ?? null,
        max_activation: it.max_activation ?? null,
        match: it.match ?? "",
      }));
    // The exact features first, with what the search knows of them (label, max activation).
    const key = (c: FeatureCandidate) => `${c.sae}#${c.index}`;
    const known = new Map(found.map((c) => [key(c), c]));
    const exact = typed.map((c) => ({ ...(known.get(key(c)) ?? c), match: "exact" }));
    const exactKeys = new Set(exact.map(key));
    const all = [...exact, ...found.filter((c) => !exactKeys.has(key(c)))];
    this.show(all);
    if (all.length === 0) this.message(parseFeatureRef(text) ? this.noSuchFeature(text) : `No features match “${text}”.`);
  }

  private pick(candidate: FeatureCandidate): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.query += 1; // a search still on its way must not bring the list back
    this.clear();
    this.o.onPick(candidate);
  }

  private show(candidates: FeatureCandidate[]): void {
    this.candidates = candidates;
    select(this.results)
      .selectAll<HTMLLIElement, FeatureCandidate>("li")
      .data(candidates, (c) => `${c.sae}#${c.index}`)
      .join((enter) => {
        const li = enter.append("li");
        const b = li.append("button").attr("type", "button").attr("class", "steer-candidate");
        b.append("span").attr("class", "steer-candidate-name");
        b.append("span").attr("class", "steer-candidate-label");
        b.append("span").attr("class", "steer-candidate-match muted");
        return li;
      })
      .each(function (c) {
        const b = select(this).select("button");
        b.select(".steer-candidate-name").text(`${c.sae}#${c.index}`);
        b.select(".steer-candidate-label").text(c.label ?? (c.match === "exact" ? "add this feature" : ""));
        b.select(".steer-candidate-match").text(c.match);
      })
      .select("button")
      .on("click", (_event, c) => this.pick(c));
  }
}

function has(sae: SearchSae, index: number): boolean {
  return sae.d_sae === undefined || index < sae.d_sae;
}
