import { beforeEach, describe, expect, it, vi } from "vitest";
import { drawOverview } from "../../src/importance/importanceOverview";
import { importancePanel } from "../../src/importance/importancePanel";
import type { ImportanceResult } from "../../src/importance/importanceTypes";
import { overviewPoints } from "../../src/importance/overviewPoints";
import { renderImportance } from "../../src/importance/renderImportance";

const CARD = `<section data-importance data-endpoint="/api/imp" data-status="">
  <dd data-importance-value="zero">—</dd><dd data-importance-value="mean">—</dd><dd data-importance-value="resample">—</dd>
  <p data-importance-note></p><div data-importance-tokens></div>
  <button data-importance-compute>Compute importance</button>
  <progress data-importance-progress hidden></progress><span data-importance-status></span>
</section>`;

const done: ImportanceResult = {
  status: "done", progress: 1, error: "", loss_delta: { zero: 0.12345, mean: -0.004, resample: 0.1 },
  n_contexts: 8, n_predictions: 240, up: [{ token_id: 1, token: "<script>", value: 0.01 }],
  down: [{ token_id: 2, token: " the", value: -0.2 }],
};

function card(): HTMLElement {
  document.body.innerHTML = CARD;
  return document.querySelector("[data-importance]") as HTMLElement;
}

function answer(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

describe("renderImportance", () => {
  beforeEach(() => document.body.replaceChildren());

  it("renderImportance(done) fills the three deltas, the note and the moved tokens as text", () => {
    const el = card();
    expect(renderImportance(el, done)).toBe(true);
    const values = Array.from(el.querySelectorAll("[data-importance-value]")).map((d) => d.textContent);
    expect(values).toEqual(["0.123", "\u22120.004", "0.1"]);
    expect(el.querySelector("[data-importance-note]")?.textContent).toContain("8 example windows");
    expect(el.querySelector("[data-importance-tokens] script")).toBeNull();
    expect(el.querySelector("[data-importance-tokens]")?.textContent).toContain("<script>");
    expect(el.querySelector("button")?.textContent).toBe("Recompute importance");
  });

  it("renderImportance(running) shows progress and disables the button", () => {
    const el = card();
    expect(renderImportance(el, { ...done, status: "running", progress: 0.5, loss_delta: null })).toBe(false);
    expect((el.querySelector("progress") as HTMLProgressElement).hidden).toBe(false);
    expect((el.querySelector("button") as HTMLButtonElement).disabled).toBe(true);
    expect(el.querySelector("[data-importance-status]")?.textContent).toBe("running… 50%");
  });

  it("renderImportance(failed) shows the reason", () => {
    const el = card();
    renderImportance(el, { ...done, status: "failed", error: "boom", loss_delta: null });
    expect(el.querySelector("[data-importance-note]")?.textContent).toBe("Failed: boom");
  });
});

describe("importancePanel", () => {
  it("the button POSTs, then polls until the job is done", async () => {
    const el = card();
    const calls: string[] = [];
    const replies = [answer({ ...done, status: "queued", progress: 0, loss_delta: null }, 202), answer(done)];
    const fetcher = (async (url: string, init?: RequestInit) => {
      calls.push(`${init?.method ?? "GET"} ${url}`);
      return replies.shift() as Response;
    }) as typeof fetch;
    importancePanel(el, { interval: 1, fetcher });
    (el.querySelector("button") as HTMLButtonElement).click();
    await expect.poll(() => el.dataset.status).toBe("done");
    expect(calls).toEqual(["POST /api/imp", "GET /api/imp"]);
    expect(el.querySelector('[data-importance-value="zero"]')?.textContent).toBe("0.123");
  });

  it("a card rendered without its result reads it on load", async () => {
    const el = card();
    el.dataset.status = "unknown";
    const fetcher = (async () => answer(done)) as typeof fetch;
    importancePanel(el, { fetcher });
    await expect.poll(() => el.querySelector('[data-importance-value="mean"]')?.textContent).toBe("\u22120.004");
  });

  it("an API error is shown and the button works again", async () => {
    const el = card();
    const fetcher = (async () => answer({ error: { message: "dead feature", code: "dead_feature" } }, 400)) as typeof fetch;
    importancePanel(el, { fetcher });
    (el.querySelector("button") as HTMLButtonElement).click();
    await expect.poll(() => el.querySelector("[data-importance-status]")?.textContent).toBe("dead feature");
    expect((el.querySelector("button") as HTMLButtonElement).disabled).toBe(false);
  });
});

describe("overview", () => {
  const data = { index: [1, 3], density: [0.01, 0], importance: [0.2, 0.1], max_cosine: [0.5, 0.9, null], n_live: 3, n_dead: 0 };

  it("overviewPoints keeps features with an importance and a density", () => {
    expect(overviewPoints(data)).toEqual({ points: [{ index: 1, density: 0.01, importance: 0.2 }], omitted: 2 });
  });

  it("drawOverview renders the scatter, the omitted note and the cosine histogram", () => {
    document.body.innerHTML = `<section data-importance-overview data-base="/m/s/"><div data-importance-scatter></div><span data-importance-omitted></span><div data-cosine-histogram></div></section>`;
    drawOverview(document.querySelector("[data-importance-overview]") as HTMLElement, data);
    expect(document.querySelectorAll("[data-importance-scatter] circle.dot")).toHaveLength(1);
    expect(document.querySelector("[data-importance-omitted]")?.textContent).toBe("2 of 3 live features have no importance yet and are omitted.");
    expect(document.querySelectorAll("[data-cosine-histogram] rect.bar").length).toBeGreaterThan(0);
  });

  it("drawOverview with no importance at all says why and offers to compute it", async () => {
    document.body.innerHTML = `<input name="csrfmiddlewaretoken" value="tok"><section data-importance-overview><div data-importance-scatter></div><span data-importance-omitted></span>
      <div data-importance-empty hidden><button data-importance-compute-all data-url="/api/bulk">Compute</button><span data-importance-compute-status></span></div></section>`;
    const calls: string[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push(`${init.method} ${url}`);
      return new Response(JSON.stringify({ queued: 29 }), { status: 202, headers: { "content-type": "application/json" } });
    });
    const el = document.querySelector("[data-importance-overview]") as HTMLElement;
    drawOverview(el, { ...data, index: [], density: [], importance: [] });
    const empty = el.querySelector<HTMLElement>("[data-importance-empty]")!;
    expect(empty.hidden).toBe(false);
    expect(el.querySelector<HTMLElement>("[data-importance-scatter]")!.hidden).toBe(true);
    empty.querySelector("button")!.click();
    await vi.waitFor(() => expect(empty.querySelector("[data-importance-compute-status]")!.textContent).toContain("Queued 29 features"));
    expect(calls).toEqual(["POST /api/bulk"]);
    vi.unstubAllGlobals();
  });

  it("drawOverview with points keeps the empty note hidden", () => {
    document.body.innerHTML = `<section data-importance-overview><div data-importance-scatter></div><div data-importance-empty hidden></div></section>`;
    const el = document.querySelector("[data-importance-overview]") as HTMLElement;
    drawOverview(el, data);
    expect(el.querySelector<HTMLElement>("[data-importance-empty]")!.hidden).toBe(true);
  });
});
