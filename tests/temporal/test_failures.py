"""Cancellation, deadlines, retries and errors of runs on Temporal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import temporal_flows as f

import mai

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A side-effect ledger file the activities append to."""
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("MAI_TEST_LEDGER", str(path))
    return path


def read_lines(path: Path) -> list[str]:
    """The ledger's lines."""
    return path.read_text().splitlines()


def wait_for_line(path: Path, line: str, bound: float = 15.0) -> list[str]:
    """The ledger's lines once ``line`` is among them (a short real-time bound: a worker)."""
    until = time.monotonic() + bound
    while True:
        lines = path.read_text().splitlines()
        if line in lines or time.monotonic() > until:
            return lines
        time.sleep(0.05)


async def test_race_loser_activity_is_cancelled(rt: Any, ledger: Path) -> None:
    """A Race returns the winner and cancels the loser's running activity (no livelock)."""
    assert await (await rt.start(f.race, 7)).result() == 14
    assert "slow-end 1.1" in wait_for_line(ledger, "slow-end 1.1")


async def test_failing_parallel_sibling_cancels_the_others(rt: Any, ledger: Path) -> None:
    """A failing Parallel branch raises its own error and cancels the sibling's activity."""
    with pytest.raises(ValueError, match="boom 3"):
        await (await rt.start(f.failing_parallel, 3)).result()
    assert "slow-end 1.1" in wait_for_line(ledger, "slow-end 1.1")


async def test_composite_timeout_cancels_its_activity(rt: Any, ledger: Path) -> None:
    """A composite's timeout fires as a workflow timer, names the composite, cancels the leaf."""
    with pytest.raises(mai.DeadlineExceeded, match=r"'Sequential' \(step 1\) exceeded its timeout"):
        await (await rt.start(f.timeout_seq, 1)).result()
    assert "slow-end 1.2" in wait_for_line(ledger, "slow-end 1.2")


async def test_leaf_timeout(rt: Any) -> None:
    """A leaf's own timeout is enforced in the workflow and names the leaf."""
    with pytest.raises(TimeoutError, match="'slow'"):
        await (await rt.start(f.slow_leaf, 1)).result()


async def test_run_deadline(rt: Any) -> None:
    """A run's deadline bounds every step; the error is pymai's DeadlineExceeded."""
    with pytest.raises(mai.DeadlineExceeded):
        await (await rt.start(f.slow, 1, deadline=1.5, run_id="late")).result()
    info = await rt.get("late")
    assert info.status == mai.RunStatus.FAILED
    assert info.error["type"] == "DeadlineExceeded"


async def test_retries_keep_the_step_id_and_count_attempts(rt: Any, ledger: Path) -> None:
    """Retries run as new attempts of the same step: same id and key, retry_count 0, 1, 2."""
    assert await (await rt.start(f.retrying, 3, run_id="retry-run")).result() == 31
    flaky = [line for line in read_lines(ledger) if line.startswith("flaky")]
    assert flaky == [f"flaky 1.1 {n} retry-run/1.1" for n in range(3)]


async def test_retry_on_decides_what_is_retried(rt: Any, ledger: Path) -> None:
    """An error retry_on does not cover is not retried, and keeps its type."""
    with pytest.raises(KeyError):
        await (await rt.start(f.wrong_kind, 1)).result()
    assert read_lines(ledger) == ["wrong_kind 0"]


async def test_error_type_and_message_travel_back(rt: Any) -> None:
    """A failing step fails the run (not the workflow task) with its own type and message."""
    with pytest.raises(ValueError, match="boom 5") as caught:
        await (await rt.start(f.boom, 5, run_id="boom-run")).result()
    assert type(caught.value) is ValueError
    info = await rt.get("boom-run")
    assert info.status == mai.RunStatus.FAILED
    assert info.error == {"type": "ValueError", "message": "boom 5"}


async def test_cancel_a_run(rt: Any, ledger: Path) -> None:
    """Cancelling a run cancels the workflow and its running activity."""
    handle = await rt.start(f.slow, 1, run_id="to-cancel")
    wait_for_line(ledger, "slow-start 1")
    await rt.cancel("to-cancel")
    with pytest.raises(mai.RunCancelledError):
        await handle.result()
    assert (await rt.get("to-cancel")).status == mai.RunStatus.CANCELLED
    assert "slow-end 1" in wait_for_line(ledger, "slow-end 1")
