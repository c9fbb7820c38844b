"""The embedded supervisor's restarts: back-off while a child dies young, and giving up."""

from __future__ import annotations

import sys

import pytest

from explorer.core.supervisor import Child, ChildFailed, RestartPolicy, Supervisor
from tests.helpers import wait_until

POLICY = RestartPolicy(first=1.0, most=4.0, stable=60.0, give_up=4)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _exits_at_once(name: str = "worker", policy: RestartPolicy | None = POLICY) -> Child:
    return Child(name, [sys.executable, "-c", "raise SystemExit(3)"], {}, restart=policy)


def _tend_until_said(supervisor: Supervisor, said: list[str], count: int) -> None:
    def enough() -> bool:
        supervisor.tend(said.append)
        return len(said) >= count

    wait_until(enough, timeout=20, interval=0.05, message=lambda: f"said only {said}")


def test_the_back_off_doubles_up_to_its_most():
    assert [POLICY.delay(n) for n in range(6)] == [1.0, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_an_exited_child_is_restarted_after_its_back_off_and_it_is_said():
    clock, said = Clock(), []
    supervisor = Supervisor(clock=clock)
    child = supervisor.start(_exits_at_once())
    first_pid = child.pid
    try:
        _tend_until_said(supervisor, said, 1)
        assert said == [f"worker (pid {first_pid}) exited with code 3; restarting in 1s."]
        supervisor.tend(said.append)
        assert len(said) == 1, "not before its back-off is over"

        clock.now += 1.0
        supervisor.tend(said.append)

        assert said[1] == f"worker restarted (pid {child.pid})."
        assert child.pid != first_pid
    finally:
        supervisor.stop_all(1)


def test_a_child_dying_young_again_waits_longer_and_one_that_ran_long_starts_afresh():
    clock, said = Clock(), []
    supervisor = Supervisor(clock=clock)
    supervisor.start(_exits_at_once())
    try:
        _tend_until_said(supervisor, said, 1)  # died young: 1 s
        clock.now += 1.0
        _tend_until_said(supervisor, said, 3)  # restarted, died young again: 2 s
        assert said[2].endswith("restarting in 2s.")

        clock.now += 2.0
        supervisor.tend(said.append)  # restarted at t
        clock.now += 61.0  # ... and "ran" past `stable` before it exited
        _tend_until_said(supervisor, said, 5)

        assert said[4].endswith("restarting in 1s.")
    finally:
        supervisor.stop_all(1)


def test_a_child_that_keeps_dying_young_stops_the_supervisor():
    clock, said = Clock(), []
    supervisor = Supervisor(clock=clock)
    supervisor.start(_exits_at_once())
    try:

        def tend_and_wait() -> bool:
            supervisor.tend(said.append)
            clock.now += 0.5  # back-offs pass quickly; each life stays well under `stable`
            return False

        with pytest.raises(ChildFailed, match="within 60s of its start 4 times in a row"):
            wait_until(tend_and_wait, timeout=30, interval=0.05)
        assert sum("restarting" in line for line in said) == 3
    finally:
        supervisor.stop_all(1)


def test_a_child_without_a_restart_policy_stops_the_supervisor_at_its_first_exit():
    supervisor = Supervisor()
    supervisor.start(_exits_at_once("web", policy=None))
    try:
        with pytest.raises(ChildFailed, match="web exited with code 3; stopping everything"):
            wait_until(lambda: supervisor.tend(print) and False, timeout=20, interval=0.05)
    finally:
        supervisor.stop_all(1)
