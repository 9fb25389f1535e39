"""The run owner: one object per executing run, and the fence before each step body."""

from __future__ import annotations

from typing import Any

import pytest
import trio

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


async def test_a_renewal_refused_while_the_outcome_is_written_is_not_a_lost_lease() -> None:
    """Refused while finishing (the outcome landed first): not lost; refused before: lost."""
    gate = trio.Event()

    @mai.module
    async def held(x: int) -> int:
        await gate.wait()
        return x

    async with mai.Runtime(MemoryStore()) as rt:
        store = rt.store
        refused = {"yes": False}
        renew = store.renew_lease

        def renew_lease(run_id: str, owner: str, epoch: int, lease: float) -> bool:
            return False if refused["yes"] else renew(run_id, owner, epoch, lease)

        store.renew_lease = renew_lease  # type: ignore[method-assign]
        handle = await rt.start(held, 1, run_id="held")
        owner = rt._active["held"]
        refused["yes"] = True
        owner.finishing = True  # what drive sets before it writes the outcome
        await owner.renew()
        assert (owner.lost, owner.scope.cancel_called) == (False, False)
        owner.finishing = False
        await owner.renew()  # refused while the run is executing: its lease is gone
        assert (owner.lost, owner.scope.cancel_called) == (True, True)
        with trio.fail_after(30):
            await owner.done.wait()  # cancelled; a lost run writes nothing more
        assert store.get_run(handle.run_id).status == mai.RunStatus.RUNNING


async def test_a_heartbeat_renews_every_run_together(autojump_clock: Any) -> None:
    """One beat renews all the runs executing here at once, not one after another."""
    gate = trio.Event()
    renewing: list[str] = []
    at_once: list[int] = []

    @mai.module
    async def held(x: int) -> int:
        await gate.wait()
        return x

    async with mai.Runtime(MemoryStore(), lease=3.0) as rt:
        assert rt._host is not None
        handles = [await rt.start(held, i, run_id=f"hb{i}") for i in range(5)]
        for owner in rt._active.values():

            async def renew(owner: RunOwner = owner, plain: Any = owner.renew) -> None:
                renewing.append(owner.run_id)
                at_once.append(len(renewing))
                await trio.sleep(0.5)  # a slow store: the others must not wait for this one
                await plain()
                renewing.remove(owner.run_id)

            owner.renew = renew  # type: ignore[method-assign]
        with trio.fail_after(30):
            while len(at_once) < 5:  # noqa: ASYNC110 - waiting for one beat (virtual time)
                await trio.sleep(0.1)
        assert max(at_once) == 5  # all five renewals were under way together
        gate.set()
        assert [await h.result() for h in handles] == [0, 1, 2, 3, 4]
