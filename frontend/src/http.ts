/**
 * The one way the front end talks to the JSON API. A 2xx answer resolves to its JSON body
 * (null when it has none, as a 204); anything else rejects with an HttpError.
 */

/**
 * A failed request. `message` is the API's `{"error": {"message"}}` (or Django's `detail`),
 * else `HTTP <status>`; `status` is 0 when the network failed; `json` is true when the server
 * answered in JSON (a real refusal) and false for a network failure or a non-JSON page (an
 * endpoint this server does not have), which callers may treat as "unavailable".
 */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    message: string,
    readonly status: number,
    readonly json: boolean,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  /** The fetch to use (tests pass their own). @default globalThis.fetch */
  fetcher?: typeof fetch;
  /** The document whose CSRF token a write sends. @default document */
  doc?: Document;
}

/**
 * Django's CSRF token: its cookie, else a `{% csrf_token %}` input on the page (the cookie
 * is unreadable with CSRF_COOKIE_HTTPONLY or CSRF_USE_SESSIONS); "" when there is neither.
 */
export function csrfToken(doc: Document = document): string {
  const cookie = /(?:^|;\s*)csrftoken=([^;]+)/.exec(doc.cookie)?.[1];
  if (cookie) return decodeURIComponent(cookie);
  return doc.querySelector<HTMLInputElement>("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function errorMessage(body: unknown, status: number): string {
  const b = body as { error?: { message?: unknown }; detail?: unknown } | null;
  if (typeof b?.error?.message === "string") return b.error.message;
  if (typeof b?.detail === "string") return b.detail;
  return `HTTP ${status}`;
}

/** Sends a request with the JSON headers (and the CSRF token unless it is a GET) and reads the answer. */
export async function requestJson<T>(method: string, url: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const init: RequestInit = { method, credentials: "same-origin", headers };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken(options.doc ?? document);
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response: Response;
  let text: string;
  try {
    response = await (options.fetcher ?? globalThis.fetch)(url, init);
    text = await response.text();
  } catch (error) {
    throw new HttpError(error instanceof Error ? error.message : String(error), 0, false);
  }
  if (response.ok && text === "") return null as T;
  let parsed: unknown;
  let json = (response.headers.get("content-type") ?? "").includes("json");
  if (json) {
    try {
      parsed = JSON.parse(text);
    } catch {
      json = false;
    }
  }
  if (response.ok && json) return parsed as T;
  throw new HttpError(errorMessage(json ? parsed : null, response.status), response.status, json);
}

/** GETs JSON. */
export function getJson<T>(url: string, options: RequestOptions = {}): Promise<T> {
  return requestJson<T>("GET", url, undefined, options);
}

/** POSTs `body` as JSON with the CSRF token. */
export function postJson<T>(url: string, body: unknown, options: RequestOptions = {}): Promise<T> {
  return requestJson<T>("POST", url, body, options);
}
