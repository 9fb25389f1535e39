"""history() and retry() mean on Temporal what they mean on the durable runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import temporal_flows as f

import mai

if TYPE_CHECKING:
    from pathlib import Path


async def test_retry_keeps_completed_steps_and_history_keeps_the_failure(
    rt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run retried after its cause is fixed: done steps replay, the failure is history."""
    ledger, gate = tmp_path / "ledger.txt", tmp_path / "gate"
    monkeypatch.setenv("MAI_TEST_LEDGER", str(ledger))
    monkeypatch.setenv("MAI_TEST_GATE", str(gate))
    handle = await rt.start(f.gated, 4, run_id="gated")
    with pytest.raises(ValueError, match="gate closed at 5"):
        await handle.result()
    assert await rt.history("gated") == []
    gate.touch()  # the cause is fixed
    again = await rt.retry("gated")
    assert await again.result() == 15
    assert ledger.read_text().splitlines() == ["noted 1.1"]  # the completed step was not rerun
    (earlier,) = await rt.history("gated")
    assert earlier["status"] == "FAILED"
    assert earlier["output"] is None
    assert earlier["error"]["type"].endswith("ValueError")
    assert earlier["error"]["message"] == "gate closed at 5"
    assert earlier["finished_at"] > 0
    assert (await rt.get("gated")).status == mai.RunStatus.SUCCEEDED


async def test_only_a_failed_run_can_be_retried(rt: Any) -> None:
    """Retrying a run that succeeded raises RunNotRetryableError naming its status."""
    await (await rt.start(f.double, 2, run_id="fine")).result()
    with pytest.raises(mai.RunNotRetryableError, match="'fine' is SUCCEEDED"):
        await rt.retry("fine")
    with pytest.raises(mai.RunNotFoundError):
        await rt.history("no-such-run")


async def test_event_history_is_temporals_history_of_the_run(rt: Any) -> None:
    """event_history() is Temporal's event history (what replay takes), not history()."""
    await (await rt.start(f.double, 2, run_id="events")).result()
    events = await rt.event_history("events")
    assert events.workflow_id == "events"
    assert len(events.events) > 5
    await rt.replay(events, modules=["temporal_flows"])
