import { select } from "d3";
import { getJson, type HttpError } from "../http";
import { parseFeatureRef } from "./parseFeatureRef";

/** A feature the user can add, from the search API or typed as `sae#index`. */
export interface FeatureCandidate {
  sae: string;
  index: number;
  label: string | null;
  max_activation: number | null;
  /** Where it came from, shown after the name: `index`, `explanation`, `token`, `text`, `typed`. */
  match: string;
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
  /** SAE slugs of the model; the first is used for a bare `#index`. */
  saes: readonly string[];
  apiRoot: string;
  onPick: (candidate: FeatureCandidate) => void;
  fetcher?: typeof fetch;
  /** @default 200 */
  debounceMs?: number;
}

/**
 * The "add a feature" box: searches `GET {api}/search` by explanation, token or index as you
 * type, and always offers a typed `sae#index` / `#index` directly, so it works before (or
 * without) the search endpoint. Enter adds the first result.
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
          const first = this.candidates[0];
          if (first) this.pick(first);
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

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    const text = this.input.value;
    const typed = this.typed(text);
    this.show(typed);
    this.message("");
    if (text.trim().length < 1) return;
    this.timer = setTimeout(() => void this.search(text, typed), this.o.debounceMs ?? 200);
  }

  private typed(text: string): FeatureCandidate[] {
    const ref = parseFeatureRef(text);
    if (!ref) return [];
    const sae = ref.sae ?? this.o.saes[0];
    if (!sae) return [];
    return [{ sae, index: ref.index, label: null, max_activation: null, match: "typed" }];
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
    const found = (answer.items ?? []).map<FeatureCandidate>((it) => ({
      sae: it.sae,
      index: it.index,
      label: it.explanation ?? null,
      max_activation: it.max_activation ?? null,
      match: it.match ?? "",
    }));
    const seen = new Set(found.map((c) => `${c.sae}#${c.index}`));
    const all = [...found, ...typed.filter((c) => !seen.has(`${c.sae}#${c.index}`))];
    this.show(all);
    if (all.length === 0) this.message(`No features match “${text}”.`);
  }

  private pick(candidate: FeatureCandidate): void {
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
        b.select(".steer-candidate-label").text(c.label ?? (c.match === "typed" ? "add this feature" : ""));
        b.select(".steer-candidate-match").text(c.match && c.match !== "typed" ? c.match : "");
      })
      .select("button")
      .on("click", (_event, c) => this.pick(c));
  }
}
