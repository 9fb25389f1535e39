"""Durable runs on virtual time: week-long timers and millisecond deadlines, tested at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import mai
import mai.testing

if TYPE_CHECKING:
    from pathlib import Path

WEEK = 7 * 24 * 3600.0


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind."""
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path}/virtual.db"


@mai.module
async def remind(note: str) -> float:
    """Sleep durably for a week; return how long mai.now() says it slept."""
    before = mai.now()
    await mai.sleep(7 * 24 * 3600)  # a week, recorded as a durable timer
    return mai.now() - before


async def test_reminder(autojump_clock):
    """A week-long reminder returns at once on virtual time (the example of docs/durability)."""
    async with mai.testing.virtual_runtime("memory://") as rt:  # or sqlite:///...
        handle = await rt.start(remind, "pay the rent")
        assert await handle.result() >= 7 * 24 * 3600  # returns at once


class _Stop(Exception):
    """Leaves a runtime block abruptly (its runs are handed back, resumable)."""


async def test_a_restart_on_virtual_time(tmp_path, autojump_clock):
    """A second runtime on the same file resumes a week-long sleep where the first left it."""
    url = f"sqlite:///{tmp_path}/restart.db"

    async def stopped_after_three_days() -> None:
        async with mai.testing.virtual_runtime(url) as first:
            await first.start(remind, "pay the rent", run_id="rent")
            await trio.sleep(3 * 24 * 3600)
            raise _Stop  # the first process stops in the middle of the week

    with pytest.raises(_Stop):
        await stopped_after_three_days()
    async with mai.testing.virtual_runtime(url, workflows=[remind]) as second:
        started = trio.current_time()
        (handle,) = await second.recover()
        assert await handle.result() >= 7 * 24 * 3600
        waited = trio.current_time() - started
    assert waited == pytest.approx(4 * 24 * 3600, abs=1)  # only what was left of the week


async def test_a_week_long_durable_sleep_on_virtual_time(
    url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A week-long mai.sleep completes on virtual time; mai.now() and the timer agree."""
    async with mai.testing.virtual_runtime(url) as rt:  # lease: an hour (168 renewals)
        handle = await rt.start(remind, "rent", run_id="week")
        slept = await handle.result()
        (timer,) = [s for s in await rt.steps("week") if s.kind == "timer"]
        info = await rt.get("week")
    assert WEEK <= slept < WEEK + 60
    assert timer.output - timer.started_at == pytest.approx(WEEK)
    assert info.status == mai.RunStatus.SUCCEEDED
    assert info.attempts == 1  # a week of heartbeats on the same clock: the lease never lapsed


@mai.module
async def slow(x: int) -> int:
    """Takes a (durable) second."""
    await mai.sleep(1.0)
    return x


async def test_a_millisecond_run_deadline_on_virtual_time(
    url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A run deadline of 5 ms fails the run with DeadlineExceeded, recorded FAILED."""
    async with mai.testing.virtual_runtime(url) as rt:
        handle = await rt.start(slow, 1, run_id="ms", deadline=0.005)
        with pytest.raises(mai.DeadlineExceeded):
            await handle.result()
        info = await rt.get("ms")
    assert info.status == mai.RunStatus.FAILED
    assert "DeadlineExceeded" in info.error["type"]


async def test_virtual_runtime_needs_a_mock_clock() -> None:
    """Without a MockClock driving the run, virtual_runtime says what it needs."""
    with pytest.raises(mai.ConfigError, match="MockClock"):
        mai.testing.virtual_runtime()
