import { select } from "d3";
import { getJson, type HttpError } from "../http";
import { defaultKey } from "./defaultKey";
import { divergeOffset } from "./divergeOffset";
import { encodeSteerQuery } from "./encodeSteerQuery";
import { errorTarget } from "./errorTarget";
import { featureKey } from "./featureKey";
import { renderFeatureRows } from "./featureRows";
import { FeatureSearch, type FeatureCandidate } from "./featureSearch";
import { mainSae } from "./mainSae";
import { GenerationStream, type GenerationStreamOptions, type RowText } from "./generationStream";
import { alternativesTooltip } from "./alternativesTooltip";
import { clearChat, renderChat } from "./renderChat";
import { renderContinuation } from "./renderContinuation";
import { rowPieces } from "./rowPieces";
import { SteerSocket, type SocketStatus } from "./steerSocket";
import { steerLayout, type SteerLayout } from "./steerLayout";
import { steerMessage } from "./steerMessage";
import type { ChatHistory, ServerFrame, SteerConfig, SteerFeature, SteerSaeInfo, SteerState } from "./steerTypes";
import { throttle, type Throttled } from "./throttle";

export interface SteerPanelOptions {
  /** @default globalThis.WebSocket */
  WebSocket?: typeof WebSocket;
  /** @default globalThis.fetch */
  fetcher?: typeof fetch;
  /** Restarts while a control moves are throttled to one per this many ms. @default 100 */
  throttleMs?: number;
  /**
   * Whether the page URL follows the panel (the steering page). An embedded panel (e.g. on a
   * feature page) leaves the URL alone and links to the steering page instead. @default true
   */
  syncUrl?: boolean;
  /** How the server numbers frames. @default {firstSeq: 1} */
  stream?: GenerationStreamOptions;
}

type SettingName = keyof SteerLayout["settingErrors"];

const CONNECTION: Record<SocketStatus, string> = { connecting: "connecting…", open: "live", closed: "reconnecting…" };

/**
 * The live steering page: owns the request state, keeps the URL in step with it, restarts
 * generation (throttled, leading and trailing edge, a new `gen` each time) whenever a control
 * moves, and shows the two rows as their frames arrive. Frames of any older `gen` are ignored.
 */
export class SteerPanel {
  readonly state: SteerState;
  private readonly config: SteerConfig;
  private readonly ui: SteerLayout;
  private readonly o: SteerPanelOptions;
  private readonly apiRoot: string;
  private readonly socket: SteerSocket;
  private readonly search: FeatureSearch;
  private readonly restart: Throttled<[]>;
  private readonly page = Math.random().toString(36).slice(2, 8);
  private counter = 0;
  private stream: GenerationStream | null = null;
  private sent = false;
  private resuming = false;
  private stopped = false;
  private featureErrors: (string | null)[] = [];
  private stored: { default: RowText; steered: RowText } | null = null;
  /** defaultKey of the rows on screen (the stream's or the stored result's). */
  private shownKey: string | null = null;
  /** What each column shows (a signature): a column is redrawn only when it changes. */
  private readonly painted: Record<"default" | "steered", string> = { default: "", steered: "" };

  constructor(root: HTMLElement, config: SteerConfig, options: SteerPanelOptions = {}) {
    this.config = config;
    this.o = options;
    this.apiRoot = config.api_root ?? "/api/v1/";
    const chat = config.chat && config.initial.chat ? copyChat(config.initial.chat) : null;
    this.state = { ...config.initial, chat, features: config.initial.features.map((f) => ({ ...f })) };
    this.ui = steerLayout(root, config);
    alternativesTooltip(root);
    this.search = new FeatureSearch(this.ui.search, {
      model: config.model,
      saes: mainFirst(config.saes, this.state.features),
      apiRoot: this.apiRoot,
      onPick: (c) => void this.addFeature(c),
      ...(options.fetcher ? { fetcher: options.fetcher } : {}),
    });
    this.restart = throttle(() => this.start(), options.throttleMs ?? 100);
    this.bindControls();
    this.renderControls();
    if (options.syncUrl === false) {
      this.ui.open.hidden = false;
      this.ui.open.href = this.url;
    }

    if (config.result) {
      const r = config.result;
      const list = <T>(x: unknown): T[] | null => (Array.isArray(x) ? (x as T[]) : null);
      const row = (text: string, tokens: unknown, probs: unknown, alternatives: unknown): RowText => ({
        text,
        done: true,
        tokens: list(tokens),
        probs: list<number>(probs),
        alternatives: list<[string, number][]>(alternatives),
      });
      this.stored = {
        default: row(r.default_text, r.default_tokens, r.default_probs, r.default_alternatives),
        steered: row(r.steered_text, r.steered_tokens, r.steered_probs, r.steered_alternatives),
      };
      this.shownKey = defaultKey(this.state);
      this.showPermalink(config.result.id);
      this.ui.state.textContent = "saved result";
    }
    this.renderColumns();

    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${config.ws_path}?model=${encodeURIComponent(config.model)}`;
    this.socket = new SteerSocket(url, {
      onFrame: (f) => this.onFrame(f),
      onOpen: (reconnected) => this.onOpen(reconnected),
      onStatus: (s) => this.onStatus(s),
      ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}),
    });
    if (!config.result) {
      this.writeUrl(); // the server dropped any bad parts of the query: show what is steered
      this.start();
    }
  }

  /** The current generation's id (what `steer` frames carry), or null before the first. */
  get gen(): string | null {
    return this.stream ? String(this.stream.gen) : null;
  }

  /** Replaces part of the state, updates the URL and the controls, and restarts generation. */
  change(mutate: (state: SteerState) => void): void {
    mutate(this.state);
    this.featureErrors = [];
    this.clearErrors();
    this.renderControls();
    this.writeUrl();
    this.restart();
  }

  close(): void {
    this.restart.cancel();
    this.socket.close();
  }

  private bindControls(): void {
    const { prompt, settings: s } = this.ui;
    // In a chat the box holds the next message (a draft), not the message being answered.
    prompt.value = this.state.chat ? "" : this.state.prompt;
    prompt.addEventListener("input", () => {
      if (!this.state.chat) this.change((st) => void (st.prompt = prompt.value));
    });
    prompt.addEventListener("keydown", (e: KeyboardEvent) => {
      if (this.state.chat && e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendChat();
      }
    });
    const chat = this.ui.chat;
    if (chat) {
      for (const m of chat.modes) m.addEventListener("change", () => m.checked && this.setMode(m.value === "chat"));
      chat.send.addEventListener("click", () => this.sendChat());
      chat.restart.addEventListener("click", () => this.change((st) => void ((st.chat = { default: [], steered: [] }), (st.prompt = ""))));
    }
    s.positions.value = this.state.positions;
    s.positions.addEventListener("change", () => this.change((st) => void (st.positions = s.positions.value as SteerState["positions"])));
    s.temperature.value = String(this.state.temperature);
    s.top_p.value = String(this.state.top_p);
    s.seed.value = String(this.state.seed);
    s.max_new_tokens.value = String(this.state.max_new_tokens);
    const n = this.config.limits.max_new_tokens;
    this.bindNumber(s.temperature, "temperature", (v) => v >= 0 && v <= 5, "must be between 0 and 5");
    this.bindNumber(s.top_p, "top_p", (v) => v > 0 && v <= 1, "must be above 0 and at most 1");
    this.bindNumber(s.seed, "seed", (v) => Number.isInteger(v) && v >= 0 && v <= 2 ** 31 - 1, "must be a whole number ≥ 0");
    this.bindNumber(s.max_new_tokens, "max_new_tokens", (v) => Number.isInteger(v) && v >= 1 && v <= n, `must be a whole number from 1 to ${n}`);
    s.newSeed.addEventListener("click", () => {
      const seed = Math.floor(Math.random() * 100000);
      s.seed.value = String(seed);
      this.change((st) => void (st.seed = seed));
    });
  }

  private bindNumber(input: HTMLInputElement, name: Exclude<SettingName, "positions">, ok: (v: number) => boolean, rule: string): void {
    input.addEventListener("input", () => {
      const v = Number(input.value);
      if (input.value.trim() === "" || !Number.isFinite(v) || !ok(v)) {
        this.ui.settingErrors[name].textContent = `${input.closest("label")?.querySelector(".steer-field-label")?.textContent ?? name} ${rule}.`;
        this.ui.settingsBox.open = true;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      input.removeAttribute("aria-invalid");
      this.change((st) => void (st[name] = v));
    });
  }

  private async addFeature(c: FeatureCandidate): Promise<void> {
    const key = featureKey(c);
    if (this.state.features.some((f) => featureKey(f) === key)) return this.search.message(`Already steering ${key}.`, true);
    if (this.state.features.length >= this.config.limits.max_features) {
      return this.search.message(`At most ${this.config.limits.max_features} features at once; remove one first.`, true);
    }
    const sae = this.config.saes.find((s) => s.slug === c.sae);
    if (this.config.saes.length && !sae) return this.search.message(`No SAE “${c.sae}” on ${this.config.model}.`, true);
    if (sae && c.index >= sae.d_sae) return this.search.message(`${c.sae} has ${sae.d_sae} features (0–${sae.d_sae - 1}).`, true);
    let { max_activation: max, label } = c;
    if (max === null) {
      this.search.message(`Looking up ${key}…`);
      const url = `${this.apiRoot}models/${encodeURIComponent(this.config.model)}/saes/${encodeURIComponent(c.sae)}/features/${c.index}`;
      try {
        const got = await getJson<{ max_activation?: number | null; explanations?: { text?: string }[] }>(url, { fetcher: this.o.fetcher });
        max = got?.max_activation ?? null;
        label = label ?? got?.explanations?.[0]?.text ?? null;
      } catch (error) {
        const e = error as HttpError;
        if (e.json && e.status === 404) return this.search.message(e.message || `No feature ${key}.`, true);
        // Any other failure (the feature endpoint missing, the network) leaves the max unknown:
        // the feature is still added and steered in raw units.
      }
      this.search.message("");
    }
    const unit = max && max > 0 ? max : null;
    const strength = Math.min(this.config.limits.strength_max, unit ? +(4 * unit).toPrecision(3) : 10);
    const feature: SteerFeature = { sae: c.sae, index: c.index, strength, mode: "add", max_activation: unit, label: label ?? null };
    this.change((st) => void st.features.push(feature));
  }

  /** Switches between continuing a text and a chat (which starts empty). */
  private setMode(chat: boolean): void {
    const draft = this.ui.prompt.value;
    this.change((st) => {
      st.chat = chat ? { default: [], steered: [] } : null;
      st.prompt = chat ? "" : draft;
      if (!chat && st.positions === "assistant") st.positions = "all";
      if (chat) st.positions = "assistant";
    });
  }

  /**
   * Sends the message in the box: the turn answered so far (each column with its own reply)
   * joins each column's history, and the new message is answered by both columns.
   */
  private sendChat(): void {
    const chat = this.state.chat;
    if (!chat) return;
    const draft = this.ui.prompt.value.trim();
    if (!draft) {
      this.ui.promptError.textContent = "Write a message first.";
      return;
    }
    if (this.state.prompt.trim()) {
      const rows = this.stream?.rows ?? this.stored;
      if (!rows || (!this.stopped && !(rows.default.done && rows.steered.done))) {
        this.ui.promptError.textContent = "Wait until both replies are finished.";
        return;
      }
      const ask = this.state.prompt;
      chat.default.push({ role: "user", content: ask }, { role: "assistant", content: rows.default.text });
      chat.steered.push({ role: "user", content: ask }, { role: "assistant", content: rows.steered.text });
    }
    this.ui.prompt.value = "";
    this.change((st) => void (st.prompt = draft));
  }

  /** Adds a steering vector (CAA) as one more steered term. */
  addVector(vector: { id: number; sae: string; label: string; strength?: number }): void {
    if (this.state.features.some((f) => f.vector === vector.id)) return;
    if (this.state.features.length >= this.config.limits.max_features) {
      return this.search.message(`At most ${this.config.limits.max_features} features at once; remove one first.`, true);
    }
    const feature: SteerFeature = { sae: vector.sae, index: -1, vector: vector.id, strength: vector.strength ?? 4, mode: "add", max_activation: null, label: vector.label };
    this.change((st) => void st.features.push(feature));
  }

  /** Adds an SAE feature by reference (e.g. one a steering vector aligns with). */
  addCandidate(candidate: FeatureCandidate): Promise<void> {
    return this.addFeature(candidate);
  }

  private renderMode(): void {
    const chat = this.state.chat != null;
    this.ui.promptLabel.textContent = chat ? "Message" : "Prompt";
    this.ui.prompt.placeholder = chat
      ? "Write a message; Enter sends it (Shift+Enter: a new line)"
      : "Type a prompt; both continuations follow it as you type";
    const c = this.ui.chat;
    if (c) {
      c.send.hidden = !chat;
      c.restart.hidden = !chat;
      c.assistantOption.hidden = !chat;
      c.assistantOption.disabled = !chat;
      for (const m of c.modes) m.checked = m.value === (chat ? "chat" : "text");
    }
    this.ui.settings.positions.value = this.state.positions;
  }

  private renderControls(): void {
    this.renderMode();
    const st = this.state;
    this.ui.settingsDigest.textContent = `temperature ${st.temperature} · top-p ${st.top_p} · seed ${st.seed} · ${st.max_new_tokens} tokens`;
    const { limits } = this.config;
    this.ui.featuresCount.textContent = `${this.state.features.length} of ${limits.max_features}`;
    renderFeatureRows(this.ui.featureList, this.state.features, {
      model: this.config.model,
      limits,
      errors: this.featureErrors,
      onStrength: (i, v) => this.change((st) => void (st.features[i]!.strength = v)),
      onMode: (i, m) => this.change((st) => void (st.features[i]!.mode = m)),
      onRemove: (i) => this.change((st) => void st.features.splice(i, 1)),
    });
    select(this.ui.featureList).classed("steer-feature-list--empty", this.state.features.length === 0);
  }

  /** The steering page URL of the current state. */
  get url(): string {
    return `/${encodeURIComponent(this.config.model)}/steer/?${encodeSteerQuery(this.state)}`;
  }

  private writeUrl(): void {
    if (this.o.syncUrl === false) this.ui.open.href = this.url;
    else history.replaceState(history.state, "", this.url);
  }

  private start(): void {
    // Only the steering changed: keep the finished default row (and its DOM) as it is.
    const key = defaultKey(this.state);
    const shown = this.stream?.rows.default ?? this.stored?.default ?? null;
    const keepDefault = shown?.done && key === this.shownKey ? shown : null;
    this.stored = null;
    this.ui.permalink.hidden = true;
    if (this.stream && !this.stream.complete && this.sent) this.socket.send({ type: "cancel", gen: this.stream.gen });
    if (!this.state.prompt.trim()) {
      this.stream = null;
      this.ui.state.textContent = this.state.chat ? "write a message to start the chat" : "type a prompt to generate";
      this.renderColumns();
      return;
    }
    this.counter += 1;
    this.stream = new GenerationStream(`${this.page}-${this.counter}`, { ...this.o.stream, keepDefault });
    this.shownKey = key;
    this.resuming = false;
    this.stopped = false;
    this.ui.state.textContent = "generating…";
    this.sent = this.socket.send(steerMessage(this.stream.gen, this.config.model, this.state));
    this.renderColumns();
  }

  private onOpen(reconnected: boolean): void {
    const s = this.stream;
    if (!s || s.complete) return;
    if (this.sent && reconnected) {
      // The server keeps a short replay buffer per gen: pick up where this socket left off.
      this.resuming = true;
      this.socket.send({ type: "resume", gen: s.gen, after_seq: Math.max(0, s.lastSeq()) });
    } else {
      this.sent = this.socket.send(steerMessage(s.gen, this.config.model, this.state));
    }
  }

  private onStatus(status: SocketStatus): void {
    this.ui.connection.textContent = CONNECTION[status];
    this.ui.connection.dataset.status = status;
  }

  private onFrame(frame: ServerFrame): void {
    const s = this.stream;
    const current = s !== null && frame.gen !== undefined && frame.gen !== null && String(frame.gen) === String(s.gen);
    if (frame.type === "error") {
      if (frame.gen !== undefined && frame.gen !== null && !current) return;
      if (current && this.resuming) {
        // The replay buffer is gone (expired, or another server): ask for the whole thing again.
        this.resuming = false;
        this.start();
        return;
      }
      this.showError(frame.message, (frame as { field?: string }).field);
      if (current) {
        this.stopped = true;
        this.ui.state.textContent = "stopped";
      }
      this.renderColumns();
      return;
    }
    if (!current || !s) return;
    this.resuming = false;
    if (frame.type === "delta") {
      const update = s.delta(frame);
      if (update.resumeAfter !== null) this.socket.send({ type: "resume", gen: s.gen, after_seq: update.resumeAfter });
      if (update.changed) this.renderColumns();
    } else if (frame.type === "done") {
      s.done(frame);
      if (s.complete) {
        this.ui.state.textContent = "done";
        if (s.result !== null) this.showPermalink(s.result);
      }
      this.renderColumns();
    }
  }

  private showPermalink(id: string | number): void {
    const a = this.ui.permalink;
    a.href = `/steer/${encodeURIComponent(String(id))}/`;
    a.textContent = "Permalink";
    a.title = "A link to exactly this result";
    a.hidden = false;
  }

  private clearErrors(): void {
    this.ui.promptError.textContent = "";
    this.ui.generalError.textContent = "";
    for (const el of Object.values(this.ui.settingErrors)) el.textContent = "";
  }

  private showError(message: string, field?: string): void {
    const target = errorTarget(message, field, this.state.features);
    if (target.kind === "prompt") this.ui.promptError.textContent = message;
    else if (target.kind === "setting") {
      this.ui.settingErrors[target.name].textContent = message;
      this.ui.settingsBox.open = true;
    }
    else if (target.kind === "feature") {
      this.featureErrors = this.state.features.map((_, i) => (i === target.position ? message : (this.featureErrors[i] ?? null)));
      this.renderControls();
    } else this.ui.generalError.textContent = message;
  }

  private renderColumns(): void {
    const stopped = this.stopped;
    const rows = this.stream?.rows ?? this.stored ?? null;
    const empty: RowText = { text: "", done: true, tokens: null };
    const d = rows?.default ?? empty;
    const st = rows?.steered ?? empty;
    const off = divergeOffset(d, st);
    const prompt = this.stored && this.config.result ? this.config.initial.prompt : this.state.prompt;
    for (const [row, data] of [["default", d], ["steered", st]] as const) {
      const col = this.ui.columns[row];
      const streaming = !stopped && !data.done;
      // Only the steered column marks where it parts: the default column is the reference and
      // depends on nothing the sliders change, so a drag never touches it.
      const reply = { text: data.text, diverge: row === "default" ? null : off, streaming, tokens: streaming ? null : rowPieces(data) };
      const status = streaming ? "streaming…" : rows ? (stopped && !data.done ? "stopped" : "") : "";
      const done = String(data.done && rows !== null);
      const history = this.state.chat?.[row] ?? null;
      const signature = JSON.stringify([history, prompt, reply, status, done]);
      if (signature === this.painted[row]) continue;
      this.painted[row] = signature;
      if (history) renderChat(col.text, history, this.state.prompt, reply);
      else {
        clearChat(col.text);
        renderContinuation(col.text, { prompt, ...reply });
      }
      col.status.textContent = status;
      col.text.dataset.done = done;
    }
  }
}

/** The model's SAEs, the main one (mainSae) first: a bare `#index` means that SAE first. */
function mainFirst(saes: readonly SteerSaeInfo[], features: readonly SteerFeature[]): SteerSaeInfo[] {
  const main = mainSae(saes, features);
  return main ? [main, ...saes.filter((s) => s !== main)] : [...saes];
}

function copyChat(chat: ChatHistory): ChatHistory {
  return { default: chat.default.map((m) => ({ ...m })), steered: chat.steered.map((m) => ({ ...m })) };
}
