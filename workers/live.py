"""Tasks for the live.<model> queues: streamed steered generation and CAA steering vectors.

A `steer` task does not wait for its generation. It hands the request to the process's one
`BatchScheduler` (the engine's continuous batching: every run of this process decodes in one
batch) and returns, so a worker with a single prefork child still takes the next request at
once and concurrent sessions share forward passes (DESIGN.md §5, "a Celery worker ... handing
requests to one scheduler thread per process"). Live tasks are acked early: a live request is
worth nothing once its client gave up, so a dead worker's request is never redelivered.

Per process (the `Runtime`, created on the first live task, never in the worker's parent):

- the resident model, its attached SAEs and one scheduler thread;
- ONE asyncio loop on a daemon thread (never `async_to_sync` per token) that appends every
  due run's frames to its replay list and publishes them on its pub/sub channel, all runs in
  one pipelined round trip per tick (explorer/steering/streams.py says why not channel-layer
  groups); refreshes heartbeats; hears cancels pushed on CANCEL_CHANNEL (and reads the flags
  every CANCEL_POLL_S in case one was missed), so a cancelled run stops before its next decode
  step (the decode thread only reads a local flag: no Redis on its path); and stores finished
  results, all those that finished meanwhile in one INSERT.

This process's GIL is shared with the decode loop, so the loop's work per run is kept small:
it is what limits how many concurrent sessions one worker serves (`make bench BENCH=steer`).

Frames of a run are numbered 1, 2, ... across both rows: coalesced deltas (at most one per row
per FLUSH_INTERVAL_S, the first at once), then `done` per row, or one `error`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from workers.celery import app, time_limits

log = logging.getLogger(__name__)

ROWS = ("default", "steered")
# Rows decoded together: 32 sessions (a default and a steered row each). Further requests wait
# in the scheduler's inbox for a free slot.
MAX_ROWS = 64


@dataclass
class Run:
    """One generation in this process: its streamed text waiting to be published."""

    run_id: str
    key: str
    request: dict[str, Any]
    model_source: str
    sae_source: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in ROWS})
    dirty: bool = False
    woken: bool = False
    seq: int = 0
    last_flush: float = 0.0
    cancelled: bool = False
    handle: Any = None
    finishing: bool = False
    lm: Any = None
    alternatives: dict[str, Any] = field(default_factory=dict)  # per row, as stored


class Runtime:
    """This worker process's live state: the resident model, its scheduler and the publisher
    loop. Created by the first live task (`runtime()`), in the prefork child."""

    def __init__(self) -> None:
        import redis
        from django.conf import settings

        self.redis_url = settings.REDIS_URL
        self.sync_redis = redis.Redis.from_url(self.redis_url)
        self.runs: dict[str, Run] = {}
        self.runs_lock = threading.Lock()
        self.db = ThreadPoolExecutor(1, thread_name_prefix="steer-db")
        self.model_source: str | None = None
        self.lm: Any = None
        self.saes: dict[str, Any] = {}
        self.vectors: dict[int, Any] = {}
        self.scheduler: Any = None
        self.load_lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), name="steer-publisher",
                         daemon=True).start()
        ready.wait()

    # -- the publisher loop (its own thread) ---------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._setup())
        ready.set()
        self.loop.run_forever()

    async def _setup(self) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(self.redis_url)
        self.wake = asyncio.Event()
        self.to_store: list[tuple[Run, Any]] = []
        self.storing = False
        for coro in (self._flusher(), self._heartbeats(), self._cancel_poller(),
                     self._cancel_listener()):
            self.loop.create_task(coro)

    def notify(self) -> None:
        self.loop.call_soon_threadsafe(self.wake.set)

    async def _flusher(self) -> None:
        from explorer.steering.streams import FLUSH_INTERVAL_S

        while True:
            timeout = FLUSH_INTERVAL_S
            now = time.monotonic()
            for run in list(self.runs.values()):
                if run.dirty:
                    timeout = min(timeout, max(0.0, run.last_flush + FLUSH_INTERVAL_S - now))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass
            self.wake.clear()
            now = time.monotonic()
            due = [r for r in list(self.runs.values())
                   if (r.dirty and now - r.last_flush >= FLUSH_INTERVAL_S)
                   or (r.handle is not None and r.handle.done() and not r.finishing)]
            if due:
                try:
                    await self._flush(due, now)
                except Exception:  # the loop must outlive any one tick
                    log.exception("publishing failed")

    async def _flush(self, runs: list[Run], now: float) -> None:
        """Publish the new text of `runs` (one message per run, both rows), then start the
        `done` of those whose generation has ended."""
        batch: list[tuple[Run, list[dict]]] = []
        ended: list[Run] = []
        for run in runs:
            # Read "finished" before taking the text: the last tokens are streamed before the
            # handle settles, so everything is in `pending` once it reads done (never after).
            if run.handle is not None and run.handle.done() and not run.finishing:
                run.finishing = True
                ended.append(run)
            with run.lock:
                texts = {r: "".join(run.pending[r]) for r in ROWS}
                for r in ROWS:
                    run.pending[r].clear()
                run.dirty = False
            run.last_flush = now
            if run.cancelled:
                continue  # superseded: its client has moved on, publish nothing more
            frames = []
            for row in ROWS:
                if texts[row]:
                    run.seq += 1
                    frames.append({"type": "delta", "row": row, "seq": run.seq,
                                   "text": texts[row]})
            if frames:
                batch.append((run, frames))
        if batch:
            try:
                await self._publish(batch)
            except Exception:  # Redis hiccup: these frames are lost; done carries the text
                log.exception("publishing %d runs failed", len(batch))
        for run in ended:
            self.loop.create_task(self._finish(run))

    async def _finish(self, run: Run) -> None:
        try:
            try:
                result = run.handle.result(0)
            except Exception as exc:  # the engine failed this request (e.g. out of memory)
                log.exception("run %s failed", run.run_id)
                await self.publish_error(run, f"generation failed: {exc}")
                return
            if result.cancelled:
                return
            from explorer.steering.streams import (
                alternatives_fields,
                result_id_for,
                row_alternatives,
            )

            # `done` first, the row right after: its id follows from the key, so the client
            # need not wait for the database (a permalink opened within those milliseconds
            # is the only thing that can miss it).
            frames = []
            run.alternatives = {row: row_alternatives(getattr(result, row).probs,
                                                      getattr(result, row).alternatives)
                                for row in ROWS}
            for row in ROWS:
                r = getattr(result, row)
                run.seq += 1
                frames.append({"type": "done", "row": row, "seq": run.seq, "text": r.text,
                               "tokens": run.lm.token_strings(r.tokens), "token_ids": r.tokens,
                               "result": result_id_for(run.key), **alternatives_fields(
                                   run.alternatives[row], run.lm.token_strings)})
            await self._publish([(run, frames)])
            self._forget(run)
            self.to_store.append((run, result))
            if not self.storing:  # else the running _store_pending takes it next
                self.storing = True
                self.loop.create_task(self._store_pending())
        except Exception:
            log.exception("finishing run %s failed", run.run_id)
        finally:
            self._forget(run)

    async def _store_pending(self) -> None:
        """Store every finished result waiting, in one transaction per batch, until none is
        left; then let identical requests be answered from the cache."""
        from explorer.steering.streams import RESULT_INDEX_TTL_S, result_key

        try:
            while self.to_store:
                batch, self.to_store = self.to_store, []
                try:
                    stored = await self.loop.run_in_executor(self.db, _store, batch)
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for (run, _), pk in zip(batch, stored, strict=True):
                            if pk is not None:
                                pipe.set(result_key(run.key), pk, ex=RESULT_INDEX_TTL_S)
                        await pipe.execute()
                except Exception:
                    log.exception("storing %d results failed", len(batch))
        finally:
            self.storing = False

    async def publish_error(self, run: Run, message: str) -> None:
        run.seq += 1
        await self._publish([(run, [{"type": "error", "seq": run.seq, "message": message}])])

    async def _publish(self, batch: list[tuple[Run, list[dict]]]) -> None:
        """Append each run's frames to its replay list, then publish them on its channel: one
        pipeline, one round trip for all runs. Each list has a run's frames before its
        subscribers can see them, so a consumer that notices a gap finds them there."""
        from explorer.steering.streams import REPLAY_TTL_S, frames_channel, replay_key

        pipe = self.redis.pipeline(transaction=False)
        for run, frames in batch:
            key = replay_key(run.run_id)
            encoded = [json.dumps(f) for f in frames]
            pipe.rpush(key, *encoded).expire(key, REPLAY_TTL_S)
            pipe.publish(frames_channel(run.run_id), "[" + ",".join(encoded) + "]")
        await pipe.execute()

    async def _heartbeats(self) -> None:
        from explorer.steering.streams import HEARTBEAT_EVERY_S, HEARTBEAT_TTL_S, heartbeat_key

        while True:
            runs = list(self.runs)
            if runs:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for run_id in runs:
                            pipe.set(heartbeat_key(run_id), b"1", px=int(HEARTBEAT_TTL_S * 1000))
                        await pipe.execute()
                except Exception:
                    log.exception("heartbeat failed")
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    async def _cancel_listener(self) -> None:
        """Cancels pushed by consumers (a run id per message): stop those runs of ours."""
        from explorer.steering.streams import CANCEL_CHANNEL

        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        while True:
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the poller still reads the flags
                log.exception("listening for cancels failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is not None and message.get("type") == "message":
                run = self.runs.get(message["data"].decode())
                if run is not None:
                    run.cancelled = True

    async def _cancel_poller(self) -> None:
        from explorer.steering.streams import CANCEL_POLL_S, cancel_key

        while True:
            runs = [r for r in list(self.runs.values()) if not r.cancelled]
            if runs:
                try:
                    flags = await self.redis.mget([cancel_key(r.run_id) for r in runs])
                except Exception:
                    log.exception("reading cancel flags failed")
                    flags = []
                for run, flag in zip(runs, flags, strict=False):
                    if flag is not None:
                        run.cancelled = True
            await asyncio.sleep(CANCEL_POLL_S)

    # -- runs (called from the task thread and the decode thread) -------------------------

    def _forget(self, run: Run) -> None:
        with self.runs_lock:
            self.runs.pop(run.run_id, None)

    def start(self, payload: dict[str, Any]) -> None:
        """Register a run, load what it needs, hand it to the scheduler. Never waits for it."""
        from explorer.steering.streams import HEARTBEAT_TTL_S, cancel_key, heartbeat_key

        run = Run(run_id=payload["run"], key=payload["key"], request=payload["request"],
                  model_source=payload["model_source"], sae_source=payload["sae_source"])
        pipe = self.sync_redis.pipeline(transaction=False)
        pipe.exists(cancel_key(run.run_id))
        pipe.set(heartbeat_key(run.run_id), b"1", px=int(HEARTBEAT_TTL_S * 1000))
        if pipe.execute()[0]:  # superseded while it waited in the queue
            self.sync_redis.delete(heartbeat_key(run.run_id))
            return
        with self.runs_lock:
            self.runs[run.run_id] = run
        try:
            att, job = self._prepare(run)
        except Exception as exc:
            if not isinstance(exc, ValueError):
                log.exception("preparing run %s failed", run.run_id)
            self._fail(run, str(exc))
            return
        run.lm = att.lm
        run.handle = self.scheduler.submit(job)

    def _fail(self, run: Run, message: str) -> None:
        async def fail() -> None:
            try:
                await self.publish_error(run, message)
            finally:
                self._forget(run)

        asyncio.run_coroutine_threadsafe(fail(), self.loop).result(10)

    def _prepare(self, run: Run) -> tuple[Any, Any]:
        from workers.engine.generation import prepare_job
        from workers.engine.interventions import Intervention, SteerSpec

        att = self._attached(run.model_source, run.sae_source)
        req = run.request
        spec = SteerSpec(
            interventions=tuple(Intervention(feature=f["index"], strength=f["strength"],
                                             mode=f["mode"]) for f in req["features"]),
            positions=req["positions"], temperature=req["temperature"], top_p=req["top_p"],
            seed=req["seed"], max_new_tokens=req["max_new_tokens"])

        def on_token(row: str, _token: int, text: str) -> None:
            with run.lock:
                run.pending[row].append(text)
                # Wake the publisher for the steered row's first text only (time to first
                # token; the default row's first token was emitted just before it, in the same
                # step); later text waits for its regular tick, so many runs cost one wake-up
                # per tick.
                wake = row == "steered" and bool(text) and run.last_flush == 0.0 \
                    and not run.woken
                run.woken = run.woken or wake
                run.dirty = run.dirty or bool(text)
            if wake:
                self.notify()

        job = prepare_job(att, req["prompt"], spec, on_token=on_token,
                          cancel=lambda: run.cancelled)
        finish = job.finish

        def finish_and_wake(outputs: dict, cancelled: bool) -> Any:
            result = finish(outputs, cancelled)
            self.notify()  # publish `done` now rather than at the next flush tick
            return result

        job.finish = finish_and_wake
        if req.get("vectors"):
            self._add_vectors(att, job, spec, req["vectors"])
        return att, job

    def _add_vectors(self, att: Any, job: Any, spec: Any, terms: list[dict]) -> None:
        """Steering vectors add `strength · v` at the SAE's hook, in the steered row's plan."""
        import torch

        from workers.engine.interventions import compile_plan

        dirs = att.decoder_directions  # [d_sae, d]
        total = torch.zeros(dirs.shape[1], dtype=dirs.dtype, device=dirs.device)  # [d]
        for t in terms:
            total += t["strength"] * self._vector(t["vector"], dirs)
        if not torch.any(total != 0):
            return
        row = next(r for r in job.rows if r.label == "steered")
        plan = row.plan if row.plan is not None else compile_plan(att, (), spec.positions)
        plan.add = total if plan.add is None else plan.add + total
        row.plan = plan

    def _vector(self, vector_id: int, like: Any) -> Any:
        import torch

        from explorer.steering.models import SteeringVector

        if vector_id not in self.vectors:
            values = SteeringVector.objects.values_list("vector", flat=True).get(pk=vector_id)
            self.vectors[vector_id] = torch.tensor(values, dtype=like.dtype, device=like.device)
        return self.vectors[vector_id]

    def _attached(self, model_source: str, sae_source: str) -> Any:
        """The resident model (one per process) with the SAE `sae_source` attached, each
        loaded once (sources as stored on LanguageModel/SAE: "demo", a path or a hub id)."""
        with self.load_lock:
            if self.lm is not None and self.model_source == model_source \
                    and sae_source in self.saes:
                return self.saes[sae_source]
            from workers.engine.batching import BatchScheduler
            from workers.engine.loading import attach_sae, load_model, load_sae

            if self.lm is None or self.model_source != model_source:
                if self.scheduler is not None:
                    self.scheduler.close()
                self.saes.clear()
                self.vectors.clear()
                self.lm = load_model(model_source)
                self.model_source = model_source
                self.scheduler = BatchScheduler(self.lm, max_rows=MAX_ROWS)
            att = attach_sae(self.lm, load_sae(sae_source))
            self.saes[sae_source] = att
            return att


def _store(batch: list[tuple[Run, Any]]) -> list[str | None]:
    """Write finished results on the runtime's database thread (all in one INSERT); their
    permalink ids, None for one whose model or SAE is gone. The connection is kept between
    stores (a new one costs milliseconds) and replaced only after it failed."""
    from django.db import DatabaseError, connection

    from explorer.steering.services import steering_results_store

    def store() -> list[str | None]:
        return steering_results_store([{
            "key": run.key, "request": run.request,
            "default_text": result.default.text, "default_tokens": result.default.tokens,
            "steered_text": result.steered.text, "steered_tokens": result.steered.tokens,
            "alternatives": run.alternatives,
        } for run, result in batch])

    try:
        return store()
    except DatabaseError:  # e.g. the server restarted: one retry on a fresh connection
        connection.close()
        return store()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


@app.task(name="workers.live.steer", acks_late=False, ignore_result=True, **time_limits("live"))
def steer(payload: dict[str, Any]) -> None:
    """Start one streamed generation: {"run", "key", "request", "model_source", "sae_source"}
    (SteerRequest.payload in explorer/steering/selectors.py). Returns at once."""
    runtime().start(payload)


@app.task(name="workers.live.build_vector", acks_late=False, ignore_result=True,
          **time_limits("live"))
def build_vector(vector_id: int) -> None:
    """Build a pending CAA SteeringVector from its contrast pairs and decompose it into the
    SAE's features; a missing row is logged and skipped."""
    from explorer.steering.models import SteeringVector
    from explorer.steering.services import steering_vector_fail, steering_vector_finish

    try:
        vec = SteeringVector.objects.select_related("sae__model").get(pk=vector_id)
    except SteeringVector.DoesNotExist:
        log.warning("steering vector %s is gone; nothing to build", vector_id)
        return
    try:
        from workers.engine.caa import caa_vector, decompose

        att = runtime()._attached(vec.sae.model.source, vec.sae.source)
        triples = [(p["prompt"], p["positive"], p["negative"]) for p in vec.pairs]
        v = caa_vector(att.lm, att.hook_name, triples, prepend_bos=att.preprocessing.prepend_bos)
        parts = decompose(att, v, k=10)
    except ValueError as exc:
        steering_vector_fail(vector_id=vector_id, error=str(exc))
        return
    except Exception as exc:
        log.exception("building steering vector %s failed", vector_id)
        steering_vector_fail(vector_id=vector_id, error=f"internal error: {exc}")
        raise
    features = [{"index": i, "cosine": round(c, 6), "weight": round(w, 6)}
                for i, c, w in zip(parts.features, parts.cosines, parts.weights, strict=True)]
    steering_vector_finish(vector_id=vector_id, vector=[float(x) for x in v.tolist()],
                           features=features, residual_fraction=parts.residual_fraction)
