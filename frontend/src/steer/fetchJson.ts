/** A JSON API answer: `ok` with the body, or the `{"error":{"message"}}` text / HTTP status. */
export type JsonResult<T> =
  | { ok: true; status: number; body: T }
  | { ok: false; status: number; message: string; json: boolean };

/**
 * Fetches JSON and never throws: network failures come back as status 0, and a non-JSON error
 * page (an endpoint that does not exist yet) has `json: false`, so callers can degrade.
 */
export async function fetchJson<T>(url: string, init: RequestInit = {}, fetcher: typeof fetch = fetch): Promise<JsonResult<T>> {
  let response: Response;
  try {
    response = await fetcher(url, { ...init, headers: { Accept: "application/json", ...(init.headers ?? {}) } });
  } catch (error) {
    return { ok: false, status: 0, message: error instanceof Error ? error.message : String(error), json: false };
  }
  let body: unknown = null;
  let json = false;
  if ((response.headers.get("content-type") ?? "").includes("json")) {
    try {
      body = await response.json();
      json = true;
    } catch {
      json = false;
    }
  }
  if (response.ok && json) return { ok: true, status: response.status, body: body as T };
  const err = json ? (body as { error?: { message?: unknown }; detail?: unknown }) : null;
  const message =
    typeof err?.error?.message === "string"
      ? err.error.message
      : typeof err?.detail === "string"
        ? err.detail
        : `HTTP ${response.status}`;
  return { ok: false, status: response.status, message, json };
}
