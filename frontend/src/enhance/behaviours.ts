import { select } from "d3";
import { getJson, postJson, requestJson } from "../http";
import { invalid } from "../options/invalid";
import type { TokenData } from "../tokens/tokenData";
import { sortableTable } from "../tables/sortableTable";
import { tokenStrip } from "../tokens/tokenStrip";
import { editExplanation } from "./editExplanation";
import { llmExplain } from "./llmExplain";

type Behaviour = (el: HTMLElement) => void;

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

function jsonScript(doc: Document, id: string | undefined): Record<string, unknown> {
  const script = id ? doc.getElementById(id) : null;
  if (!script) invalid("data-config", id);
  return JSON.parse(script.textContent ?? "{}") as Record<string, unknown>;
}

/** An index run's progress, as `/<model>/<sae>/progress.json` serves it. */
interface IndexProgress {
  status: string | null;
  tokens_done?: number;
  tokens_total?: number;
  error?: string;
}

/** Updates an index-progress box from {status, tokens_done, tokens_total}; returns true when finished. */
export function applyIndexProgress(el: HTMLElement, p: IndexProgress): boolean {
  const bar = el.querySelector("progress");
  if (bar && p.tokens_total) {
    bar.max = p.tokens_total;
    bar.value = p.tokens_done ?? 0;
  }
  const status = el.querySelector("[data-progress-status]");
  if (status) status.textContent = p.status ?? "";
  const text = el.querySelector("[data-progress-text]");
  if (text) {
    text.textContent =
      p.status === "failed"
        ? `failed: ${p.error ?? ""}`
        : `${(p.tokens_done ?? 0).toLocaleString("en")} of ${(p.tokens_total ?? 0).toLocaleString("en")} tokens`;
  }
  return p.status !== "queued" && p.status !== "running";
}

/** A step still being computed for an SAE, as `/<model>/<sae>/pending.json` lists it. */
export interface PendingStep {
  key: string;
  title: string;
  text: string;
}

/**
 * Updates the texts of a pending-steps box (`li[data-pending=key]`) from a fresh list; returns
 * true when a step shown has finished or a new one began, so the page should reload.
 */
export function applyPendingSteps(el: HTMLElement, steps: PendingStep[]): boolean {
  const items = Array.from(el.querySelectorAll<HTMLElement>("[data-pending]"));
  if (items.length !== steps.length || items.some((li, i) => li.dataset.pending !== steps[i]?.key)) return true;
  items.forEach((li, i) => {
    const text = li.querySelector("[data-pending-text]");
    if (text) text.textContent = steps[i]?.text ?? "";
  });
  return false;
}

/** One behaviour per `data-enhance` value; each wires one server-rendered element. */
export const behaviours: Record<string, Behaviour> = {
  /** Sort a table's rows by clicking its `th[data-sort]` headers. */
  "sortable-table"(el) {
    if (!(el instanceof HTMLTableElement)) invalid("sortable-table element", el.tagName);
    sortableTable(el);
  },

  /** ← → r follow the links whose data-key names the key. */
  "feature-nav"(el) {
    const doc = el.ownerDocument;
    doc.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
      const link = el.querySelector<HTMLAnchorElement>(`a[data-key="${event.key === "R" ? "r" : event.key}"]`);
      if (!link) return;
      event.preventDefault();
      link.click();
    });
  },

  /** Runs the activation test on a worker and draws the result in place; keeps ?text= in the URL. */
  "activation-test"(el) {
    const form = el as HTMLFormElement;
    const doc = form.ownerDocument;
    const config = jsonScript(doc, form.dataset.config);
    const area = form.querySelector("textarea") as HTMLTextAreaElement;
    const status = form.querySelector<HTMLElement>("[data-test-status]");
    const result = form.parentElement?.querySelector<HTMLElement>("[data-test-result]") ?? null;
    const max = typeof config.max === "number" && config.max > 0 ? config.max : null;
    const run = async () => {
      const text = area.value;
      if (!text.trim()) return;
      const win = doc.defaultView;
      if (win) {
        const url = new URL(win.location.href);
        url.searchParams.set("text", text);
        win.history.replaceState(win.history.state, "", url);
      }
      form.setAttribute("aria-busy", "true");
      // Until the worker holds the model, the first test may wait for it to load: say so.
      const loading = "Running… the worker is loading the model first (only after a start; it can take a while).";
      if (status) status.textContent = config.modelReady ? "Running…" : loading;
      const slow = setTimeout(() => {
        if (status) status.textContent = config.modelReady ? "Still running… the worker is busy or loading the model." : loading;
      }, 3000);
      try {
        const body = await postJson<{ tokens: string[]; values: number[] }>(
          String(config.endpoint),
          { model: config.model, sae: config.sae, text, index: config.index },
          { doc },
        );
        if (result) {
          select<HTMLElement, TokenData>(result).datum({ tokens: body.tokens, values: body.values }).call(tokenStrip().max(max));
          result.dataset.testRendered = "true";
        }
        config.modelReady = true;
        const top = Math.max(0, ...body.values.filter((v) => Number.isFinite(v)));
        if (status) {
          status.textContent =
            top > 0
              ? `Max activation on your text: ${+top.toPrecision(3)}${max ? ` (feature max ${+max.toPrecision(3)})` : ""}`
              : "This feature does not fire on your text.";
        }
      } catch (error) {
        if (status) status.textContent = error instanceof Error ? error.message : String(error);
        form.dataset.testError = "true";
      } finally {
        clearTimeout(slow);
        form.removeAttribute("aria-busy");
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void run();
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) {
        event.preventDefault();
        void run();
      }
    });
    if (area.value.trim() && !form.querySelector(".form-error")) void run();
  },

  /** POST /api/v1/lists/{id}/items for the list picked; "New list…" (value "") creates the
   * list first from the name typed. Says whether the feature was added or already there. */
  "add-to-list"(el) {
    const form = el as HTMLFormElement;
    const doc = form.ownerDocument;
    const status = form.querySelector<HTMLElement>("[data-list-status]");
    const pick = form.querySelector<HTMLSelectElement>("select[name=list]");
    const newName = form.querySelector<HTMLInputElement>("[data-new-list]");
    const say = (text: string) => {
      if (status) status.textContent = text;
    };
    const showNewName = () => {
      if (newName) newName.hidden = !!pick && pick.value !== "";
    };
    pick?.addEventListener("change", showNewName);
    showNewName();
    const listFor = async (): Promise<{ id: string; name: string }> => {
      if (pick && pick.value !== "") return { id: pick.value, name: pick.selectedOptions[0]?.textContent ?? "" };
      const name = newName?.value.trim() || "My features";
      const created = await postJson<{ id: string; name: string }>("/api/v1/lists", { name }, { doc });
      if (pick) {
        const option = doc.createElement("option");
        option.value = created.id;
        option.textContent = created.name;
        pick.insertBefore(option, pick.lastElementChild);
        pick.value = created.id;
        showNewName();
      }
      return created;
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const note = String(new FormData(form).get("note") ?? "");
      say("Adding…");
      listFor()
        .then((list) =>
          postJson<{ already_listed?: boolean }>(`/api/v1/lists/${encodeURIComponent(list.id)}/items`, {
            model: form.dataset.model,
            sae: form.dataset.sae,
            index: Number(form.dataset.index),
            note,
          }, { doc }).then((item) => {
            const where = list.name ? `“${list.name}”` : "the list";
            say(item?.already_listed ? `Already on ${where}${note ? " (note updated)" : ""}.` : `Added to ${where}.`);
            form.dataset.listResult = item?.already_listed ? "already" : "added";
          }),
        )
        .catch((error: unknown) => say(error instanceof Error ? error.message : String(error)));
    });
  },

  /** Adds the signed-in reader's explanation (POST, method "human"), then reloads to show it. */
  "add-explanation"(el) {
    const form = el as HTMLFormElement;
    const status = form.querySelector<HTMLElement>("[data-form-status]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = String(new FormData(form).get("text") ?? "");
      postJson(form.dataset.url ?? "", { text }, { doc: form.ownerDocument })
        .then(() => form.ownerDocument.defaultView?.location.reload())
        .catch((error: unknown) => {
          if (status) status.textContent = error instanceof Error ? error.message : String(error);
        });
    });
  },

  /** ▲ / ▼ on an explanation: POST the vote, mark the button pressed and update the total.
   * A vote is cast once: pressing the pressed button retracts it (DELETE), the other one
   * retracts then votes. A refusal is shown beside the buttons. */
  vote(el) {
    const buttons = Array.from(el.querySelectorAll<HTMLButtonElement>("[data-vote]"));
    const count = el.querySelector<HTMLElement>("[data-vote-count]");
    const status = el.querySelector<HTMLElement>("[data-vote-status]");
    for (const button of buttons) {
      button.addEventListener("click", () => {
        const url = el.dataset.url ?? "";
        const pressed = buttons.find((b) => b.getAttribute("aria-pressed") === "true");
        const doc = el.ownerDocument;
        const retract = pressed ? requestJson("DELETE", url, undefined, { doc }) : Promise.resolve(null);
        let total = Number(count?.textContent ?? 0);
        retract
          .then(() => {
            if (pressed) total -= Number(pressed.dataset.vote);
            return pressed === button ? null : postJson(url, { value: Number(button.dataset.vote) }, { doc });
          })
          .then(() => {
            if (pressed !== button) total += Number(button.dataset.vote);
            for (const b of buttons) b.setAttribute("aria-pressed", String(b === button && pressed !== button));
            if (status) status.textContent = "";
          })
          .catch((error: unknown) => {
            if (status) status.textContent = error instanceof Error ? error.message : String(error);
          })
          .finally(() => {
            if (count) count.textContent = String(total);
          });
      });
    }
  },

  "edit-explanation"(el) {
    editExplanation(el);
  },

  "llm-explain"(el) {
    llmExplain(el);
  },

  /** The embed snippet follows the part checkboxes; [data-copy] buttons copy it. */
  "embed-snippet"(el) {
    const code = el.querySelector<HTMLTextAreaElement>("[data-embed-code]");
    const boxes = Array.from(el.querySelectorAll<HTMLInputElement>("input[type=checkbox]"));
    const update = () => {
      if (!code) return;
      const url = new URL(el.dataset.url ?? "", el.ownerDocument.baseURI);
      url.searchParams.set("embed", "1");
      for (const b of boxes) url.searchParams.set(b.name, b.checked ? "1" : "0");
      code.value = `<iframe src="${url.href.replace(/&/g, "&amp;").replace(/"/g, "&quot;")}" width="100%" height="640" style="border:0" loading="lazy"></iframe>`;
    };
    for (const b of boxes) b.addEventListener("change", update);
    for (const button of Array.from(el.querySelectorAll<HTMLButtonElement>("[data-copy]"))) {
      button.addEventListener("click", () => {
        const target = el.ownerDocument.querySelector<HTMLTextAreaElement>(button.dataset.copy ?? "");
        if (!target) return;
        target.select();
        const done = () => (button.textContent = "Copied");
        const clip = el.ownerDocument.defaultView?.navigator.clipboard;
        if (clip) clip.writeText(target.value).then(done, () => el.ownerDocument.execCommand?.("copy") && done());
        else if (el.ownerDocument.execCommand?.("copy")) done();
      });
    }
    update();
  },

  /**
   * Polls `data-src` while an index run is active and reloads when it ends. A websocket
   * client can push progress instead: dispatch `new CustomEvent("index-progress", {detail})`
   * on this element (detail as /progress.json), and polling slows to a safety net.
   */
  /**
   * While an SAE's evaluation is queued or running: poll its metrics (`data-src`, the API's
   * `.../metrics`), show the tokens done in `[data-metrics-text]`, and reload once it has ended.
   */
  "metrics-progress"(el) {
    const win = el.ownerDocument.defaultView;
    const text = el.querySelector("[data-metrics-text]");
    const poll = () => {
      getJson<{ status: string | null; tokens_done: number; tokens_total: number }>(el.dataset.src ?? "")
        .then((m) => {
          if (m.status === "queued" || m.status === "running") {
            if (text && m.tokens_total) {
              text.textContent = ` (${m.tokens_done.toLocaleString("en")} of ${m.tokens_total.toLocaleString("en")} tokens)`;
            }
            win?.setTimeout(poll, 3000);
          } else {
            el.dataset.metricsDone = "true";
            win?.location.reload();
          }
        })
        .catch(() => win?.setTimeout(poll, 5000));
    };
    win?.setTimeout(poll, 3000);
  },

  /**
   * While work is left after indexing (map, label embeddings, evaluation): poll `data-src` (the
   * SAE's pending.json), keep the texts current, and reload once a step has finished.
   */
  "pending-steps"(el) {
    const win = el.ownerDocument.defaultView;
    const poll = () => {
      getJson<{ pending: PendingStep[] }>(el.dataset.src ?? "")
        .then((body) => {
          if (applyPendingSteps(el, body.pending)) {
            el.dataset.pendingChanged = "true";
            win?.location.reload();
          } else win?.setTimeout(poll, 5000);
        })
        .catch(() => win?.setTimeout(poll, 10000));
    };
    win?.setTimeout(poll, 5000);
  },

  "index-progress"(el) {
    const win = el.ownerDocument.defaultView;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      if (timer) clearTimeout(timer);
      el.dataset.progressDone = "true";
      win?.setTimeout(() => win.location.reload(), 1500);
    };
    el.addEventListener("index-progress", (event) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (applyIndexProgress(el, (event as CustomEvent).detail)) finish();
      else timer = setTimeout(poll, 5000); // pushed events lead; a slower poll stays as a safety net
    });
    const poll = () => {
      getJson<IndexProgress>(el.dataset.src ?? "")
        .then((p) => (applyIndexProgress(el, p) ? finish() : (timer = setTimeout(poll, 2000))))
        .catch(() => (timer = setTimeout(poll, 5000)));
    };
    timer = setTimeout(poll, 2000);
    // Progress pushed on /ws/index/<sae>/ arrives as those events.
    if (el.dataset.ws && win && "WebSocket" in win) {
      const proto = win.location.protocol === "https:" ? "wss:" : "ws:";
      const socket = new win.WebSocket(`${proto}//${win.location.host}${el.dataset.ws}`);
      socket.addEventListener("message", (message) => {
        const data = JSON.parse(String(message.data));
        if (data.type !== "progress" || el.dataset.progressDone) return;
        el.dispatchEvent(new CustomEvent("index-progress", { detail: data }));
      });
      socket.addEventListener("close", () => {
        if (!el.dataset.progressDone && timer === undefined) timer = setTimeout(poll, 2000);
      });
    }
  },
};
