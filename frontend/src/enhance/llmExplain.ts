import { getJson, postJson } from "../http";
import { type ExplainJob, explainJobText } from "./explainJobText";

export interface LlmExplainOptions {
  /** Milliseconds between polls of the jobs while one is queued or running. @default 2000 */
  interval?: number;
  /** Called when the job is done (the page reloads to show the explanation). @default location.reload */
  onDone?: () => void;
}

/**
 * Wires a `[data-enhance="llm-explain"]` form: submitting POSTs to `data-url` (queueing an LLM
 * explanation of the feature), then polls `data-jobs-url` and says how the newest explain job
 * is doing until it is done (then `onDone`) or failed (with its reason). A job already queued
 * or running when the page opens is followed the same way.
 */
export function llmExplain(el: HTMLElement, options: LlmExplainOptions = {}): void {
  const form = el as HTMLFormElement;
  const doc = form.ownerDocument;
  const win = doc.defaultView;
  const interval = options.interval ?? 2000;
  const onDone = options.onDone ?? (() => win?.location.reload());
  const status = form.querySelector<HTMLElement>("[data-form-status]");
  const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
  const say = (text: string) => {
    if (status) status.textContent = text;
  };
  const busy = (on: boolean) => {
    if (button) button.disabled = on;
    if (on) form.setAttribute("aria-busy", "true");
    else form.removeAttribute("aria-busy");
  };

  const follow = async (jobId: number | null): Promise<void> => {
    const jobs = await getJson<ExplainJob[]>(form.dataset.jobsUrl ?? "");
    const job = jobs.find((j) => j.kind === "explain" && (jobId === null || j.id === jobId));
    if (!job) return busy(false);
    say(explainJobText(job));
    form.dataset.jobStatus = job.status;
    if (job.status === "queued" || job.status === "running") {
      busy(true);
      setTimeout(() => void follow(job.id).catch(fail), interval);
      return;
    }
    busy(false);
    if (job.status === "done" && jobId !== null) onDone();
  };
  const fail = (error: unknown) => {
    busy(false);
    say(error instanceof Error ? error.message : String(error));
    form.dataset.jobStatus = "error";
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(true);
    say("Queueing…");
    postJson<ExplainJob[]>(form.dataset.url ?? "", {}, { doc })
      .then((jobs) => follow(jobs[0]?.id ?? null))
      .catch(fail);
  });
  // A job started earlier (another tab, before a reload) is still worth following.
  getJson<ExplainJob[]>(form.dataset.jobsUrl ?? "")
    .then((jobs) => {
      const job = jobs.find((j) => j.kind === "explain");
      if (job && (job.status === "queued" || job.status === "running")) return follow(job.id);
      return undefined;
    })
    .catch(() => undefined);
}
