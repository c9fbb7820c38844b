import { select } from "d3";
import { getJson, postJson, type HttpError } from "../http";
import { mainSae } from "./mainSae";
import { parseContrastPairs } from "./parseContrastPairs";
import type { SteerPanel } from "./steerPanel";
import type { SteerConfig } from "./steerTypes";

/** A steering vector as `GET /api/v1/steering/vectors/{id}` returns it. */
export interface SteeringVectorOut {
  id: number;
  model?: string;
  sae: string;
  label: string;
  /** pending | ready | failed */
  status: string;
  error?: string;
  n_pairs?: number;
  /** The SAE features it aligns with, best first, with their best explanation. */
  features?: { index: number; cosine: number; weight?: number; label?: string | null }[];
}

export interface CaaPanelOptions {
  config: SteerConfig;
  panel: Pick<SteerPanel, "addVector" | "addCandidate">;
  fetcher?: typeof fetch;
  /** The vectors endpoint. @default `${api_root}steering/vectors` */
  endpoint?: string;
  /** Polling interval while a vector is being built. @default 1000 */
  pollMs?: number;
}

/**
 * The CAA section: contrast pairs pasted or uploaded as JSONL, a name and an SAE are POSTed to
 * `POST {api}/steering/vectors` {model, sae, label, pairs: "<JSONL>"}; the worker builds the
 * vector (polled until ready), which can then be steered like a feature, and the SAE features
 * it aligns with are listed with their explanations, each addable to the panel. Ready vectors
 * of the model are listed too, to steer with again. The SAE menu starts at the page's main SAE
 * (mainSae); a signed-out reader is told to sign in, with a link back to this page.
 */
export class CaaPanel {
  private readonly o: CaaPanelOptions;
  private readonly endpoint: string;
  private readonly text: HTMLTextAreaElement;
  private readonly name: HTMLInputElement;
  private readonly sae: HTMLSelectElement;
  private readonly status: HTMLElement;
  private readonly result: HTMLElement;
  private readonly submit: HTMLButtonElement;
  private readonly saved: HTMLElement;

  constructor(container: HTMLElement, options: CaaPanelOptions) {
    this.o = options;
    this.endpoint = options.endpoint ?? `${options.config.api_root ?? "/api/v1/"}steering/vectors`;
    const doc = container.ownerDocument;
    const token = container.querySelector<HTMLInputElement>("input[name=csrfmiddlewaretoken]")?.value ?? "";
    const c = select(container);
    c.selectAll("*").remove();
    const details = c.append("details").attr("class", "steer-caa-details");
    details.append("summary").attr("class", "steer-heading").text("Steering vector from contrast pairs (CAA)");
    const form = details.append("form").attr("class", "steer-caa-form").attr("novalidate", "");
    if (token) form.append("input").attr("type", "hidden").attr("name", "csrfmiddlewaretoken").attr("value", token);
    form
      .append("p")
      .attr("class", "muted")
      .text('One JSON object per line: {"prompt": …, "positive": …, "negative": …}. The vector is the mean activation difference of positive and negative completions at the SAE\'s hook.');
    const pairs = form.append("label").attr("class", "steer-field steer-caa-pairs");
    pairs.append("span").attr("class", "steer-field-label").text("Contrast pairs (JSONL)");
    this.text = pairs
      .append("textarea")
      .attr("rows", 5)
      .attr("spellcheck", "false")
      .attr("placeholder", '{"prompt": "I think the weather is", "positive": " lovely", "negative": " awful"}')
      .node()!;
    const row = form.append("div").attr("class", "steer-caa-row");
    const upload = row.append("label").attr("class", "steer-field");
    upload.append("span").attr("class", "steer-field-label").text("…or upload a .jsonl file");
    upload
      .append("input")
      .attr("type", "file")
      .attr("accept", ".jsonl,.json,.txt,application/json,text/plain")
      .on("change", async (event: Event) => {
        const file = (event.target as HTMLInputElement).files?.[0];
        if (file) this.text.value = await file.text();
      });
    const nameField = row.append("label").attr("class", "steer-field");
    nameField.append("span").attr("class", "steer-field-label").text("Name");
    this.name = nameField.append("input").attr("type", "text").attr("maxlength", 200).attr("placeholder", "e.g. positive sentiment").node()!;
    const saeField = row.append("label").attr("class", "steer-field");
    saeField.append("span").attr("class", "steer-field-label").text("SAE");
    this.sae = saeField.append("select").node()!;
    select(this.sae)
      .selectAll("option")
      .data(options.config.saes)
      .join("option")
      .attr("value", (s) => s.slug)
      .text((s) => `${s.slug} (${s.hook_name})`);
    this.sae.value = mainSae(options.config.saes, options.config.initial.features)?.slug ?? "";
    this.submit = row.append("button").attr("type", "submit").attr("class", "steer-caa-submit").text("Create vector").node()!;
    this.status = form.append("p").attr("class", "steer-caa-status").attr("role", "status").node()!;
    if (options.config.signed_in === false) this.signIn("Creating a steering vector needs an account:");
    this.result = details.append("div").attr("class", "steer-caa-result").node()!;
    this.saved = details.append("div").attr("class", "steer-caa-saved").node()!;
    form.on("submit", (event: Event) => {
      event.preventDefault();
      void this.create(doc);
    });
    void this.list();
  }

  private async list(): Promise<void> {
    const q = new URLSearchParams({ model: this.o.config.model });
    const got = await getJson<SteeringVectorOut[]>(`${this.endpoint}?${q}`, { fetcher: this.o.fetcher }).catch(() => null);
    const ready = Array.isArray(got) ? got.filter((v) => v.status === "ready") : [];
    const r = select(this.saved);
    r.selectAll("*").remove();
    if (ready.length === 0) return;
    r.append("p").attr("class", "steer-field-label").text("Steering vectors of this model");
    const li = r.append("ul").attr("class", "steer-caa-list").selectAll("li").data(ready).join("li");
    li.append("button")
      .attr("type", "button")
      .attr("class", "steer-candidate")
      .on("click", (_e, v) => this.o.panel.addVector({ id: v.id, sae: v.sae, label: v.label }))
      .call((b) => b.append("span").attr("class", "steer-candidate-name").text((v) => `vector ${v.id}`))
      .call((b) => b.append("span").attr("class", "steer-candidate-label").text((v) => v.label))
      .call((b) => b.append("span").attr("class", "steer-candidate-match muted").text((v) => `${v.sae}${v.n_pairs ? ` · ${v.n_pairs} pairs` : ""}`));
  }

  private say(text: string, error = false): void {
    select(this.status).classed("steer-error-text", error).text(text);
  }

  /** Says `text` and links the sign-in page, which comes back to this page (as it is then). */
  private signIn(text: string, error = false): void {
    this.say(`${text} `, error);
    const here = () => `/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
    select(this.status)
      .append("a")
      .attr("class", "steer-caa-sign-in")
      .attr("href", here())
      .text("sign in")
      .on("click", function () {
        this.href = here(); // the page's URL follows the panel
      });
    select(this.status).append("span").text(".");
  }

  private async create(doc: Document): Promise<void> {
    let pairs;
    try {
      pairs = parseContrastPairs(this.text.value);
    } catch (error) {
      return this.say((error as Error).message, true);
    }
    const name = this.name.value.trim();
    if (!name) return this.say("Give the vector a name.", true);
    this.submit.disabled = true;
    this.say(`Sending ${pairs.length} pair${pairs.length === 1 ? "" : "s"}…`);
    let vector: SteeringVectorOut;
    try {
      vector = await postJson<SteeringVectorOut>(
        this.endpoint,
        { model: this.o.config.model, sae: this.sae.value, label: name, pairs: this.text.value },
        { doc, fetcher: this.o.fetcher },
      );
    } catch (error) {
      const e = error as HttpError;
      if (e.status === 401 || e.status === 403) return this.signIn(`${e.message} To create steering vectors,`, true);
      return this.say(e.json ? e.message : `Could not create the vector: ${e.message}`, true);
    } finally {
      this.submit.disabled = false;
    }
    await this.follow(vector);
  }

  private async follow(vector: SteeringVectorOut): Promise<void> {
    let v = vector;
    for (let tries = 0; v.status === "pending" && tries < 120; tries++) {
      this.say("Building the vector on the worker…");
      await new Promise((r) => setTimeout(r, this.o.pollMs ?? 1000));
      try {
        v = await getJson<SteeringVectorOut>(`${this.endpoint}/${v.id}`, { fetcher: this.o.fetcher });
      } catch (error) {
        return this.say((error as HttpError).message, true);
      }
    }
    if (v.status === "failed") return this.say(`Building the vector failed: ${v.error ?? "unknown error"}`, true);
    if (v.status === "pending") return this.say("The vector is still being built; reload later.", true);
    this.say("");
    this.show(v);
    void this.list();
  }

  private show(v: SteeringVectorOut): void {
    const name = v.label || `vector ${v.id}`;
    const sae = v.sae || this.sae.value;
    const aligned = v.features ?? [];
    const r = select(this.result);
    r.selectAll("*").remove();
    const head = r.append("div").attr("class", "steer-caa-vector");
    head.append("strong").text(name);
    head
      .append("button")
      .attr("type", "button")
      .text("Steer with this vector")
      .on("click", () => this.o.panel.addVector({ id: v.id, sae, label: name }));
    r.append("p").attr("class", "muted").text(aligned.length ? "SAE features it aligns with (cosine):" : "No aligned SAE features reported.");
    const items = r.append("ol").attr("class", "steer-caa-aligned").selectAll("li").data(aligned).join("li");
    items
      .append("button")
      .attr("type", "button")
      .attr("class", "steer-candidate")
      .on("click", (_e, f) => void this.o.panel.addCandidate({ sae, index: f.index, label: f.label ?? null, max_activation: null, match: "caa" }))
      .call((b) => b.append("span").attr("class", "steer-candidate-name").text((f) => `${sae}#${f.index}`))
      .call((b) => b.append("span").attr("class", "steer-candidate-label").text((f) => f.label ?? ""))
      .call((b) => b.append("span").attr("class", "steer-candidate-match muted").text((f) => `cos ${f.cosine.toFixed(3)}`));
  }
}
