import { afterEach, describe, expect, it, vi } from "vitest";
import { applyIndexProgress, applyPendingSteps, behaviours } from "../src/enhance/behaviours";
import { enhance } from "../src/enhance/enhance";

describe("behaviours", () => {
  afterEach(() => {
    document.body.replaceChildren();
    vi.restoreAllMocks();
  });

  it("feature-nav follows the link for → and ignores keys typed into a field", () => {
    document.body.innerHTML = `<nav data-enhance="feature-nav"><a href="#next" data-key="ArrowRight">next</a></nav><input id="i">`;
    enhance(document);
    const clicked = vi.fn((e: Event) => e.preventDefault());
    document.querySelector("a")!.addEventListener("click", clicked);
    document.getElementById("i")!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(clicked).not.toHaveBeenCalled();
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(clicked).toHaveBeenCalledTimes(1);
  });

  it("the embed snippet follows the part checkboxes", () => {
    document.body.innerHTML = `
      <details data-enhance="embed-snippet" data-url="http://x.test/m/s/3/">
        <input type="checkbox" name="plots" checked><input type="checkbox" name="test">
        <textarea data-embed-code></textarea>
      </details>`;
    enhance(document);
    const code = document.querySelector("textarea")!;
    expect(code.value).toContain('src="http://x.test/m/s/3/?embed=1&amp;plots=1&amp;test=0"');
    const test = document.querySelector<HTMLInputElement>('input[name="test"]')!;
    test.checked = true;
    test.dispatchEvent(new Event("change"));
    expect(code.value).toContain("test=1");
  });

  it("index progress updates the bar and says when the run has ended", () => {
    document.body.innerHTML = `<section><progress max="1" value="0"></progress><span data-progress-status></span><span data-progress-text></span></section>`;
    const el = document.querySelector("section")!;
    expect(applyIndexProgress(el, { status: "running", tokens_done: 250, tokens_total: 1000 })).toBe(false);
    expect(el.querySelector("progress")!.value).toBe(250);
    expect(el.querySelector("[data-progress-text]")!.textContent).toBe("250 of 1,000 tokens");
    expect(applyIndexProgress(el, { status: "done", tokens_done: 1000, tokens_total: 1000 })).toBe(true);
  });

  it("pending steps update their texts as plain text and ask for a reload when one has finished", () => {
    document.body.innerHTML = `<section><ul><li data-pending="map"><span data-pending-text>old</span></li><li data-pending="embeddings"><span data-pending-text>old</span></li></ul></section>`;
    const el = document.querySelector("section")!;
    const steps = [
      { key: "map", title: "Feature map", text: "not laid out yet" },
      { key: "embeddings", title: "Label embeddings", text: "<b>3 of 9</b> done" },
    ];
    expect(applyPendingSteps(el, steps)).toBe(false);
    const texts = el.querySelectorAll("[data-pending-text]");
    expect(texts[1]!.textContent).toBe("<b>3 of 9</b> done");
    expect(el.querySelector("b")).toBeNull();
    expect(applyPendingSteps(el, steps.slice(1))).toBe(true);
    expect(applyPendingSteps(el, [])).toBe(true);
  });

  it("an unknown data-enhance is logged and the others are still wired", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    document.body.innerHTML = `<div data-enhance="nope"></div><nav data-enhance="feature-nav"></nav>`;
    enhance(document);
    expect(error).toHaveBeenCalled();
    expect(document.querySelector("nav")!.dataset.enhanced).toBe("true");
  });

  it("every behaviour the templates use is registered", () => {
    for (const name of ["feature-nav", "activation-test", "add-to-list", "add-explanation", "edit-explanation", "llm-explain", "vote", "embed-snippet", "index-progress", "metrics-progress", "pending-steps", "sortable-table"]) {
      expect(typeof behaviours[name]).toBe("function");
    }
  });

  it("metrics progress shows the tokens done while the evaluation runs", async () => {
    vi.useFakeTimers();
    const fetcher = vi.fn(async () => new Response(JSON.stringify({ status: "running", tokens_done: 1500, tokens_total: 85000 }), { headers: { "Content-Type": "application/json" } }));
    vi.stubGlobal("fetch", fetcher);
    document.body.innerHTML = `<p data-enhance="metrics-progress" data-src="/api/v1/models/m/saes/s/metrics">Computing<span data-metrics-text></span></p>`;
    enhance(document);
    await vi.advanceTimersByTimeAsync(3000);
    expect(fetcher).toHaveBeenCalledWith("/api/v1/models/m/saes/s/metrics", expect.anything());
    expect(document.querySelector("[data-metrics-text]")!.textContent).toBe(" (1,500 of 85,000 tokens)");
    expect(document.querySelector("p")!.dataset.metricsDone).toBeUndefined();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("the first activation test says the worker is loading the model until one has answered", async () => {
    document.body.innerHTML = `<script type="application/json" id="cfg">{"endpoint": "/t", "model": "m", "sae": "s", "index": 1, "modelReady": false}</script>
      <form data-enhance="activation-test" data-config="cfg"><textarea>hi</textarea><span data-test-status></span></form><div data-test-result></div>`;
    let answer: (r: Response) => void = () => {};
    vi.stubGlobal("fetch", () => new Promise<Response>((resolve) => (answer = resolve)));
    enhance(document);
    const status = document.querySelector("[data-test-status]")!;
    expect(status.textContent).toContain("loading the model");
    answer(new Response(JSON.stringify({ tokens: ["hi"], values: [0] }), { headers: { "content-type": "application/json" } }));
    await vi.waitFor(() => expect(status.textContent).toBe("This feature does not fire on your text."));
    vi.unstubAllGlobals();
  });
});
