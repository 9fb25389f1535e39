"""Fencing a stalled owner: a process that wakes after losing its lease starts no step body.

A worker paused right after a commit reached the database (SIGSTOP, a long GC pause, a
starved CPU) wakes with its lease long expired and the run taken over. Its late writes are
rejected by ``(owner, epoch)``, but the step *bodies* are effects outside the store: it must
not start the next one (which the new owner has already run and committed) before it has
proved to the store that it still owns the run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import trio

import mai
from mai.core.durable import SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ran: list[str] = []
"""The step ids whose body ran, in order (the side-effect ledger of these tests)."""


@mai.module
async def bump(x: int) -> int:
    """One step: record that its body ran."""
    ran.append(mai.Context.get().step_id)
    return x + 1


@mai.module
async def two_bumps(x: int) -> int:
    """Two sequential steps (ids 1.1 and 1.2)."""
    return await bump(await bump(x))


class StallingStore(SQLiteStore):
    """A real SQLite store whose process stalls right after committing one chosen step.

    The commit is durable (other processes see it); the owner only learns of it once
    ``resume`` is set, as when a worker is paused while the database's answer is on its way.
    """

    #: Writes go to the store thread (as a server's do): the stall must not stop the loop.
    local = False

    def __init__(self, url: str, clock: Any, stall_after: str) -> None:
        """Open ``url`` on ``clock``; stall after the commit holding step ``stall_after``."""
        super().__init__(url, clock=clock)
        self.stall_after = stall_after
        self.committed = threading.Event()
        self.resume = threading.Event()
        self._hit = False

    def put_step(self, record: Any, owner: str, epoch: int) -> bool:
        """Commit the step (fenced, as always); note when it is the chosen one."""
        ok = super().put_step(record, owner, epoch)
        self._hit = self._hit or record.step_id == self.stall_after
        return ok

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The real transaction; after the chosen commit, stall until ``resume``."""
        with super().transaction():
            yield
        if self._hit:
            self._hit = False
            self.committed.set()
            self.resume.wait(60)


async def test_an_owner_that_wakes_after_a_takeover_runs_no_committed_step(tmp_path: Path):
    """Stalled past its lease after committing 1.1, A must not run 1.2, which B committed."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    now = [time.time()]

    def clock() -> float:
        return now[0]

    ran.clear()
    stalling = StallingStore(url, clock, stall_after="1.1")
    with trio.fail_after(30):
        async with mai.Runtime(stalling, lease=30, clock=clock, workflows=[two_bumps]) as a:
            handle = await a.start(two_bumps, 0, run_id="r")
            await trio.to_thread.run_sync(stalling.committed.wait)
            assert ran == ["1.1"]
            now[0] += 60  # A stays stalled for two lease periods (the store's clock)
            b_store = SQLiteStore(url, clock=clock)
            async with mai.Runtime(b_store, lease=30, clock=clock, workflows=[two_bumps]) as b:
                taken = await b.resume("r")
                assert await taken.result() == 2
            assert ran == ["1.1", "1.2"]
            stalling.resume.set()  # A wakes: its commit of 1.1 returns, the run is not its own
            with pytest.raises(mai.LeaseLostError):
                await handle.result()  # A learns it was fenced
    assert ran == ["1.1", "1.2"], f"a committed step ran again in the fenced owner: {ran}"


gate: list[trio.Event] = []


@mai.module
async def held(x: int) -> int:
    """One step whose body waits for the test's gate (a step in flight)."""
    ran.append(mai.Context.get().step_id)
    await gate[0].wait()
    return x + 1


@mai.module
async def held_then_bump(x: int) -> int:
    """A held step (1.1), then an ordinary one (1.2)."""
    return await bump(await held(x))


async def test_a_worker_that_takes_its_own_lapsed_run_back_runs_nothing_twice(tmp_path: Path):
    """A worker too slow to renew claims its own run back: the execution goes on, not a second."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    now = [time.time()]

    def clock() -> float:
        return now[0]

    ran.clear()
    gate[:] = [trio.Event()]
    with trio.fail_after(30):
        async with mai.Runtime(SQLiteStore(url, clock=clock), clock=clock) as client:
            handle = await client.submit(held_then_bump, 0, run_id="r")
            async with trio.open_nursery() as nursery:
                worker = mai.Worker(
                    SQLiteStore(url, clock=clock),  # type: ignore[arg-type]
                    workflows=[held_then_bump],
                    concurrency=2,
                    lease=30,
                    poll_interval=0.01,
                )
                await nursery.start(worker.run)
                while ran != ["1.1"]:  # noqa: ASYNC110 - the body is in flight
                    await trio.sleep(0.01)
                epoch = (await client.get("r")).record.epoch
                now[0] += 60  # the lease lapsed on the store's clock; nobody else is there
                while (await client.get("r")).record.epoch == epoch:  # noqa: ASYNC110
                    await trio.sleep(0.01)  # the worker's sweep claimed its own run back
                gate[0].set()
                assert await handle.result() == 2
                nursery.cancel_scope.cancel()
    assert ran == ["1.1", "1.2"], f"the worker ran a step twice: {ran}"
