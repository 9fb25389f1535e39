"""Every composite shape runs on Temporal and gives the result mai's SQLite runtime gives."""

from __future__ import annotations

from typing import Any

import pytest
import temporal_flows as f

import mai

SHAPES: dict[str, tuple[Any, Any]] = {
    "leaf": (f.double, 4),
    "sync leaf": (f.inc, 4),
    "subclassed leaf": (f.echo, 4),
    "Sequential with a bound with_": (f.sequential, 3),
    "Parallel": (f.parallel, 3),
    "Parallel by name": (f.named, 3),
    "Map": (f.mapped, [1, 2, 3, 4, 5]),
    "Race": (f.race, 7),
    "Conditional (module predicate), then": (f.conditional, 4),
    "Conditional (module predicate), otherwise": (f.conditional, 5),
    "Conditional (plain predicate), pass-through": (f.conditional_fn, 3),
    "Loop": (f.loop, 1),
    "BlockingDelay": (f.delays, 2),
    "NonBlockingDelay": (f.background, 2),
    "nested with a plain function step": (f.nested, [1, 2]),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_shape_matches_the_sqlite_runtime(rt: Any, shape: str, tmp_path: Any) -> None:
    """A composite shape gives the same result on Temporal as on mai's SQLite runtime."""
    module, value = SHAPES[shape]
    handle = await rt.start(module, value)
    on_temporal = await handle.result()
    async with mai.Runtime(f"sqlite:///{tmp_path}/runs.db") as local:
        on_sqlite = await (await local.start(module, value)).result()
    assert on_temporal == on_sqlite


async def test_leaf_steps_are_activities_with_the_step_ids(rt: Any) -> None:
    """Each leaf call is an activity whose id is the step id; the context inside matches it."""
    handle = await rt.start(f.contexts, 5, run_id="ctx-run")
    result = await handle.result()
    assert result == {
        "x": 10,
        "step_id": "1.2",
        "run_id": "ctx-run",
        "key": "ctx-run/1.2",
        "retry_count": 0,
    }
    steps = await rt.steps("ctx-run")
    assert [(s.step_id, s.name, s.output) for s in steps] == [
        ("1.1", "double", 10),
        ("1.2", "context_of", result),
    ]


async def test_starting_an_existing_run_id_attaches(rt: Any) -> None:
    """Starting a run id that exists attaches to that run instead of starting a second one."""
    first = await rt.start(f.double, 1, run_id="same-id")
    assert await first.result() == 2
    again = await rt.start(f.double, 50, run_id="same-id")
    assert await again.result() == 2


async def test_bad_input_is_refused_before_anything_starts(rt: Any) -> None:
    """Input that does not fit the workflow's types raises CastError; no run is created."""
    with pytest.raises(mai.CastError, match="double"):
        await rt.start(f.double, "not a number", run_id="bad-input")
    with pytest.raises(mai.RunNotFoundError):
        (await rt.get("bad-input"))


async def test_durable_wait_for_is_a_signal(rt: Any) -> None:
    """mai.wait_for in workflow code receives what Runtime.send sends (a Temporal signal)."""
    handle = await rt.start(f.wait_flow, 1, run_id="waits")
    await rt.send("waits", "go", {"ok": True})
    assert await handle.result() == {"got": {"ok": True}, "x": 2, "now": True, "r": True}
