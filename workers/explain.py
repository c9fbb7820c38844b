"""Tasks for the `explain` queue: LLM explanations and detection scores, one batch of jobs each.

Thin interfaces (STYLE.md workers §1-§5): messages carry ExplainJob ids; each job is claimed,
run and its result or failure stored by explorer.explanations.services.explain_job_run.
No torch here: the LLM is reached over HTTP and the offline proxy reads the database.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from explorer.explanations import services
from workers.celery import app, time_limits

log = logging.getLogger(__name__)


@app.task(name="workers.explain.explain_batch", **time_limits("explain"))
def explain_batch(job_ids: list[int]) -> dict[str, int]:
    """Run the jobs in order. A job that fails is recorded and the batch goes on; when the
    batch runs out of time, the current job and the rest are stored as failed (retryable) so
    `manage.py explain_retry` picks them up."""
    done = failed = 0
    for i, job_id in enumerate(job_ids):
        try:
            job = services.explain_job_run(job_id=int(job_id))
        except SoftTimeLimitExceeded:
            services.explain_jobs_fail(
                job_ids=job_ids[i:], reason="the batch ran out of time before this job ran"
            )
            log.warning("explain batch ran out of time at job %s", job_id)
            break
        except Exception:
            log.exception("explain job %s crashed (stored as failed)", job_id)
            failed += 1
            continue
        if job is None:
            continue
        if job.status == job.Status.DONE:
            done += 1
        else:
            failed += 1
    return {"done": done, "failed": failed}


@app.task(name="workers.explain.explain_retry_failed", **time_limits("explain"))
def explain_retry_failed() -> int:
    """Queue the retryable failures again (schedule it with celery beat, or run
    `manage.py explain_retry`)."""
    return len(services.explain_jobs_retry())
