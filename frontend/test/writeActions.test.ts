import { afterEach, describe, expect, it, vi } from "vitest";
import { behaviours } from "../src/enhance/behaviours";
import { editExplanation } from "../src/enhance/editExplanation";
import { explainJobText } from "../src/enhance/explainJobText";
import { llmExplain } from "../src/enhance/llmExplain";

type Call = { method: string; url: string; body: unknown; csrf: string | null };

/** A fetch answering each call with the next of `answers` (status, JSON body), recording calls. */
function fakeFetch(answers: [number, unknown][]) {
  const calls: Call[] = [];
  const fetcher = vi.fn(async (url: string, init: RequestInit) => {
    const headers = init.headers as Record<string, string>;
    calls.push({ method: init.method ?? "GET", url, body: init.body ? JSON.parse(String(init.body)) : undefined, csrf: headers["X-CSRFToken"] ?? null });
    const [status, body] = answers.shift() ?? [500, { error: { message: "no answer" } }];
    return new Response(body === null ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  });
  vi.stubGlobal("fetch", fetcher);
  return calls;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("write actions on the feature page", () => {
  afterEach(() => {
    document.body.replaceChildren();
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it("a vote updates the total and the pressed button, with the CSRF token", async () => {
    document.body.innerHTML = `<input name="csrfmiddlewaretoken" value="tok"><span data-url="/api/v1/explanations/7/vote"><button data-vote="1" aria-pressed="false">▲</button><span data-vote-count>2</span><button data-vote="-1" aria-pressed="false">▼</button><span data-vote-status></span></span>`;
    const calls = fakeFetch([[200, { explanation: 7, value: 1 }]]);
    const el = document.querySelector<HTMLElement>("[data-url]")!;
    behaviours.vote!(el);
    el.querySelector<HTMLButtonElement>('[data-vote="1"]')!.click();
    await vi.waitFor(() => expect(el.querySelector("[data-vote-count]")!.textContent).toBe("3"));
    expect(calls[0]).toMatchObject({ method: "POST", url: "/api/v1/explanations/7/vote", body: { value: 1 }, csrf: "tok" });
    expect(el.querySelector('[data-vote="1"]')!.getAttribute("aria-pressed")).toBe("true");
  });

  it("switching a vote retracts it first and moves the total by two", async () => {
    document.body.innerHTML = `<span data-url="/v"><button data-vote="1" aria-pressed="true">▲</button><span data-vote-count>3</span><button data-vote="-1" aria-pressed="false">▼</button><span data-vote-status></span></span>`;
    const calls = fakeFetch([[204, null], [200, { value: -1 }]]);
    const el = document.querySelector<HTMLElement>("[data-url]")!;
    behaviours.vote!(el);
    el.querySelector<HTMLButtonElement>('[data-vote="-1"]')!.click();
    await vi.waitFor(() => expect(el.querySelector("[data-vote-count]")!.textContent).toBe("1"));
    expect(calls.map((c) => c.method)).toEqual(["DELETE", "POST"]);
  });

  it("a refused vote shows the API's message beside the buttons", async () => {
    document.body.innerHTML = `<span data-url="/v"><button data-vote="1" aria-pressed="false">▲</button><span data-vote-count>0</span><span data-vote-status></span></span>`;
    fakeFetch([[409, { error: { message: "You have already voted on this explanation." } }]]);
    const el = document.querySelector<HTMLElement>("[data-url]")!;
    behaviours.vote!(el);
    el.querySelector<HTMLButtonElement>("[data-vote]")!.click();
    await vi.waitFor(() => expect(el.querySelector("[data-vote-status]")!.textContent).toContain("already voted"));
    expect(el.querySelector("[data-vote-count]")!.textContent).toBe("0");
  });

  it("editing an explanation PATCHes its text and calls back when saved", async () => {
    document.body.innerHTML = `<form data-url="/api/v1/explanations/4"><input name="text" value="cats on mats"><span data-form-status></span></form>`;
    const calls = fakeFetch([[200, { id: 4, text: "cats on mats" }]]);
    const saved = vi.fn();
    const form = document.querySelector("form")!;
    editExplanation(form, saved);
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(saved).toHaveBeenCalled());
    expect(calls[0]).toMatchObject({ method: "PATCH", url: "/api/v1/explanations/4", body: { text: "cats on mats" } });
  });

  it("a refused edit says why and does not reload", async () => {
    document.body.innerHTML = `<form data-url="/e/4"><input name="text" value=""><span data-form-status></span></form>`;
    fakeFetch([[400, { error: { message: "An explanation needs 1 to 1000 characters." } }]]);
    const saved = vi.fn();
    const form = document.querySelector("form")!;
    editExplanation(form, saved);
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(form.querySelector("[data-form-status]")!.textContent).toContain("1 to 1000"));
    expect(saved).not.toHaveBeenCalled();
  });

  it("the LLM explainer queues a job, shows its progress and finishes when it is done", async () => {
    document.body.innerHTML = `<form data-url="/x/explain" data-jobs-url="/x/jobs"><button type="submit">Explain</button><span data-form-status></span></form>`;
    const job = { id: 9, kind: "explain", reason: "", retryable: false, model: "m1" };
    const calls = fakeFetch([
      [200, []], // the jobs when the page opened: none
      [202, [{ ...job, status: "queued" }]],
      [200, [{ ...job, status: "running" }]],
      [200, [{ ...job, status: "done" }]],
    ]);
    const done = vi.fn();
    const form = document.querySelector("form")!;
    llmExplain(form, { interval: 1, onDone: done });
    await settle();
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(done).toHaveBeenCalled());
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual(["GET /x/jobs", "POST /x/explain", "GET /x/jobs", "GET /x/jobs"]);
    expect(form.dataset.jobStatus).toBe("done");
  });

  it("a failed LLM job shows its reason", async () => {
    document.body.innerHTML = `<form data-url="/x/explain" data-jobs-url="/x/jobs"><button type="submit">Explain</button><span data-form-status></span></form>`;
    const job = { id: 9, kind: "explain", model: "m1" };
    fakeFetch([
      [200, []],
      [202, [{ ...job, status: "queued", reason: "", retryable: false }]],
      [200, [{ ...job, status: "failed", reason: "HTTP 401 from the endpoint", retryable: false }]],
    ]);
    const done = vi.fn();
    const form = document.querySelector("form")!;
    llmExplain(form, { interval: 1, onDone: done });
    await settle();
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(form.dataset.jobStatus).toBe("failed"));
    expect(form.querySelector("[data-form-status]")!.textContent).toBe("Failed: HTTP 401 from the endpoint");
    expect(form.querySelector("button")!.disabled).toBe(false);
    expect(done).not.toHaveBeenCalled();
  });

  it("no endpoint configured: the 503's message is shown", async () => {
    document.body.innerHTML = `<form data-url="/x/explain" data-jobs-url="/x/jobs"><button type="submit">Explain</button><span data-form-status></span></form>`;
    fakeFetch([[200, []], [503, { error: { message: "No LLM endpoint is configured" } }]]);
    const form = document.querySelector("form")!;
    llmExplain(form, { interval: 1 });
    await settle();
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(form.dataset.jobStatus).toBe("error"));
    expect(form.querySelector("[data-form-status]")!.textContent).toContain("No LLM endpoint");
  });

  it("explain job texts name the model and say what to expect", () => {
    const job = { id: 1, kind: "explain", reason: "", retryable: true, model: "gpt-x" };
    expect(explainJobText({ ...job, status: "queued" })).toContain("gpt-x");
    expect(explainJobText({ ...job, status: "failed", reason: "timeout" })).toBe("Failed: timeout (it may work if you try again)");
  });

  it("adding a feature already on the list says so", async () => {
    document.body.innerHTML = `<form data-model="m" data-sae="s" data-index="3"><select name="list"><option value="L1">cats</option><option value="">New list…</option></select><input name="new_name" data-new-list><input name="note" value=""><span data-list-status></span></form>`;
    fakeFetch([[200, { id: 1, already_listed: true }]]);
    const form = document.querySelector("form")!;
    behaviours["add-to-list"]!(form);
    expect(form.querySelector<HTMLInputElement>("[data-new-list]")!.hidden).toBe(true);
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(form.querySelector("[data-list-status]")!.textContent).toBe("Already on “cats”."));
  });

  it("'New list…' creates the list from the name typed, then adds the feature", async () => {
    document.body.innerHTML = `<form data-model="m" data-sae="s" data-index="3"><select name="list"><option value="">New list…</option></select><input name="new_name" data-new-list value="Rivers"><input name="note" value="wet"><span data-list-status></span></form>`;
    const calls = fakeFetch([[201, { id: "L2", name: "Rivers" }], [201, { id: 5, already_listed: false }]]);
    const form = document.querySelector("form")!;
    behaviours["add-to-list"]!(form);
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(form.querySelector("[data-list-status]")!.textContent).toBe("Added to “Rivers”."));
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual(["POST /api/v1/lists", "POST /api/v1/lists/L2/items"]);
    expect(calls[1]!.body).toEqual({ model: "m", sae: "s", index: 3, note: "wet" });
    expect(form.querySelector("select")!.value).toBe("L2");
  });
});
