import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decodeSteerQuery } from "../../src/steer/decodeSteerQuery";
import { encodeSteerQuery } from "../../src/steer/encodeSteerQuery";
import { renderChat } from "../../src/steer/renderChat";
import { SteerPanel } from "../../src/steer/steerPanel";
import { steerMessage } from "../../src/steer/steerMessage";
import type { SteerConfig, SteerState } from "../../src/steer/steerTypes";
import { FakeSocket } from "./fakeSocket";

const STATE: SteerState = {
  prompt: "And then?",
  chat: {
    default: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
    ],
    steered: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Cats!" },
    ],
  },
  features: [{ sae: "chat", index: 3, strength: 20, mode: "add" }],
  positions: "assistant",
  temperature: 0,
  top_p: 1,
  seed: 0,
  max_new_tokens: 8,
};

describe("chat steer messages", () => {
  it("send each column's conversation, with steered_messages only once they differ", () => {
    const m = steerMessage(1, "tiny-chat", STATE);
    expect(m.prompt).toBeUndefined();
    expect(m.messages).toEqual([...STATE.chat!.default, { role: "user", content: "And then?" }]);
    expect(m.steered_messages).toEqual([...STATE.chat!.steered, { role: "user", content: "And then?" }]);
    const same = steerMessage(1, "tiny-chat", { ...STATE, chat: { default: [], steered: [] } });
    expect(same.messages).toEqual([{ role: "user", content: "And then?" }]);
    expect("steered_messages" in same).toBe(false);
    expect(m.positions).toBe("assistant");
  });

  it("keep chat mode and the assistant positions in the URL", () => {
    const q = encodeSteerQuery(STATE);
    expect(new URLSearchParams(q).get("chat")).toBe("1");
    const back = decodeSteerQuery(q, { ...STATE, chat: null });
    expect(back.errors).toEqual([]);
    expect(back.state.chat).toEqual({ default: [], steered: [] });
    expect(back.state.positions).toBe("assistant");
  });
});

describe("renderChat", () => {
  it("writes the turns and the reply as text: a <script> reply creates no element", () => {
    const el = document.createElement("div");
    renderChat(el, [{ role: "user", content: "<b>hi</b>" }], "<i>x</i>", { text: "<script>alert(1)</script>", diverge: null, streaming: false });
    expect(el.querySelectorAll(".steer-turn").length).toBe(3);
    expect(el.querySelector("b, i, script")).toBeNull();
    expect(el.querySelector(".steer-turn--reply")!.textContent).toBe("<script>alert(1)</script>");
    expect([...el.querySelectorAll(".steer-turn")].map((t) => t.getAttribute("data-role"))).toEqual(["user", "user", "assistant"]);
  });
});

function config(over: Partial<SteerConfig> = {}): SteerConfig {
  return {
    model: "tiny-chat",
    chat: true,
    ws_path: "/ws/steer/",
    saes: [{ slug: "chat", d_sae: 128, hook_name: "blocks.1.hook_resid_post" }],
    limits: { strength_min: -1000, strength_max: 1000, max_features: 8, max_new_tokens: 128, max_prompt_chars: 2000 },
    initial: { ...STATE, prompt: "", chat: { default: [], steered: [] } },
    result: null,
    ...over,
  };
}

describe("SteerPanel in chat mode", () => {
  let panel: SteerPanel | null = null;
  beforeEach(() => {
    FakeSocket.instances = [];
    document.body.replaceChildren();
    history.replaceState(null, "", "/tiny-chat/steer/?chat=1");
    vi.useFakeTimers();
  });
  afterEach(() => {
    panel?.close();
    panel = null;
    vi.useRealTimers();
  });

  function mount(cfg = config()) {
    const root = document.createElement("div");
    document.body.append(root);
    panel = new SteerPanel(root, cfg, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: vi.fn() as unknown as typeof fetch, throttleMs: 0 });
    const ws = FakeSocket.last;
    ws.open();
    return { root, ws };
  }

  const type = (root: HTMLElement, text: string) => {
    const box = root.querySelector<HTMLTextAreaElement>(".steer-prompt")!;
    box.value = text;
    box.dispatchEvent(new Event("input"));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    vi.advanceTimersByTime(200); // the throttle's trailing edge
  };
  const turns = (root: HTMLElement, row: string) => [...root.querySelectorAll(`[data-row-text=${row}] .steer-turn`)].map((t) => t.textContent);

  it("answers a message in both columns, then each column goes on with its own reply", () => {
    const { root, ws } = mount();
    expect(ws.sent).toEqual([]); // an empty chat waits for a message
    expect(root.querySelector(".steer-state")!.textContent).toMatch(/write a message/);
    type(root, "Hi");
    expect(ws.sent.at(-1)).toMatchObject({ messages: [{ role: "user", content: "Hi" }], positions: "assistant" });
    expect(root.querySelector<HTMLTextAreaElement>(".steer-prompt")!.value).toBe("");
    const gen = panel!.gen;
    ws.emit({ type: "done", gen, row: "default", seq: 1, text: "Hello.", tokens: ["Hello."], result: "r1" });
    ws.emit({ type: "done", gen, row: "steered", seq: 2, text: "Cats!", tokens: ["Cats!"], result: "r1" });
    expect(turns(root, "steered")).toEqual(["Hi", "Cats!"]);
    type(root, "And then?");
    const second = ws.sent.at(-1)!;
    expect(second.messages).toEqual([...STATE.chat!.default, { role: "user", content: "And then?" }]);
    expect(second.steered_messages).toEqual([...STATE.chat!.steered, { role: "user", content: "And then?" }]);
    expect(turns(root, "default")).toEqual(["Hi", "Hello.", "And then?", ""]);
    expect(turns(root, "steered")).toEqual(["Hi", "Cats!", "And then?", ""]);
  });

  it("moving a slider regenerates the reply to the same message, with the same history", () => {
    const { root, ws } = mount(config({ initial: { ...STATE } }));
    const before = ws.sent.length;
    const slider = root.querySelector<HTMLInputElement>(".steer-slider")!;
    slider.value = String(Number(slider.value) + 1);
    slider.dispatchEvent(new Event("input"));
    const last = ws.sent.at(-1)!;
    expect(ws.sent.length).toBeGreaterThan(before);
    expect(last.messages).toEqual(steerMessage(1, "tiny-chat", STATE).messages);
  });

  it("a slider move keeps the default column's finished reply; the next message regenerates both", () => {
    const { root, ws } = mount();
    type(root, "Hi");
    let gen = panel!.gen;
    ws.emit({ type: "done", gen, row: "default", seq: 1, text: "Hello.", tokens: ["Hello."], result: "r1" });
    ws.emit({ type: "done", gen, row: "steered", seq: 2, text: "Cats!", tokens: ["Cats!"], result: "r1" });
    const column = root.querySelector("[data-row-text=default]")!;
    const watch = new MutationObserver(() => {});
    watch.observe(column, { childList: true, characterData: true, subtree: true });
    const slider = root.querySelector<HTMLInputElement>(".steer-slider")!;
    slider.value = String(Number(slider.value) + 50);
    slider.dispatchEvent(new Event("input"));
    vi.advanceTimersByTime(200);
    gen = panel!.gen;
    ws.emit({ type: "delta", gen, row: "default", seq: 1, text: "Hel" });
    ws.emit({ type: "delta", gen, row: "steered", seq: 2, text: "Dogs" });
    expect(watch.takeRecords()).toEqual([]);
    expect(turns(root, "default")).toEqual(["Hi", "Hello."]);
    expect(turns(root, "steered")).toEqual(["Hi", "Dogs"]);
    ws.emit({ type: "done", gen, row: "default", seq: 3, text: "Hello.", tokens: ["Hello."], result: "r2" });
    ws.emit({ type: "done", gen, row: "steered", seq: 4, text: "Dogs!", tokens: ["Dogs!"], result: "r2" });
    type(root, "More?");
    expect(turns(root, "default")).toEqual(["Hi", "Hello.", "More?", ""]);
    watch.disconnect();
  });

  it("a message sent before both replies are finished waits, with a note", () => {
    const { root, ws } = mount(config({ initial: { ...STATE } }));
    const n = ws.sent.length;
    type(root, "Next");
    expect(ws.sent.length).toBe(n);
    expect(root.querySelector(".steer-prompt-box .steer-error")!.textContent).toMatch(/Wait until both replies/);
  });

  it("switching to text mode drops the chat and the assistant positions", () => {
    const { root, ws } = mount(config({ initial: { ...STATE } }));
    const text = root.querySelector<HTMLInputElement>('input[name="steer-mode"][value="text"]')!;
    root.querySelector<HTMLTextAreaElement>(".steer-prompt")!.value = "Once upon";
    text.checked = true;
    text.dispatchEvent(new Event("change"));
    expect(ws.sent.at(-1)).toMatchObject({ prompt: "Once upon", positions: "all" });
    expect(ws.sent.at(-1)!.messages).toBeUndefined();
  });
});
