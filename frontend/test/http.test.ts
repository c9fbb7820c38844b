import { afterEach, describe, expect, it, vi } from "vitest";
import { csrfToken, getJson, HttpError, postJson, requestJson } from "../src/http";

function reply(body: string, status = 200, type = "application/json"): Response {
  return new Response(status === 204 ? null : body, { status, headers: { "content-type": type } });
}

function fetcher(response: Response | Error) {
  return vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => {
    if (response instanceof Error) throw response;
    return response;
  });
}

async function failure(request: Promise<unknown>): Promise<HttpError> {
  const error = await request.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe("http", () => {
  afterEach(() => {
    document.cookie = "csrftoken=; expires=Thu, 01 Jan 1970 00:00:00 GMT";
    document.body.replaceChildren();
  });

  it("csrfToken reads Django's cookie", () => {
    document.cookie = "csrftoken=abc123";
    expect(csrfToken(document)).toBe("abc123");
  });

  it("csrfToken falls back to a {% csrf_token %} input when the cookie is unreadable", () => {
    document.body.innerHTML = `<input type="hidden" name="csrfmiddlewaretoken" value="tok">`;
    expect(csrfToken(document)).toBe("tok");
  });

  it("getJson resolves to the body and sends no CSRF token", async () => {
    const f = fetcher(reply('{"a":1}'));
    expect(await getJson("/x", { fetcher: f })).toEqual({ a: 1 });
    const init = f.mock.calls[0]![1]!;
    expect(init.method).toBe("GET");
    expect(init.headers).toEqual({ Accept: "application/json" });
  });

  it("postJson sends the body as JSON with the CSRF token", async () => {
    document.cookie = "csrftoken=abc123";
    const f = fetcher(reply('{"id":4}', 201));
    expect(await postJson("/x", { b: 2 }, { fetcher: f })).toEqual({ id: 4 });
    const init = f.mock.calls[0]![1]!;
    expect(init.method).toBe("POST");
    expect(init.body).toBe('{"b":2}');
    expect(init.headers).toEqual({ Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": "abc123" });
  });

  it("a 204 answer resolves to null", async () => {
    expect(await requestJson("DELETE", "/x", undefined, { fetcher: fetcher(reply("", 204)) })).toBeNull();
  });

  it("an API error rejects with the server's message and status", async () => {
    const error = await failure(getJson("/x", { fetcher: fetcher(reply('{"error":{"message":"dead feature","code":"dead_feature"}}', 400)) }));
    expect(error.message).toBe("dead feature");
    expect(error.status).toBe(400);
    expect(error.json).toBe(true);
  });

  it("a non-JSON page rejects as HTTP <status>, marked not JSON", async () => {
    const error = await failure(getJson("/x", { fetcher: fetcher(reply("<h1>Not found</h1>", 404, "text/html")) }));
    expect(error.message).toBe("HTTP 404");
    expect(error.json).toBe(false);
  });

  it("a 200 that is not JSON (a login page) rejects too", async () => {
    const error = await failure(getJson("/x", { fetcher: fetcher(reply("<form>", 200, "text/html")) }));
    expect([error.status, error.json]).toEqual([200, false]);
  });

  it("a network failure rejects with status 0", async () => {
    const error = await failure(getJson("/x", { fetcher: fetcher(new TypeError("Failed to fetch")) }));
    expect([error.message, error.status, error.json]).toEqual(["Failed to fetch", 0, false]);
  });
});
