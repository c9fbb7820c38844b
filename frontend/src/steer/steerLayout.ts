import { select, type Selection } from "d3";
import type { SteerConfig } from "./steerTypes";

/** The elements of the steering page the panel writes into. */
export interface SteerLayout {
  prompt: HTMLTextAreaElement;
  promptLabel: HTMLElement;
  promptError: HTMLElement;
  /** Chat mode's controls (present when the model has a chat template). */
  chat: {
    modes: HTMLInputElement[];
    send: HTMLButtonElement;
    restart: HTMLButtonElement;
    assistantOption: HTMLOptionElement;
  } | null;
  featuresCount: HTMLElement;
  search: HTMLElement;
  featureList: HTMLOListElement;
  /** The generation settings' <details> and the one-line digest its summary shows. */
  settingsBox: HTMLDetailsElement;
  settingsDigest: HTMLElement;
  settings: {
    positions: HTMLSelectElement;
    temperature: HTMLInputElement;
    top_p: HTMLInputElement;
    seed: HTMLInputElement;
    newSeed: HTMLButtonElement;
    max_new_tokens: HTMLInputElement;
  };
  settingErrors: Record<"positions" | "temperature" | "top_p" | "seed" | "max_new_tokens", HTMLElement>;
  connection: HTMLElement;
  state: HTMLElement;
  permalink: HTMLAnchorElement;
  /** "Open in the steering page" (shown by an embedded panel). */
  open: HTMLAnchorElement;
  generalError: HTMLElement;
  columns: Record<"default" | "steered", { text: HTMLElement; status: HTMLElement }>;
  caa: HTMLElement;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- d3 selections of mixed element types
type Div = Selection<any, unknown, null, undefined>;

/** Below this width the page is one column (steer.css) and the settings start closed. */
const NARROW = "(max-width: 52rem)";

function field(parent: Div, label: string, cls: string): Div {
  return parent.append("label").attr("class", `steer-field ${cls}`).call((l) => l.append("span").attr("class", "steer-field-label").text(label)) as Div;
}

/**
 * Builds the steering page's controls inside `root`, replacing the server-rendered form
 * (which works without JavaScript as a plain GET form). Returns the elements to write into.
 */
export function steerLayout(root: HTMLElement, config: SteerConfig): SteerLayout {
  const r = select(root);
  r.selectAll(":scope > .steer-controls, :scope > .steer-bar, :scope > .steer-columns").remove();
  const controls = r.insert("form", ":first-child").attr("class", "steer-controls").attr("novalidate", "").on("submit", (e: Event) => e.preventDefault()) as Div;

  const left = controls.append("div").attr("class", "steer-left") as Div;
  const promptBox = left.append("div").attr("class", "steer-prompt-box") as Div;
  const promptHead = promptBox.append("div").attr("class", "steer-prompt-head");
  const promptLabel = promptHead.append("label").attr("for", "steer-prompt").attr("class", "steer-heading").text("Prompt").node()!;
  const modes: HTMLInputElement[] = [];
  if (config.chat) {
    const group = promptHead.append("span").attr("class", "steer-modes").attr("role", "radiogroup").attr("aria-label", "What to steer");
    for (const [value, text] of [["text", "Text"], ["chat", "Chat"]] as const) {
      const l = group.append("label").attr("class", "steer-mode");
      modes.push(l.append("input").attr("type", "radio").attr("name", "steer-mode").attr("value", value).node()!);
      l.append("span").text(text);
    }
  }
  const prompt = promptBox
    .append("textarea")
    .attr("id", "steer-prompt")
    .attr("class", "steer-prompt")
    .attr("rows", 3)
    .attr("maxlength", config.limits.max_prompt_chars)
    .attr("placeholder", "Type a prompt; both continuations follow it as you type")
    .node()!;
  let chatButtons: { send: HTMLButtonElement; restart: HTMLButtonElement } | null = null;
  if (config.chat) {
    const actions = promptBox.append("div").attr("class", "steer-chat-actions");
    const send = actions.append("button").attr("type", "button").attr("class", "steer-send").text("Send").node()!;
    const restart = actions.append("button").attr("type", "button").attr("class", "steer-new-chat").text("New chat").node()!;
    chatButtons = { send, restart };
  }
  const promptError = promptBox.append("p").attr("class", "steer-error").attr("role", "alert").node()!;

  // Open on a wide screen; on a narrow one closed, so the sliders sit near the output.
  const narrow = typeof matchMedia === "function" && matchMedia(NARROW).matches;
  const settingsBox = left.append("details").attr("class", "steer-settings-box").property("open", !narrow) as Div;
  const settingsSummary = settingsBox.append("summary").attr("class", "steer-settings-head");
  settingsSummary.append("span").attr("class", "steer-heading").text("Generation");
  const settingsDigest = settingsSummary.append("span").attr("class", "steer-settings-digest muted").node()!;
  const settings = settingsBox.append("fieldset").attr("class", "steer-settings") as Div;
  settings.append("legend").attr("class", "visually-hidden").text("Generation settings");
  const positions = field(settings, "Steer positions", "steer-field--positions").append("select").attr("name", "pos");
  positions
    .selectAll("option")
    .data([
      ["all", "all tokens"],
      ["prompt", "prompt only"],
      ["generated", "generated only"],
    ])
    .join("option")
    .attr("value", (d) => d[0]!)
    .text((d) => d[1]!);
  const chat: SteerLayout["chat"] = chatButtons && {
    modes,
    ...chatButtons,
    assistantOption: positions.append("option").attr("value", "assistant").text("assistant tokens only").node()!,
  };
  const num = (label: string, name: string, attrs: Record<string, string | number>) => {
    const input = field(settings, label, `steer-field--${name}`).append("input").attr("type", "number").attr("name", name);
    for (const [k, v] of Object.entries(attrs)) input.attr(k, v);
    return input;
  };
  const temperature = num("Temperature", "t", { min: 0, max: 5, step: 0.1 });
  const topP = num("Top-p", "p", { min: 0.01, max: 1, step: 0.01 });
  const seedField = field(settings, "Seed", "steer-field--seed");
  const seed = seedField.append("span").attr("class", "steer-seed");
  const seedInput = seed.append("input").attr("type", "number").attr("name", "seed").attr("min", 0).attr("step", 1);
  const newSeed = seed.append("button").attr("type", "button").attr("class", "steer-new-seed").attr("title", "New random seed").attr("aria-label", "New random seed").text("⟳");
  const maxNew = num("Max new tokens", "n", { min: 1, max: config.limits.max_new_tokens, step: 1 });
  const errs = {} as SteerLayout["settingErrors"];
  for (const name of ["positions", "temperature", "top_p", "seed", "max_new_tokens"] as const) {
    errs[name] = settings.append("p").attr("class", "steer-error").attr("role", "alert").attr("data-error-for", name).node()!;
  }

  const right = controls.append("section").attr("class", "steer-features") as Div;
  const head = right.append("div").attr("class", "steer-features-head");
  head.append("h2").attr("class", "steer-heading").text("Steer with");
  const featuresCount = head.append("span").attr("class", "muted steer-features-count").node()!;
  const search = right.append("div").attr("class", "steer-search-slot").node()!;
  const featureList = right.append("ol").attr("class", "steer-feature-list").node()!;

  const bar = r.insert("div", ".steer-caa").attr("class", "steer-bar").attr("aria-live", "polite");
  const connection = bar.append("span").attr("class", "steer-connection").node()!;
  const state = bar.append("span").attr("class", "steer-state").node()!;
  const permalink = bar.append("a").attr("class", "steer-permalink").attr("hidden", "").node()!;
  const open = bar.append("a").attr("class", "steer-open").attr("hidden", "").text("Open in the steering page").node()!;
  const generalError = bar.append("p").attr("class", "steer-error steer-error--general").attr("role", "alert").node()!;

  const cols = r.insert("div", ".steer-caa").attr("class", "steer-columns");
  const column = (row: "default" | "steered", title: string, note: string) => {
    const c = cols.append("section").attr("class", `steer-column steer-column--${row}`).attr("data-row", row);
    const h = c.append("header").attr("class", "steer-column-head");
    h.append("h2").attr("class", "steer-heading").text(title);
    h.append("span").attr("class", "muted steer-column-note").text(note);
    const status = h.append("span").attr("class", "steer-row-status").node()!;
    const text = c.append("div").attr("class", "steer-text").attr("data-row-text", row).node()!;
    return { text, status };
  };
  const columns = {
    default: column("default", "Default", "no steering · hover a token for its alternatives"),
    steered: column("steered", "Steered", "where it differs is marked"),
  };
  let caa = root.querySelector<HTMLElement>(".steer-caa");
  if (!caa) caa = r.append("section").attr("class", "steer-caa").node()!;

  return {
    prompt,
    promptLabel,
    promptError,
    chat,
    featuresCount,
    search,
    featureList,
    settingsBox: settingsBox.node()!,
    settingsDigest,
    settings: {
      positions: positions.node()!,
      temperature: temperature.node()!,
      top_p: topP.node()!,
      seed: seedInput.node()!,
      newSeed: newSeed.node()!,
      max_new_tokens: maxNew.node()!,
    },
    settingErrors: errs,
    connection,
    state,
    permalink,
    open,
    generalError,
    columns,
    caa,
  };
}
