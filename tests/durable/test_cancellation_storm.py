"""Cancellation storm: a 10,000-branch fan-out hits its deadline inside a durable run."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
import trio

import mai

if TYPE_CHECKING:
    from pathlib import Path


@mai.module
async def numbers(n: int) -> list[int]:
    """The fan-out's input."""
    return list(range(n))


@mai.module
async def branch(i: int) -> int:
    """Even branches finish at once; odd ones would take far longer than the deadline."""
    if i % 2:
        await trio.sleep(30)
    return i


@mai.module(timeout=1.0)
async def guarded(items: list[int]) -> list[int]:
    """The fan-out under a 1 s deadline."""
    return await mai.Map(branch)(items)


async def test_ten_thousand_branches_hit_the_deadline_cleanly(tmp_path: Path) -> None:
    """No checkpoint after the deadline, no leaked tasks or threads, the error names it."""
    threads_before = threading.active_count()
    url = f"sqlite:///{tmp_path}/storm.db?synchronous=normal"
    async with mai.Runtime(url) as rt:
        handle = await rt.start((numbers >> guarded).with_(name="storm"), 10_000, run_id="storm")
        with trio.fail_after(120), pytest.raises(mai.DeadlineExceeded) as info:
            await handle.result()
        assert info.value.module_name == "guarded"
        assert "timeout of 1s" in str(info.value)
        info_run = await rt.get("storm")
        assert info_run.status == mai.RunStatus.FAILED
        assert "guarded" in info_run.error["message"]
        steps = await rt.steps("storm")
        branches = [s for s in steps if s.name == "branch"]
        # Only even branches (those that finish at once) were committed, odd ones never; and no
        # step was committed after the run's outcome was recorded (no checkpoint after the
        # cancellation). No wall-clock bound: how many even branches beat the deadline depends
        # on the machine's load.
        assert branches
        assert all(s.output % 2 == 0 for s in branches)
        assert len({s.step_id for s in branches}) == len(branches)
        assert max(s.finished_at for s in steps) <= info_run.record.updated_at
    # The store thread stopped; nothing else is left running.
    assert threading.active_count() <= threads_before
