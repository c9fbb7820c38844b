"""What a steering socket leaves behind once closed: nothing (no task, no buffer, no Redis
connection of its own), however many open and close."""

from __future__ import annotations

import asyncio
import gc

from asgiref.sync import async_to_sync

from tests.explorer.steering.helpers import connect

SOCKETS = 200
ROUNDS = 4


async def _open_and_close(n: int) -> None:
    comms = [await connect() for _ in range(n)]
    for comm in comms:
        await comm.disconnect(timeout=5)


def test_sockets_opened_and_closed_leave_no_objects_or_tasks_behind(redis_url):
    async def rounds() -> list[tuple[int, int]]:
        after = []
        for _ in range(1 + ROUNDS):  # the first round warms caches and pools up
            await _open_and_close(SOCKETS)
            await asyncio.sleep(0.1)
            gc.collect()
            after.append((len(gc.get_objects()), len(asyncio.all_tasks())))
        return after

    after = async_to_sync(rounds)()
    (objects, tasks), (objects_end, tasks_end) = after[0], after[-1]
    assert tasks_end == tasks, after
    # Before: a channel-layer buffer (a queue, an event and four deques) per socket stayed.
    assert objects_end - objects < SOCKETS, after
