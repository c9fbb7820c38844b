"""Running jobs: one alone on the caller's thread, or many through one shared decode loop.

`run_job` decodes one `Job` through a private `DecodeBatch` (generate() uses it). A
`BatchScheduler` owns one model's `DecodeBatch` on one thread: `submit()` hands it a job and
returns a `JobHandle`; between decode steps the loop admits waiting jobs (one prefill for all
of them, while rows fit under `max_rows`), polls every job's `cancel()`, and settles finished
jobs by calling their `finish()` for the waiting caller. A failing job, prefill or step fails
only the jobs in it; the loop keeps serving.

Fairness (DESIGN.md §5): waiting jobs queue per `Job.client` and are admitted round-robin
across clients, each client's own jobs in order. One client with a hundred jobs waiting delays
another client's job by at most one admission of its own, rather than by its whole backlog as a
single first-come queue would. (The web side also caps each client's generations in flight:
explorer/steering/services.py, `in_flight_acquire`.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from typing import Any, Self

import torch

from workers.engine.batching import DecodeBatch, Job

log = logging.getLogger(__name__)


def run_job(lm: Any, job: Job, stop_ids: Sequence[int] | None = None) -> Any:
    """Decode one job alone on the calling thread; returns `job.finish(...)`."""
    with DecodeBatch(lm, stop_ids) as batch, torch.inference_mode():
        if not job.should_stop():
            batch.join(job)
            while batch.rows:
                batch.evict()  # polls cancel() before every step
                batch.step()
    if job.error is not None:
        raise job.error
    return job.finish(job.outputs(), job.cancelled)


class JobHandle:
    """What `BatchScheduler.submit` returns: `result()` waits, `cancel()` stops the job
    before the scheduler's next step."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._cancel_flag = threading.Event()
        user_cancel = job.cancel
        job.cancel = lambda: self._cancel_flag.is_set() or bool(user_cancel and user_cancel())

    def cancel(self) -> None:
        self._cancel_flag.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result

    def _settle(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()


class BatchScheduler:
    """Owns one model's decode loop on one thread; jobs join and leave between steps.

    Use as a context manager (or call `close()`): the thread stops after the current step and
    unfinished jobs end as cancelled. `max_rows` bounds the batch; further jobs wait.
    """

    def __init__(
        self, lm: Any, *, max_rows: int = 32, stop_ids: Sequence[int] | None = None
    ) -> None:
        self.lm = lm
        self.max_rows = max_rows
        self._batch = DecodeBatch(lm, stop_ids)
        self._inbox: queue.Queue[JobHandle] = queue.Queue()
        # Waiting jobs per client, clients in round-robin order (the next to serve first).
        self._waiting: OrderedDict[str | None, deque[JobHandle]] = OrderedDict()
        self._handles: dict[int, JobHandle] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="engine-decode", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> JobHandle:
        if self._stop.is_set():
            raise RuntimeError("scheduler is closed")
        handle = JobHandle(job)
        self._inbox.put(handle)
        return handle

    def close(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _settle(self, job: Job) -> None:
        handle = self._handles.pop(id(job), None)
        if handle is None:
            return
        if job.error is not None:
            handle._settle(error=job.error)
            return
        try:
            handle._settle(job.finish(job.outputs(), job.cancelled))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller, not swallowed
            handle._settle(error=exc)

    def _wait(self, handle: JobHandle) -> None:
        """Queue a submitted job behind its client's others (a new client goes last)."""
        self._waiting.setdefault(handle.job.client, deque()).append(handle)

    def _waiting_handles(self) -> Iterator[JobHandle]:
        for handles in self._waiting.values():
            yield from handles

    def _next_waiting(self) -> JobHandle | None:
        """The job to admit next: the head of the first client's queue, without taking it.
        Jobs stopped while they waited are settled on the way."""
        while self._waiting:
            client, handles = next(iter(self._waiting.items()))
            while handles and handles[0].job.should_stop():  # cancelled while waiting
                handle = handles.popleft()
                self._handles[id(handle.job)] = handle
                self._settle(handle.job)
            if handles:
                return handles[0]
            del self._waiting[client]
        return None

    def _take_waiting(self) -> JobHandle:
        """Take the head of the first client's queue; that client goes to the back."""
        client, handles = next(iter(self._waiting.items()))
        handle = handles.popleft()
        if handles:
            self._waiting.move_to_end(client)
        else:
            del self._waiting[client]
        return handle

    def _admit(self) -> None:
        """Move waiting jobs into the batch (one prefill for all of them) while rows fit,
        round-robin across clients."""
        while True:
            try:
                self._wait(self._inbox.get_nowait())
            except queue.Empty:
                break
        joining: list[Job] = []
        n_rows = len(self._batch.rows)
        while (head := self._next_waiting()) is not None:
            job = head.job
            if n_rows + len(job.rows) > self.max_rows and (n_rows or joining):
                break
            self._handles[id(job)] = self._take_waiting()
            joining.append(job)
            n_rows += len(job.rows)
        if not joining:
            return
        try:
            completed = self._batch.join(joining)
        except Exception as exc:  # e.g. out of memory: fail these jobs, keep serving
            log.exception("prefill failed")
            for job in joining:
                job.error = exc
            completed = self._batch.evict() + [j for j in joining if id(j) in self._handles]
        for job in completed:
            self._settle(job)

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while not self._stop.is_set():
                    try:
                        self._tick()
                    except Exception as exc:  # never die silently: fail what is in flight
                        log.exception("decode loop failed")
                        self._batch.close()
                        self._batch = DecodeBatch(self.lm, self._batch.stop_ids)
                        for handle in list(self._handles.values()):
                            handle.job.error = handle.job.error or exc
                            self._settle(handle.job)
                self._shutdown()
        finally:
            self._batch.close()  # the steering hooks leave the model with the thread

    def _tick(self) -> None:
        """Admit waiting jobs, then one decode step for every row in the batch."""
        self._admit()
        if not self._batch.rows:
            try:  # idle: block until a job arrives (or wake up to check _stop)
                self._wait(self._inbox.get(timeout=0.05))
            except queue.Empty:
                pass
            return
        completed = self._batch.evict()  # polls every job's cancel()
        try:
            completed += self._batch.step()
        except Exception as exc:  # a failed forward fails every job in it, not the loop
            log.exception("decode step failed")
            for r in self._batch.rows:
                r.job.error = exc
            completed += self._batch.evict()
        for job in completed:
            self._settle(job)

    def _shutdown(self) -> None:
        """Closing: everything still running or waiting ends as cancelled."""
        for r in self._batch.rows:
            r.job.cancelled = True
        for job in self._batch.evict():
            self._settle(job)
        for handle in [*self._waiting_handles(), *self._drain()]:
            handle.job.cancelled = True
            self._handles[id(handle.job)] = handle
            self._settle(handle.job)

    def _drain(self):
        while True:
            try:
                yield self._inbox.get_nowait()
            except queue.Empty:
                return
