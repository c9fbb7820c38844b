import { invalid } from "../options/invalid";
import { CaaPanel } from "./caaPanel";
import { SteerPanel, type SteerPanelOptions } from "./steerPanel";
import type { SteerConfig } from "./steerTypes";

/**
 * Starts the live steering panel on a page that has `[data-steer]` and the view's
 * `steer-config` json_script; does nothing on other pages. Returns the panel, if any.
 * On another page (a feature page), mark the element `data-steer-embedded`: the panel then
 * keeps that page's URL and links to the steering page with its current state instead.
 *
 * @throws Error `invalid steer-config: …` when the config is not an object with `model` and `initial`.
 */
export function mountSteer(root: ParentNode = document, options: SteerPanelOptions = {}): SteerPanel | null {
  const el = root.querySelector<HTMLElement>("[data-steer]");
  const script = (el?.ownerDocument ?? document).getElementById("steer-config");
  if (!el || !script) return null;
  const config = JSON.parse(script.textContent ?? "null") as SteerConfig | null;
  if (!config || typeof config.model !== "string" || typeof config.initial !== "object" || config.initial === null) invalid("steer-config", config);
  // `data-steer-embedded` (a panel inside another page): leave that page's URL alone.
  const embedded = el.dataset.steerEmbedded !== undefined;
  const panel = new SteerPanel(el, config, embedded ? { syncUrl: false, ...options } : options);
  const caa = el.querySelector<HTMLElement>(".steer-caa");
  if (caa) new CaaPanel(caa, { config, panel, ...(options.fetcher ? { fetcher: options.fetcher } : {}) });
  el.dataset.steerReady = "true";
  return panel;
}
