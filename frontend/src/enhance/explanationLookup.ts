import { getJson } from "../http";

/**
 * A memoised lookup of a feature's best explanation through the JSON API
 * (`GET /api/v1/models/{model}/saes/{sae}/features/{index}`), for map hover text. `base` is
 * the SAE page's path, `/<model>/<sae>/`. Failures resolve to null (the hover shows the index).
 */
export function explanationLookup(base: string, fetcher?: typeof fetch): (index: number) => Promise<string | null> {
  const [model, sae] = base.split("/").filter(Boolean);
  const cache = new Map<number, Promise<string | null>>();
  return (index) => {
    let hit = cache.get(index);
    if (!hit) {
      const url = `/api/v1/models/${encodeURIComponent(model ?? "")}/saes/${encodeURIComponent(sae ?? "")}/features/${index}`;
      hit = getJson<{ explanations?: { text?: string }[] } | null>(url, { fetcher })
        .then((body) => body?.explanations?.[0]?.text ?? null)
        .catch(() => null);
      cache.set(index, hit);
    }
    return hit;
  };
}
