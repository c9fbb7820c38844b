import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FeatureSearch, type SearchSae } from "../../src/steer/featureSearch";
import { mountSteer } from "../../src/steer/mountSteer";
import { FakeSocket } from "./fakeSocket";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};

describe("FeatureSearch", () => {
  beforeEach(() => document.body.replaceChildren());

  function make(fetcher: ReturnType<typeof vi.fn>, saes: SearchSae[] = [{ slug: "demo", d_sae: 1024 }], debounceMs = 0) {
    const el = document.createElement("div");
    document.body.append(el);
    const onPick = vi.fn();
    const search = new FeatureSearch(el, { model: "demo", saes, apiRoot: "/api/v1/", onPick, fetcher: fetcher as unknown as typeof fetch, debounceMs });
    const type = async (value: string) => {
      search.input.value = value;
      search.input.dispatchEvent(new Event("input"));
      await flush();
    };
    return { el, onPick, type, search };
  }

  it("lists search results with their explanations as text and picks one on click", async () => {
    const fetcher = vi.fn(async () => json({ items: [{ model: "demo", sae: "demo", index: 5, explanation: "<b>cats</b>", max_activation: 3, match: "explanation" }] }));
    const { el, onPick, type } = make(fetcher);
    await type("cats");
    expect((fetcher.mock.calls[0] as unknown[])[0]).toBe("/api/v1/search?q=cats&model=demo&limit=10");
    const button = el.querySelector<HTMLButtonElement>(".steer-candidate")!;
    expect(el.querySelector("b")).toBeNull();
    expect(button.textContent).toContain("demo#5<b>cats</b>");
    button.click();
    expect(onPick).toHaveBeenCalledWith({ sae: "demo", index: 5, label: "<b>cats</b>", max_activation: 3, match: "explanation" });
  });

  it("offers a typed sae#index even when search is missing (404 page)", async () => {
    const fetcher = vi.fn(async () => new Response("<h1>Not found</h1>", { status: 404, headers: { "content-type": "text/html" } }));
    const { el, onPick, type, search } = make(fetcher);
    await type("#12");
    expect(el.querySelectorAll(".steer-candidate")).toHaveLength(1);
    search.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onPick).toHaveBeenCalledWith({ sae: "demo", index: 12, label: null, max_activation: null, match: "exact" });
  });

  const fuzzy = () => json({ items: [{ sae: "demo", index: 755, explanation: "near", max_activation: 2, match: "explanation" }, { sae: "demo", index: 745, explanation: "the one", max_activation: 3, match: "explanation" }] });

  it("Enter before the suggestions arrive adds exactly the typed sae#index", async () => {
    const fetcher = vi.fn(async () => fuzzy());
    const { onPick, search, el } = make(fetcher, [{ slug: "demo", d_sae: 1024 }], 300);
    search.input.value = "demo#745";
    search.input.dispatchEvent(new Event("input"));
    search.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onPick).toHaveBeenCalledTimes(1);
    expect(onPick).toHaveBeenCalledWith({ sae: "demo", index: 745, label: null, max_activation: null, match: "exact" });
    await new Promise((r) => setTimeout(r, 350));
    await flush();
    expect(el.querySelectorAll(".steer-candidate")).toHaveLength(0); // a late answer brings nothing back
  });

  it("Enter after the suggestions arrive still adds the typed feature, listed first and marked exact", async () => {
    const fetcher = vi.fn(async () => fuzzy());
    const { onPick, el, search, type } = make(fetcher);
    await type("demo#745");
    const rows = [...el.querySelectorAll(".steer-candidate")].map((b) => b.textContent);
    expect(rows).toEqual(["demo#745the oneexact", "demo#755nearexplanation"]);
    search.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onPick).toHaveBeenCalledWith({ sae: "demo", index: 745, label: "the one", max_activation: 3, match: "exact" });
  });

  it("a bare #index offers only the SAEs that have that index, the main SAE first", async () => {
    const fetcher = vi.fn(async () => json({ items: [{ sae: "mlp0", index: 745, match: "index" }] }));
    const saes = [
      { slug: "res1", d_sae: 1536 },
      { slug: "mlp0", d_sae: 384 },
      { slug: "res2", d_sae: 2048 },
    ];
    const { el, onPick, search, type } = make(fetcher, saes);
    await type("#745");
    expect([...el.querySelectorAll(".steer-candidate-name")].map((n) => n.textContent)).toEqual(["res1#745", "res2#745"]);
    search.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onPick).toHaveBeenCalledWith(expect.objectContaining({ sae: "res1", index: 745 }));
  });

  it("Enter on an index past the SAE's size says so and adds nothing", async () => {
    const fetcher = vi.fn(async () => json({ items: [] }));
    const { el, onPick, search, type } = make(fetcher, [{ slug: "demo", d_sae: 384 }]);
    await type("demo#745");
    expect(el.querySelector(".steer-search-status")!.textContent).toBe("demo has 384 features (0–383).");
    search.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onPick).not.toHaveBeenCalled();
  });

  it("says search is unavailable for words when the endpoint is missing", async () => {
    const fetcher = vi.fn(async () => new Response("nope", { status: 404 }));
    const { el, type } = make(fetcher);
    await type("cats");
    expect(el.querySelector(".steer-search-status")!.textContent).toContain("type sae#index");
  });
});

describe("mountSteer", () => {
  beforeEach(() => {
    FakeSocket.instances = [];
    document.body.replaceChildren();
    history.replaceState(null, "", "/demo/steer/");
  });
  afterEach(() => vi.useRealTimers());

  function page(over: Record<string, unknown> = {}): void {
    const cfg = {
      model: "demo",
      ws_path: "/ws/steer/",
      saes: [{ slug: "demo", d_sae: 64, hook_name: "blocks.1.hook_resid_post" }],
      limits: { strength_min: -100, strength_max: 100, max_features: 2, max_new_tokens: 64, max_prompt_chars: 200 },
      initial: { prompt: "", features: [], positions: "all", temperature: 0.7, top_p: 0.95, seed: 0, max_new_tokens: 16 },
      result: null,
      ...over,
    };
    document.body.innerHTML = `<div data-steer><form class="steer-controls"><textarea name="prompt"></textarea></form><div class="steer-columns"></div><section class="steer-caa"><input type="hidden" name="csrfmiddlewaretoken" value="tok"></section></div>`;
    const script = document.createElement("script");
    script.type = "application/json";
    script.id = "steer-config";
    script.textContent = JSON.stringify(cfg);
    document.body.append(script);
  }

  it("does nothing on other pages", () => {
    expect(mountSteer(document)).toBeNull();
  });

  it("replaces the server-rendered form and adds a typed feature with its max activation from the feature API", async () => {
    page();
    const fetcher = vi.fn(async (url: string) =>
      url.includes("/features/") ? json({ max_activation: 2.5, explanations: [{ text: "dogs" }] }) : json({ items: [] }),
    );
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    expect(document.querySelectorAll(".steer-controls")).toHaveLength(1);
    expect(document.querySelector("[data-steer]")!.getAttribute("data-steer-ready")).toBe("true");
    await panel.addCandidate({ sae: "demo", index: 7, label: null, max_activation: null, match: "typed" });
    expect(fetcher).toHaveBeenCalledWith("/api/v1/models/demo/saes/demo/features/7", expect.anything());
    expect(panel.state.features).toEqual([{ sae: "demo", index: 7, strength: 10, mode: "add", max_activation: 2.5, label: "dogs" }]);
    expect(document.querySelector(".steer-units")!.textContent).toBe("= 4× max act.");
    panel.close();
  });

  it("refuses an unknown feature (JSON 404) and an index past d_sae, with a message", async () => {
    page();
    const fetcher = vi.fn(async () => json({ error: { message: "No feature demo#9.", code: "not_found" } }, 404));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    await panel.addCandidate({ sae: "demo", index: 9, label: null, max_activation: null, match: "typed" });
    expect(document.querySelector(".steer-search-status")!.textContent).toBe("No feature demo#9.");
    await panel.addCandidate({ sae: "demo", index: 64, label: null, max_activation: null, match: "typed" });
    expect(document.querySelector(".steer-search-status")!.textContent).toBe("demo has 64 features (0–63).");
    expect(panel.state.features).toEqual([]);
    panel.close();
  });

  it("adds a feature with unknown max when the feature endpoint does not exist yet", async () => {
    page();
    const fetcher = vi.fn(async () => new Response("<h1>404</h1>", { status: 404, headers: { "content-type": "text/html" } }));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    await panel.addCandidate({ sae: "demo", index: 9, label: null, max_activation: null, match: "typed" });
    expect(panel.state.features).toEqual([{ sae: "demo", index: 9, strength: 10, mode: "add", max_activation: null, label: null }]);
    panel.close();
  });

  it("builds the CAA form, posts the JSONL pairs with the CSRF token, and steers with the vector", async () => {
    page();
    const vector = { id: 4, model: "demo", sae: "demo", label: "happy", status: "ready", n_pairs: 1, features: [{ index: 3, cosine: 0.71, weight: 1 }] };
    const fetcher = vi.fn(async (_url: string, init?: RequestInit) => (init?.method === "POST" ? json({ ...vector, status: "pending" }, 201) : json(vector)));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    const caa = document.querySelector(".steer-caa")!;
    const jsonl = '{"prompt":"I am","positive":" happy","negative":" sad"}';
    caa.querySelector<HTMLTextAreaElement>("textarea")!.value = jsonl;
    caa.querySelector<HTMLInputElement>("input[type=text]")!.value = "happy";
    vi.useFakeTimers();
    caa.querySelector("form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.advanceTimersByTimeAsync(1500);
    vi.useRealTimers();
    const post = fetcher.mock.calls.find((c) => c[1]?.method === "POST")!;
    expect(post[0]).toBe("/api/v1/steering/vectors");
    expect((post[1]!.headers as Record<string, string>)["X-CSRFToken"]).toBe("tok");
    expect(JSON.parse(post[1]!.body as string)).toEqual({ model: "demo", sae: "demo", label: "happy", pairs: jsonl });
    expect(fetcher.mock.calls.some((c) => c[0] === "/api/v1/steering/vectors/4")).toBe(true);
    expect(caa.querySelector(".steer-caa-aligned")!.textContent).toContain("demo#3cos 0.710");
    caa.querySelector<HTMLButtonElement>(".steer-caa-vector button")!.click();
    expect(panel.state.features.map((f) => f.vector)).toEqual([4]);
    panel.close();
  });

  it("says why a pasted line is bad before sending anything", async () => {
    page();
    const fetcher = vi.fn(async () => json([]));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    const caa = document.querySelector(".steer-caa")!;
    caa.querySelector<HTMLTextAreaElement>("textarea")!.value = '{"prompt":"a","positive":"b"}';
    caa.querySelector("form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    await flush();
    expect(caa.querySelector(".steer-caa-status")!.textContent).toBe('line 1: "negative" must be a non-empty string');
    expect(fetcher.mock.calls.every((c) => (c as unknown[])[1] === undefined || ((c as unknown[])[1] as RequestInit).method !== "POST")).toBe(true);
    panel.close();
  });

  it("lists the model's ready vectors to steer with again", async () => {
    page();
    const fetcher = vi.fn(async () => json([{ id: 2, sae: "demo", label: "<b>calm</b>", status: "ready", n_pairs: 3 }, { id: 3, sae: "demo", label: "x", status: "pending" }]));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    await flush();
    const items = document.querySelectorAll(".steer-caa-list button");
    expect(items).toHaveLength(1);
    expect(items[0]!.textContent).toBe("vector 2<b>calm</b>demo · 3 pairs");
    (items[0] as HTMLButtonElement).click();
    expect(panel.state.features).toMatchObject([{ vector: 2, label: "<b>calm</b>" }]);
    panel.close();
  });

  const twoSaes = [
    { slug: "mlp0", d_sae: 384, hook_name: "blocks.0.hook_mlp_out" },
    { slug: "demo", d_sae: 64, hook_name: "blocks.1.hook_resid_post" },
  ];

  it("the CAA form's SAE menu starts at the SAE of the model's main (residual) hook", () => {
    page({ saes: twoSaes });
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: vi.fn(async () => json([])) as unknown as typeof fetch })!;
    expect(document.querySelector<HTMLSelectElement>(".steer-caa select")!.value).toBe("demo");
    panel.close();
  });

  it("lists a vector's aligned features with their explanations, as text", async () => {
    page();
    const vector = { id: 4, sae: "demo", label: "happy", status: "ready", features: [{ index: 3, cosine: 0.71, label: "<i>joy</i>" }, { index: 8, cosine: 0.2, label: null }] };
    const fetcher = vi.fn(async (_url: string, init?: RequestInit) => (init?.method === "POST" ? json(vector, 201) : json(vector)));
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    const caa = document.querySelector(".steer-caa")!;
    caa.querySelector<HTMLTextAreaElement>("textarea")!.value = '{"prompt":"I am","positive":" happy","negative":" sad"}';
    caa.querySelector<HTMLInputElement>("input[type=text]")!.value = "happy";
    caa.querySelector("form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    await flush();
    const items = [...caa.querySelectorAll(".steer-caa-aligned li")].map((li) => li.textContent);
    expect(items).toEqual(["demo#3<i>joy</i>cos 0.710", "demo#8cos 0.200"]);
    expect(caa.querySelector("i")).toBeNull();
    panel.close();
  });

  it("tells a signed-out reader to sign in, linking back to this page", async () => {
    page({ signed_in: false });
    history.replaceState(null, "", "/demo/steer/?prompt=a%20b");
    const fetcher = vi.fn(async (_url: string, init?: RequestInit) =>
      init?.method === "POST" ? json({ error: { message: "Sign in or send an API key.", code: "unauthorized" } }, 401) : json([]),
    );
    const panel = mountSteer(document, { WebSocket: FakeSocket as unknown as typeof WebSocket, fetcher: fetcher as unknown as typeof fetch })!;
    const caa = document.querySelector(".steer-caa")!;
    const link = () => caa.querySelector<HTMLAnchorElement>(".steer-caa-status a")!;
    expect(caa.querySelector(".steer-caa-status")!.textContent).toBe("Creating a steering vector needs an account: sign in.");
    const next = (a: HTMLAnchorElement) => new URL(a.href, location.href).searchParams.get("next");
    expect(new URL(link().href, location.href).pathname).toBe("/accounts/login/");
    expect(next(link())).toBe(location.pathname + location.search);
    caa.querySelector<HTMLTextAreaElement>("textarea")!.value = '{"prompt":"I am","positive":" happy","negative":" sad"}';
    caa.querySelector<HTMLInputElement>("input[type=text]")!.value = "happy";
    caa.querySelector("form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    await flush();
    expect(caa.querySelector(".steer-caa-status")!.textContent).toBe("Sign in or send an API key. To create steering vectors, sign in.");
    expect(next(link())).toBe(location.pathname + location.search);
    panel.close();
  });
});
