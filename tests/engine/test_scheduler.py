"""The scheduler thread: many requests share one decode loop; each ends on its own terms."""

from __future__ import annotations

import threading

import pytest
import torch

from workers.engine.generation import generate, submit
from workers.engine.hooks import active_hook_count
from workers.engine.interventions import Intervention, SteerSpec
from workers.engine.scheduler import BatchScheduler


def test_concurrent_requests_through_the_scheduler_match_generate_alone(tiny_att):
    specs = [
        SteerSpec((Intervention(5, 8.0),), max_new_tokens=9),
        SteerSpec((Intervention(7, 3.0, "clamp"),), positions="generated", max_new_tokens=5),
        SteerSpec((Intervention(1, 0.0, "ablate"),), temperature=1.0, seed=4, max_new_tokens=7),
    ]
    prompts = ["The cat sat", "A quick brown fox jumps", "She said"]
    with BatchScheduler(tiny_att.lm) as scheduler:
        handles = [submit(scheduler, tiny_att, p, s) for p, s in zip(prompts, specs, strict=True)]
        results = [h.result(timeout=60) for h in handles]
    for p, s, r in zip(prompts, specs, results, strict=True):
        expected = generate(tiny_att, p, s)
        assert (r.default, r.steered) == (expected.default, expected.steered)
    assert active_hook_count(tiny_att.lm) == 0


def test_an_idle_scheduler_leaves_other_forward_passes_untouched(tiny_att):
    lm = tiny_att.lm
    ids = lm.encode("The cat sat")[None]
    with torch.no_grad():
        clean = lm.model(ids).logits
    with BatchScheduler(lm) as scheduler:
        submit(scheduler, tiny_att, "A dog", SteerSpec((Intervention(5, 50.0),))).result(60)
        assert active_hook_count(lm) == 1  # its dispatcher stays registered while it runs
        with torch.no_grad():
            torch.testing.assert_close(lm.model(ids).logits, clean, rtol=0, atol=0)
    assert active_hook_count(lm) == 0


def test_a_cancelled_request_stops_and_the_others_finish(tiny_att):
    started = threading.Event()
    with BatchScheduler(tiny_att.lm) as scheduler:
        long = submit(
            scheduler,
            tiny_att,
            "The cat",
            SteerSpec(max_new_tokens=50),
            on_token=lambda *a: started.set(),
        )
        short = submit(scheduler, tiny_att, "A dog", SteerSpec(max_new_tokens=6))
        assert started.wait(30)
        long.cancel()
        cancelled = long.result(timeout=60)
        done = short.result(timeout=60)
    assert cancelled.cancelled and len(cancelled.default.tokens) < 50
    expected = generate(tiny_att, "A dog", SteerSpec(max_new_tokens=6))
    assert not done.cancelled and done.default == expected.default


def test_a_failing_token_callback_fails_only_its_own_request(tiny_att):
    def broken(row, tok, text):
        raise RuntimeError("socket closed")

    with BatchScheduler(tiny_att.lm) as scheduler:
        bad = submit(scheduler, tiny_att, "The cat", SteerSpec(max_new_tokens=8), on_token=broken)
        good = submit(scheduler, tiny_att, "The cat", SteerSpec(max_new_tokens=8))
        with pytest.raises(RuntimeError, match="socket closed"):
            bad.result(timeout=60)
        assert len(good.result(timeout=60).default.tokens) == 8


def test_bad_input_is_refused_at_submit_before_it_reaches_the_batch(tiny_att):
    with BatchScheduler(tiny_att.lm) as scheduler, pytest.raises(ValueError, match="d_sae=64"):
        submit(scheduler, tiny_att, "The cat", SteerSpec((Intervention(99, 1.0),)))


def test_closing_the_scheduler_ends_unfinished_requests_as_cancelled(tiny_att):
    scheduler = BatchScheduler(tiny_att.lm)
    handle = submit(
        scheduler, tiny_att, "The cat", SteerSpec(max_new_tokens=50), cancel=lambda: False
    )
    scheduler.close()
    result = handle.result(timeout=30)  # settled, never left hanging
    assert result.cancelled or len(result.default.tokens) == 50
    with pytest.raises(RuntimeError, match="closed"):
        submit(scheduler, tiny_att, "The cat", SteerSpec())


def _admission_order(tiny_att, clients: list[str | None], max_rows: int = 2) -> list[int]:
    """Submit one job per entry of `clients` (in that order) while a gate job holds the batch,
    then record the order in which they are admitted (their first token, sampled at prefill).
    With max_rows=2 one two-row job runs at a time, so admission order is exact."""
    from workers.engine.generation import prepare_job

    gate_open = threading.Event()
    admitted: list[int] = []

    def hold(*_):
        assert gate_open.wait(30)

    def first_token(k: int):
        def on_token(row, _tok, _text):
            if row == "default" and k not in admitted:
                admitted.append(k)

        return on_token

    with BatchScheduler(tiny_att.lm, max_rows=max_rows) as scheduler:
        gate = scheduler.submit(
            prepare_job(tiny_att, "The gate", SteerSpec(max_new_tokens=2), on_token=hold)
        )
        handles = [
            scheduler.submit(
                prepare_job(
                    tiny_att,
                    f"Request {k}",
                    SteerSpec(max_new_tokens=2),
                    on_token=first_token(k),
                    client=client,
                )
            )
            for k, client in enumerate(clients)
        ]
        gate_open.set()
        gate.result(timeout=60)
        for h in handles:
            h.result(timeout=60)
    return admitted


def test_waiting_jobs_are_admitted_round_robin_across_clients(tiny_att):
    # a floods first, b and c arrive behind its backlog
    clients = ["a", "a", "a", "a", "b", "b", "c"]
    order = _admission_order(tiny_att, clients)
    assert [clients[k] for k in order] == ["a", "b", "c", "a", "b", "a", "a"]
    assert order == [0, 4, 6, 1, 5, 2, 3]  # each client's own jobs stay in order


def test_a_flooding_client_delays_another_by_at_most_one_of_its_jobs(tiny_att):
    clients = ["flood"] * 12 + ["polite"]
    order = _admission_order(tiny_att, clients)
    assert order.index(12) == 1


def test_jobs_without_a_client_are_admitted_first_come(tiny_att):
    order = _admission_order(tiny_att, [None] * 5)
    assert order == [0, 1, 2, 3, 4]


def test_a_job_cancelled_while_waiting_is_settled_without_being_admitted(tiny_att):
    from workers.engine.generation import prepare_job

    gate_open = threading.Event()
    with BatchScheduler(tiny_att.lm, max_rows=2) as scheduler:
        gate = scheduler.submit(
            prepare_job(
                tiny_att,
                "The gate",
                SteerSpec(max_new_tokens=2),
                on_token=lambda *_: gate_open.wait(30),
            )
        )
        tokens: list[str] = []
        waiting = scheduler.submit(
            prepare_job(
                tiny_att,
                "Never",
                SteerSpec(max_new_tokens=2),
                on_token=lambda row, *_: tokens.append(row),
                client="a",
            )
        )
        after = submit(scheduler, tiny_att, "After", SteerSpec(max_new_tokens=2), client="b")
        waiting.cancel()
        gate_open.set()
        gate.result(timeout=60)
        result = waiting.result(timeout=60)
        assert len(after.result(timeout=60).default.tokens) == 2
    assert result.cancelled and tokens == []
