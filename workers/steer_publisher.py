"""The live worker's publisher: a run's frames, heartbeats and cancels, over Redis only.

ONE asyncio loop per worker process, on a daemon thread (never `async_to_sync` per token):

- appends every due run's frames to its replay list and publishes them on its pub/sub channel,
  all runs in one pipelined round trip per tick (explorer/steering/streams.py says why not
  channel-layer groups);
- refreshes the heartbeats of the runs it holds;
- hears cancels pushed on CANCEL_CHANNEL (and reads the flags every CANCEL_POLL_S in case one
  was missed), so a cancelled run stops before its next decode step (the decode thread only
  reads the run's local flag: no Redis on its path);
- hands finished generations to a `store` callback on a database thread, all that finished
  meanwhile in one call, then indexes their keys so identical requests hit the cache.

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from explorer.core import outages
from explorer.steering.streams import (
    CANCEL_CHANNEL,
    CANCEL_POLL_S,
    FLUSH_INTERVAL_S,
    HEARTBEAT_EVERY_S,
    HEARTBEAT_TTL_S,
    REPLAY_TTL_S,
    RESULT_INDEX_TTL_S,
    alternatives_fields,
    cancel_key,
    frames_channel,
    heartbeat_key,
    replay_key,
    result_id_for,
    result_key,
    row_alternatives,
)

log = logging.getLogger(__name__)


def _failed(what: str, exc: Exception) -> None:
    """Log a failure: one line per outage of Redis or PostgreSQL (explorer/core/outages.py),
    however many ticks it lasts; a traceback for anything else. Call it in the except block."""
    service = outages.service_of(exc)
    if service is None:
        log.exception("%s failed", what)
    else:
        outages.tracker.down(service, exc)


ROWS = ("default", "steered")


@dataclass
class Run:
    """One generation in this process: its streamed text waiting to be published.

    `handle` is the engine's future of the GenerationResult; `token_strings(ids)` names tokens
    for the `done` frames; `context` is whatever the store callback needs about the run."""

    run_id: str
    key: str
    context: Any = None
    token_strings: Callable[[list[int]], list[str]] | None = None
    handle: Future | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in ROWS})
    dirty: bool = False
    woken: bool = False
    seq: int = 0
    last_flush: float = 0.0
    cancelled: bool = False
    finishing: bool = False
    alternatives: dict[str, Any] = field(default_factory=dict)  # per row, as stored

    def on_token(self, row: str, _token: int, text: str) -> bool:
        """Queue a row's new text (decode thread). True when the publisher should wake now:
        for the steered row's first text only (time to first token; the default row's first
        token came just before it, in the same step); later text waits for its regular tick,
        so many runs cost one wake-up per tick."""
        with self.lock:
            self.pending[row].append(text)
            wake = row == "steered" and bool(text) and self.last_flush == 0.0 and not self.woken
            self.woken = self.woken or wake
            self.dirty = self.dirty or bool(text)
        return wake

    def take_deltas(self, now: float) -> list[dict]:
        """Take the text queued since the last flush (publisher loop): one numbered `delta`
        frame per row with new text, none once the run is cancelled (superseded: its client
        has moved on, publish nothing more)."""
        with self.lock:
            texts = {r: "".join(self.pending[r]) for r in ROWS}
            for r in ROWS:
                self.pending[r].clear()
            self.dirty = False
        self.last_flush = now
        if self.cancelled:
            return []
        frames = []
        for row in ROWS:
            if texts[row]:
                self.seq += 1
                frames.append({"type": "delta", "row": row, "seq": self.seq, "text": texts[row]})
        return frames


# Stores finished (run, GenerationResult) pairs; returns each one's permalink id or None.
StoreFn = Callable[[list[tuple[Run, Any]]], list[str | None]]


class Publisher:
    """This process's publisher loop and the runs it holds. `store` runs on a database
    thread of its own."""

    def __init__(self, redis_url: str, store: StoreFn) -> None:
        self.redis_url = redis_url
        self.store = store
        self.sync_redis = redis.Redis.from_url(redis_url)
        self.runs: dict[str, Run] = {}
        self.runs_lock = threading.Lock()
        self.db = ThreadPoolExecutor(1, thread_name_prefix="steer-db")
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(
            target=self._serve, args=(ready,), name="steer-publisher", daemon=True
        ).start()
        ready.wait()

    # -- runs (called from the task thread and the decode thread) ---------------------------

    def open(self, run: Run) -> bool:
        """Hold `run` and start its heartbeat. False when it was cancelled while it waited in
        the queue (superseded): nothing more is to be done for it."""
        pipe = self.sync_redis.pipeline(transaction=False)
        pipe.exists(cancel_key(run.run_id))
        pipe.set(heartbeat_key(run.run_id), b"1", px=int(HEARTBEAT_TTL_S * 1000))
        if pipe.execute()[0]:
            self.sync_redis.delete(heartbeat_key(run.run_id))
            return False
        with self.runs_lock:
            self.runs[run.run_id] = run
        return True

    def fail(self, run: Run, message: str) -> None:
        """Publish an `error` frame for `run` and let it go (waits for the publish)."""

        async def fail() -> None:
            try:
                await self._publish_error(run, message)
            finally:
                self._forget(run)

        asyncio.run_coroutine_threadsafe(fail(), self.loop).result(10)

    def notify(self) -> None:
        """Wake the loop now (a first token to publish, or a generation that ended)."""
        self.loop.call_soon_threadsafe(self.wake.set)

    def _forget(self, run: Run) -> None:
        with self.runs_lock:
            self.runs.pop(run.run_id, None)

    # -- the loop (its own thread) ------------------------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._setup())
        ready.set()
        self.loop.run_forever()

    async def _setup(self) -> None:
        self.redis = redis.asyncio.Redis.from_url(self.redis_url)
        self.wake = asyncio.Event()
        self.to_store: list[tuple[Run, Any]] = []
        self.storing = False
        for coro in (
            self._flusher(),
            self._heartbeats(),
            self._cancel_poller(),
            self._cancel_listener(),
        ):
            self.loop.create_task(coro)

    async def _flusher(self) -> None:
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
            due = [
                r
                for r in list(self.runs.values())
                if (r.dirty and now - r.last_flush >= FLUSH_INTERVAL_S)
                or (r.handle is not None and r.handle.done() and not r.finishing)
            ]
            if due:
                try:
                    await self._flush(due, now)
                except Exception as exc:  # noqa: BLE001 - the loop outlives any tick
                    _failed("publishing", exc)

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
            if frames := run.take_deltas(now):
                batch.append((run, frames))
        if batch:
            try:
                await self._publish(batch)
            except Exception as exc:  # noqa: BLE001 - lost frames: done has the text
                _failed(f"publishing {len(batch)} runs", exc)
        for run in ended:
            self.loop.create_task(self._finish(run))

    async def _finish(self, run: Run) -> None:
        try:
            try:
                result = run.handle.result(0)
            except Exception as exc:  # the engine failed this request (e.g. out of memory)
                log.exception("run %s failed", run.run_id)
                await self._publish_error(run, f"generation failed: {exc}")
                return
            if result.cancelled:
                return
            # `done` first, the row right after: its id follows from the key, so the client
            # need not wait for the database (a permalink opened within those milliseconds
            # is the only thing that can miss it).
            frames = []
            run.alternatives = {
                row: row_alternatives(getattr(result, row).probs, getattr(result, row).alternatives)
                for row in ROWS
            }
            for row in ROWS:
                r = getattr(result, row)
                run.seq += 1
                frames.append(
                    {
                        "type": "done",
                        "row": row,
                        "seq": run.seq,
                        "text": r.text,
                        "tokens": run.token_strings(r.tokens),
                        "token_ids": r.tokens,
                        "result": result_id_for(run.key),
                        **alternatives_fields(run.alternatives[row], run.token_strings),
                    }
                )
            await self._publish([(run, frames)])
            self._forget(run)
            self.to_store.append((run, result))
            if not self.storing:  # else the running _store_pending takes it next
                self.storing = True
                self.loop.create_task(self._store_pending())
        except Exception as exc:  # noqa: BLE001 - logged by _failed
            _failed(f"finishing run {run.run_id}", exc)
        finally:
            self._forget(run)

    async def _store_pending(self) -> None:
        """Store every finished result waiting, one batch at a time, until none is left; then
        let identical requests be answered from the cache."""
        try:
            while self.to_store:
                batch, self.to_store = self.to_store, []
                try:
                    stored = await self.loop.run_in_executor(self.db, self.store, batch)
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for (run, _), pk in zip(batch, stored, strict=True):
                            if pk is not None:
                                pipe.set(result_key(run.key), pk, ex=RESULT_INDEX_TTL_S)
                        await pipe.execute()
                except Exception as exc:  # noqa: BLE001 - logged by _failed
                    _failed(f"storing {len(batch)} results", exc)
        finally:
            self.storing = False

    async def _publish_error(self, run: Run, message: str) -> None:
        run.seq += 1
        await self._publish([(run, [{"type": "error", "seq": run.seq, "message": message}])])

    async def _publish(self, batch: list[tuple[Run, list[dict]]]) -> None:
        """Append each run's frames to its replay list, then publish them on its channel: one
        pipeline, one round trip for all runs. Each list has a run's frames before its
        subscribers can see them, so a consumer that notices a gap finds them there."""
        pipe = self.redis.pipeline(transaction=False)
        for run, frames in batch:
            key = replay_key(run.run_id)
            encoded = [json.dumps(f) for f in frames]
            pipe.rpush(key, *encoded).expire(key, REPLAY_TTL_S)
            pipe.publish(frames_channel(run.run_id), "[" + ",".join(encoded) + "]")
        await pipe.execute()

    async def _heartbeats(self) -> None:
        while True:
            runs = list(self.runs)
            if runs:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for run_id in runs:
                            pipe.set(heartbeat_key(run_id), b"1", px=int(HEARTBEAT_TTL_S * 1000))
                        await pipe.execute()
                    outages.tracker.up(outages.REDIS)  # logs only after an outage
                except Exception as exc:  # noqa: BLE001 - logged by _failed
                    _failed("heartbeat", exc)
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    async def _cancel_listener(self) -> None:
        """Cancels pushed by consumers (a run id per message): stop those runs of ours."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        while True:
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller reads the flags too
                _failed("listening for cancels", exc)
                await asyncio.sleep(0.5)
                continue
            if message is not None and message.get("type") == "message":
                run = self.runs.get(message["data"].decode())
                if run is not None:
                    run.cancelled = True

    async def _cancel_poller(self) -> None:
        while True:
            runs = [r for r in list(self.runs.values()) if not r.cancelled]
            if runs:
                try:
                    flags = await self.redis.mget([cancel_key(r.run_id) for r in runs])
                except Exception as exc:  # noqa: BLE001 - logged by _failed
                    _failed("reading cancel flags", exc)
                    flags = []
                for run, flag in zip(runs, flags, strict=False):
                    if flag is not None:
                        run.cancelled = True
            await asyncio.sleep(CANCEL_POLL_S)
