"""The run owner: one object per executing run, and the fence before each step body."""

from __future__ import annotations

import pytest

import mai
from mai.core.durable import MemoryStore
from mai.core.durable._owner import RunOwner


async def test_no_step_body_starts_once_the_lease_went_stale_and_was_taken() -> None:
    """A run not renewed for a whole lease (a paused process) renews before a body; lost: none."""
    bodies: list[str] = []

    async with mai.Runtime(MemoryStore(), lease=30.0) as rt:

        @mai.module
        async def first(x: int) -> int:
            bodies.append("first")
            rt._active["stale"].fresh_until = 0.0  # no heartbeat for a whole lease: a pause
            return x + 1

        store = rt.store
        commit = store.put_step

        def commit_then_lose(record: mai.core.durable.StepRecord, owner: str, epoch: int) -> bool:
            done = commit(record, owner, epoch)
            if record.name == "first":  # another owner takes the run over right after
                store.claim_run("stale", "another:1:x", 30.0, steal_from=owner)
            return done

        store.put_step = commit_then_lose  # type: ignore[method-assign]

        @mai.module
        async def second(x: int) -> int:
            bodies.append("second")
            return x + 1

        flow = mai.Sequential(first, second, name="stale_flow")
        handle = await rt.start(flow, 1, run_id="stale")
        with pytest.raises(mai.LeaseLostError):
            await handle.result()
    assert bodies == ["first"]


async def test_each_executing_run_has_one_owner_that_is_its_durability() -> None:
    """A run executing here has exactly one RunOwner, bound as the run's Durability."""
    seen: list[object] = []

    @mai.module
    async def probe(x: int) -> int:
        from mai.core.durable._primitives import current_durable

        seen.append(current_durable())
        return x

    async with mai.Runtime(MemoryStore()) as rt:
        flow = mai.Sequential(probe, probe, name="probe_flow")
        handle = await rt.start(flow, 3, run_id="one-owner")
        owner = rt._active["one-owner"]
        assert isinstance(owner, RunOwner)
        assert await handle.result() == 3
    assert seen == [owner, owner]
