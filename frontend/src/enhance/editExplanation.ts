import { requestJson } from "../http";

/**
 * Wires a `[data-enhance="edit-explanation"]` form: PATCHes `{text}` to `data-url` (one's own
 * explanation), then calls `onSaved` (by default, reloads to show it with its new score);
 * a refusal is shown in `[data-form-status]`.
 */
export function editExplanation(el: HTMLElement, onSaved?: () => void): void {
  const form = el as HTMLFormElement;
  const status = form.querySelector<HTMLElement>("[data-form-status]");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = String(new FormData(form).get("text") ?? "");
    if (status) status.textContent = "Saving…";
    requestJson("PATCH", form.dataset.url ?? "", { text }, { doc: form.ownerDocument })
      .then(() => (onSaved ?? (() => form.ownerDocument.defaultView?.location.reload()))())
      .catch((error: unknown) => {
        if (status) status.textContent = error instanceof Error ? error.message : String(error);
      });
  });
}
