/** One LLM explain job as `GET …/explain-jobs` lists it (the fields the page shows). */
export interface ExplainJob {
  id: number;
  kind: string;
  status: string;
  reason: string;
  retryable: boolean;
  model: string;
}

/** What a reader is told about an explain job; `done` and `failed` end the wait. */
export function explainJobText(job: ExplainJob): string {
  switch (job.status) {
    case "queued":
      return `Queued: waiting for a worker on the explain queue to ask ${job.model}…`;
    case "running":
      return `Running: ${job.model} is reading the top examples…`;
    case "done":
      return "Done: the new explanation is shown above.";
    case "failed":
      return `Failed: ${job.reason || "no reason given"}${job.retryable ? " (it may work if you try again)" : ""}`;
    default:
      return job.status;
  }
}
