"""Replay corpus: recorded histories replay against the current code; a changed one is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import corpus_workflows
import pytest

import mai
from mai.core.durable import MemoryStore, RunRecord, RunStatus, StepRecord

CORPUS = Path(__file__).resolve().parent / "corpus"
HISTORIES = sorted(p for p in CORPUS.glob("*.json"))
_stores = iter(range(10**9))


def load(path: Path) -> tuple[str, RunRecord, list[StepRecord], Any]:
    """Read one recorded history, as an unfinished run whose top-level body must run again."""
    data = json.loads(path.read_text())
    run = RunRecord(**{**data["run"], "status": RunStatus(data["run"]["status"])})
    run = dataclasses.replace(
        run, status=RunStatus.PENDING, owner=None, lease_until=None, output=None, error=None
    )
    # Drop the top-level step so the orchestration and plain code run again over the records.
    steps = [StepRecord(**s) for s in data["steps"] if s["step_id"] != "1"]
    return data["workflow"], run, steps, data["result"]


def seed(url: str, run: RunRecord, steps: list[StepRecord]) -> None:
    """Write the history into a fresh in-memory store, as an earlier process would have."""
    store = MemoryStore(url)
    with store.transaction():
        store.create_run(run)
        claimed = store.claim_run(run.run_id, "recorder", 30.0)
        assert claimed is not None
        for step in steps:
            store.put_step(step, "recorder", claimed.epoch)
        store.release_run(run.run_id, "recorder", claimed.epoch)


def test_the_corpus_is_there() -> None:
    """The corpus holds the recorded histories, including the deliberately changed workflow."""
    names = {p.stem for p in HISTORIES}
    assert {"fanout", "routed", "looped", "parallel", "agentic", "changed"} <= names


@pytest.mark.parametrize(
    "path", [p for p in HISTORIES if p.stem != "changed"], ids=lambda p: p.stem
)
async def test_recorded_history_replays_without_running_any_step(path: Path) -> None:
    """Every recorded step replays (none runs again) and the result is the recorded one."""
    name, run, steps, expected = load(path)
    module, _ = corpus_workflows.WORKFLOWS[name]
    url = f"memory://corpus-replay-{next(_stores)}"
    seed(url, run, steps)
    corpus_workflows.EXECUTED.clear()
    async with mai.Runtime(url) as rt:
        handle = await rt.resume(run.run_id, module)
        result = await handle.result()
        assert (await rt.get(run.run_id)).status == mai.RunStatus.SUCCEEDED
    recorded = json.loads(mai.core.durable._serde.dumps(result, what="result"))
    assert recorded == expected
    leaf_runs = {k: v for k, v in corpus_workflows.EXECUTED.items() if k != name}
    assert leaf_runs == {}, f"replay executed recorded steps again: {leaf_runs}"


async def test_the_deliberately_changed_workflow_is_refused() -> None:
    """The changed workflow's history is refused before any step runs, naming the first step."""
    name, run, steps, _ = load(CORPUS / "changed.json")
    module, _ = corpus_workflows.WORKFLOWS[name]
    url = f"memory://corpus-replay-{next(_stores)}"
    seed(url, run, steps)
    corpus_workflows.EXECUTED.clear()
    async with mai.Runtime(url) as rt:
        with pytest.raises(mai.PlanMismatchError) as info:
            await rt.resume(run.run_id, module)
        assert (await rt.get(run.run_id)).status == mai.RunStatus.PENDING
    assert info.value.step_id == "1.1"
    assert corpus_workflows.EXECUTED == {}
