import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SteerPanel } from "../../src/steer/steerPanel";
import type { SteerConfig } from "../../src/steer/steerTypes";
import { FakeSocket } from "./fakeSocket";

function config(over: Partial<SteerConfig> = {}): SteerConfig {
  return {
    model: "demo",
    ws_path: "/ws/steer/",
    saes: [{ slug: "demo", d_sae: 1024, hook_name: "blocks.1.hook_resid_post" }],
    limits: { strength_min: -1000, strength_max: 1000, max_features: 8, max_new_tokens: 128, max_prompt_chars: 2000 },
    initial: {
      prompt: "The city",
      features: [{ sae: "demo", index: 3, strength: 20, mode: "add", max_activation: 5, label: "cats" }],
      positions: "all",
      temperature: 0.7,
      top_p: 0.95,
      seed: 0,
      max_new_tokens: 16,
    },
    result: null,
    ...over,
  };
}

let panel: SteerPanel | null = null;

function mount(cfg = config()) {
  const root = document.createElement("div");
  document.body.append(root);
  panel = new SteerPanel(root, cfg, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: vi.fn() as unknown as typeof fetch });
  const ws = FakeSocket.last;
  ws.open();
  return { root, ws, panel };
}

const text = (root: HTMLElement, row: string) => root.querySelector<HTMLElement>(`[data-row-text=${row}]`)!;
const continuation = (root: HTMLElement, row: string) => {
  const el = text(root, row);
  return (el.querySelector(".steer-same")?.textContent ?? "") + (el.querySelector(".steer-diverged")?.textContent ?? "");
};

function slide(root: HTMLElement, position: number) {
  const slider = root.querySelector<HTMLInputElement>(".steer-slider")!;
  slider.value = String(position);
  slider.dispatchEvent(new Event("input"));
}

describe("SteerPanel", () => {
  beforeEach(() => {
    FakeSocket.instances = [];
    document.body.replaceChildren();
    history.replaceState(null, "", "/demo/steer/");
  });
  afterEach(() => {
    panel?.close();
    panel = null;
    vi.useRealTimers();
  });

  it("sends the initial request as a DESIGN §6 steer message once the socket opens", () => {
    const { ws } = mount();
    expect(ws.url).toMatch(/^ws:\/\/[^/]+\/ws\/steer\/\?model=demo$/);
    expect(ws.sent).toEqual([
      {
        type: "steer",
        gen: panel!.gen,
        model: "demo",
        prompt: "The city",
        features: [{ sae: "demo", index: 3, strength: 20, mode: "add" }],
        positions: "all",
        temperature: 0.7,
        top_p: 0.95,
        seed: 0,
        max_new_tokens: 16,
      },
    ]);
  });

  it("streams both rows token by token and marks where the steered row parts", () => {
    const { root, ws } = mount();
    const gen = panel!.gen;
    ws.emit({ type: "delta", gen, row: "default", seq: 1, text: " council" });
    ws.emit({ type: "delta", gen, row: "steered", seq: 2, text: " cat" });
    expect(continuation(root, "default")).toBe(" council");
    expect(text(root, "steered").querySelector("mark")!.textContent).toBe("at");
    ws.emit({ type: "done", gen, row: "default", seq: 3, text: " council met", tokens: [" council", " met"], result: "r1" });
    ws.emit({ type: "done", gen, row: "steered", seq: 4, text: " cats purr", tokens: [" cats", " purr"], result: "r1" });
    expect(text(root, "steered").querySelector("mark")!.textContent).toBe(" cats purr");
    expect(text(root, "default").querySelector(".steer-echo")!.textContent).toBe("The city");
    const link = root.querySelector<HTMLAnchorElement>(".steer-permalink")!;
    expect(link.hidden).toBe(false);
    expect(link.getAttribute("href")).toBe("/steer/r1/");
  });

  it("renders model text as text: a <script> token creates no element", () => {
    const { root, ws } = mount();
    ws.emit({ type: "delta", gen: panel!.gen, row: "steered", seq: 1, text: "<script>window.x=1</script><img src=x>" });
    expect(root.querySelector("script, img")).toBeNull();
    expect(continuation(root, "steered")).toBe("<script>window.x=1</script><img src=x>");
  });

  it("moving a slider restarts at once with a new gen and ignores the old gen's frames", () => {
    const { root, ws } = mount();
    const first = panel!.gen;
    slide(root, 900);
    const second = panel!.gen;
    expect(second).not.toBe(first);
    const steers = ws.ofType("steer");
    expect(steers).toHaveLength(2);
    expect(steers[1]!.gen).toBe(second);
    expect((steers[1]!.features as { strength: number }[])[0]!.strength).toBeGreaterThan(20);
    ws.emit({ type: "delta", gen: first, row: "steered", seq: 1, text: "stale" });
    ws.emit({ type: "error", gen: first, message: "superseded" });
    expect(continuation(root, "steered")).toBe("");
    expect(root.querySelector(".steer-error--general")!.textContent).toBe("");
  });

  function finish(ws: FakeSocket, gen: string, rows: { default?: string; steered?: string }, result = "r1") {
    let seq = 0;
    for (const [row, t] of Object.entries(rows)) ws.emit({ type: "done", gen, row, seq: ++seq, text: t, tokens: [t], result });
  }

  it("moving a slider regenerates the steered column only: the finished default column is not touched", () => {
    const { root, ws } = mount();
    finish(ws, panel!.gen!, { default: " council met", steered: " cats purr" });
    const watch = new MutationObserver(() => {});
    watch.observe(text(root, "default"), { childList: true, characterData: true, subtree: true });
    for (const p of [700, 750, 800]) slide(root, p);
    const gen = panel!.gen!;
    ws.emit({ type: "delta", gen, row: "default", seq: 1, text: " council" });
    ws.emit({ type: "delta", gen, row: "steered", seq: 2, text: " dogs" });
    expect(watch.takeRecords()).toEqual([]);
    expect(continuation(root, "default")).toBe(" council met");
    expect(text(root, "default").dataset.done).toBe("true");
    expect(continuation(root, "steered")).toBe(" dogs");
    ws.emit({ type: "done", gen, row: "default", seq: 3, text: " council met", tokens: [" council met"], result: "r2" });
    ws.emit({ type: "done", gen, row: "steered", seq: 4, text: " dogs bark", tokens: [" dogs bark"], result: "r2" });
    expect(ws.ofType("resume")).toEqual([]); // the ignored default frames still count in the sequence
    expect(root.querySelector(".steer-state")!.textContent).toBe("done");
    expect(root.querySelector<HTMLAnchorElement>(".steer-permalink")!.getAttribute("href")).toBe("/steer/r2/");
    expect(continuation(root, "steered")).toBe(" dogs bark");
    watch.disconnect();
  });

  it("only the steered column marks where the rows part; the default column is the reference", () => {
    const { root, ws } = mount();
    finish(ws, panel!.gen!, { default: " council met", steered: " cats purr" });
    expect(text(root, "default").querySelector("mark")!.textContent).toBe("");
    expect(text(root, "steered").querySelector("mark")!.textContent).toBe(" cats purr");
  });

  it("generation settings start closed on a narrow screen, with a digest, and open to show an error", () => {
    vi.stubGlobal("matchMedia", (q: string) => ({ matches: q.includes("max-width"), media: q }));
    try {
      const { root } = mount();
      const box = root.querySelector<HTMLDetailsElement>(".steer-settings-box")!;
      expect(box.open).toBe(false);
      expect(root.querySelector(".steer-settings-digest")!.textContent).toBe("temperature 0.7 · top-p 0.95 · seed 0 · 16 tokens");
      const n = root.querySelector<HTMLInputElement>("input[name=n]")!;
      n.value = "0";
      n.dispatchEvent(new Event("input"));
      expect(box.open).toBe(true);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("generation settings are open on a wide screen", () => {
    const { root } = mount();
    expect(root.querySelector<HTMLDetailsElement>(".steer-settings-box")!.open).toBe(true);
  });

  it("a new seed, prompt or length regenerates the default column too", () => {
    const { root, ws } = mount();
    finish(ws, panel!.gen!, { default: " council met", steered: " cats purr" });
    const seed = root.querySelector<HTMLInputElement>("input[name=seed]")!;
    seed.value = "9";
    seed.dispatchEvent(new Event("input"));
    expect(continuation(root, "default")).toBe("");
    ws.emit({ type: "delta", gen: panel!.gen, row: "default", seq: 1, text: " mayor" });
    expect(continuation(root, "default")).toBe(" mayor");
  });

  it("keeps a permalink's default column when only the steering changes", () => {
    const cfg = config({ result: { id: "abc", default_text: " met today", steered_text: " cats purr", default_tokens: [" met", " today"], steered_tokens: [" cats", " purr"] } });
    const { root, ws } = mount(cfg);
    const before = text(root, "default").innerHTML;
    slide(root, 900);
    expect(ws.ofType("steer")).toHaveLength(1);
    ws.emit({ type: "delta", gen: panel!.gen, row: "default", seq: 1, text: " met" });
    expect(text(root, "default").innerHTML).toBe(before);
    expect(continuation(root, "steered")).toBe("");
  });

  it("throttles a drag: a leading and a trailing request, not one per input event", () => {
    vi.useFakeTimers();
    const { root, ws } = mount();
    for (let p = 600; p < 700; p += 2) {
      slide(root, p);
      vi.advanceTimersByTime(5);
    }
    vi.advanceTimersByTime(300);
    const steers = ws.ofType("steer");
    expect(steers.length).toBeGreaterThanOrEqual(3);
    expect(steers.length).toBeLessThanOrEqual(6);
    const last = (steers.at(-1)!.features as { strength: number }[])[0]!.strength;
    expect(last).toBe(panel!.state.features[0]!.strength);
    expect(ws.ofType("cancel").length).toBeGreaterThan(0);
  });

  it("keeps the URL in step with the controls", () => {
    const { root } = mount();
    slide(root, 1000);
    const q = new URLSearchParams(location.search);
    expect(location.pathname).toBe("/demo/steer/");
    expect(q.get("prompt")).toBe("The city");
    expect(q.getAll("f")).toEqual(["demo:3:1000"]);
    expect([q.get("t"), q.get("p"), q.get("seed"), q.get("n"), q.get("pos")]).toEqual(["0.7", "0.95", "0", "16", "all"]);
    const seed = root.querySelector<HTMLInputElement>("input[name=seed]")!;
    seed.value = "7";
    seed.dispatchEvent(new Event("input"));
    expect(new URLSearchParams(location.search).get("seed")).toBe("7");
  });

  it("shows an invalid setting beside it and sends nothing", () => {
    const { root, ws } = mount();
    const n = root.querySelector<HTMLInputElement>("input[name=n]")!;
    n.value = "500";
    n.dispatchEvent(new Event("input"));
    expect(root.querySelector("[data-error-for=max_new_tokens]")!.textContent).toBe("Max new tokens must be a whole number from 1 to 128.");
    expect(ws.ofType("steer")).toHaveLength(1);
  });

  it("shows an error frame next to the control it names, and the socket stays in use", () => {
    const { root, ws } = mount();
    ws.emit({ type: "error", gen: panel!.gen, message: "features[0].strength 5000 is outside the allowed range [-1000, 1000]" });
    const row = root.querySelector(".steer-feature")!;
    expect(row.querySelector(".steer-error")!.textContent).toContain("outside the allowed range");
    expect(root.querySelector(".steer-state")!.textContent).toBe("stopped");
    ws.emit({ type: "error", gen: null, message: "rate limit: at most 240 generations per 60 s; try again in 3 s" });
    expect(root.querySelector(".steer-error--general")!.textContent).toContain("rate limit");
  });

  it("asks to resume after a gap in the frame numbers", () => {
    const { ws } = mount();
    const gen = panel!.gen;
    ws.emit({ type: "delta", gen, row: "default", seq: 1, text: "a" });
    ws.emit({ type: "delta", gen, row: "default", seq: 3, text: "c" });
    expect(ws.ofType("resume")).toEqual([{ type: "resume", gen, after_seq: 1 }]);
  });

  it("reconnects with backoff and resumes the running generation", () => {
    vi.useFakeTimers();
    const { ws } = mount();
    const gen = panel!.gen;
    ws.emit({ type: "delta", gen, row: "default", seq: 1, text: "a" });
    ws.close();
    vi.advanceTimersByTime(400);
    const again = FakeSocket.last;
    expect(again).not.toBe(ws);
    again.open();
    expect(again.sent).toEqual([{ type: "resume", gen, after_seq: 1 }]);
    again.emit({ type: "error", gen, message: "nothing to resume for gen 'x'" });
    expect(again.ofType("steer")).toHaveLength(1);
  });

  it("a permalink shows the stored texts without generating", () => {
    const cfg = config({ result: { id: "abc", default_text: " met today", steered_text: " cats purr", default_tokens: [" met", " today"], steered_tokens: [" cats", " purr"] } });
    const { root, ws } = mount(cfg);
    expect(ws.sent).toEqual([]);
    expect(continuation(root, "default")).toBe(" met today");
    expect(continuation(root, "steered")).toBe(" cats purr");
    expect(text(root, "steered").querySelector("mark")!.textContent).toBe(" cats purr");
    expect(root.querySelector<HTMLAnchorElement>(".steer-permalink")!.getAttribute("href")).toBe("/steer/abc/");
    expect(location.pathname).toBe("/demo/steer/");
  });

  it("clearing the prompt cancels and waits for a new one", () => {
    const { root, ws } = mount();
    const gen = panel!.gen;
    const prompt = root.querySelector<HTMLTextAreaElement>(".steer-prompt")!;
    prompt.value = "  ";
    prompt.dispatchEvent(new Event("input"));
    expect(ws.ofType("cancel")).toEqual([{ type: "cancel", gen }]);
    expect(ws.ofType("steer")).toHaveLength(1);
    expect(root.querySelector(".steer-state")!.textContent).toBe("type a prompt to generate");
  });
});

describe("SteerPanel embedded in another page", () => {
  beforeEach(() => {
    FakeSocket.instances = [];
    document.body.replaceChildren();
    history.replaceState(null, "", "/demo/demo/3/");
  });

  it("leaves the page URL alone and links to the steering page with the current state", () => {
    const root = document.createElement("div");
    document.body.append(root);
    const p = new SteerPanel(root, config(), { WebSocket: FakeSocket as unknown as typeof WebSocket, syncUrl: false });
    FakeSocket.last.open();
    slide(root, 1000);
    expect(location.pathname).toBe("/demo/demo/3/");
    const open = root.querySelector<HTMLAnchorElement>(".steer-open")!;
    expect(open.hidden).toBe(false);
    expect(new URL(open.href).pathname).toBe("/demo/steer/");
    expect(new URL(open.href).searchParams.getAll("f")).toEqual(["demo:3:1000"]);
    p.close();
  });
});

describe("SteerPanel URL on load", () => {
  it("writes the whole state into the URL at once on the steering page", () => {
    FakeSocket.instances = [];
    document.body.replaceChildren();
    history.replaceState(null, "", "/demo/steer/?f=demo:3:20&f=bad");
    const root = document.createElement("div");
    document.body.append(root);
    const p = new SteerPanel(root, config(), { WebSocket: FakeSocket as unknown as typeof WebSocket });
    const q = new URLSearchParams(location.search);
    expect(q.getAll("f")).toEqual(["demo:3:20"]);
    expect(q.get("n")).toBe("16");
    p.close();
  });
});
