"""mai.Worker on the embedded stores: submit, claim, drain; loading an application."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

import pytest
import trio

import mai
from mai.core.durable import RunStatus, load_app, run_worker

if TYPE_CHECKING:
    from pathlib import Path


@mai.module
async def inc(x: int) -> int:
    """One step."""
    return x + 1


@mai.module
async def slow_pair(x: int) -> int:
    """Two steps with a pause between them."""
    x = await inc(x)
    await trio.sleep(30)
    return await inc(x)


BODIES: list[int] = []
PAUSED: list[int] = []


@mai.module
async def noted(x: int) -> int:
    """One step that notes each execution of its body."""
    BODIES.append(x)
    return x + 1


@mai.module
async def noted_pair(x: int) -> int:
    """Two noted steps with a pause between them."""
    x = await noted(x)
    PAUSED.append(x)
    await trio.sleep(30)
    return await noted(x)


async def test_worker_executes_submitted_runs_on_sqlite(tmp_path: Path):
    """Runs submitted to a SQLite store are claimed and executed by a worker in this process."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    async with mai.Runtime(url) as client:
        handles = [await client.submit(inc, i, run_id=f"r{i}") for i in range(5)]
        assert (await client.get("r0")).status == RunStatus.PENDING
        async with trio.open_nursery() as nursery:
            worker = mai.Worker(url, workflows=[inc], concurrency=2, poll_interval=0.05)
            await nursery.start(worker.run)
            assert [await h.result() for h in handles] == [1, 2, 3, 4, 5]
            nursery.cancel_scope.cancel()
        assert {s.worker for s in await client.steps("r0")} == {worker.owner}


async def test_a_cancelled_worker_hands_its_runs_back(tmp_path: Path):
    """Cancelling Worker.run (what SIGTERM does) releases its runs at once, not as an attempt."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    async with mai.Runtime(url) as client:
        await client.submit(slow_pair, 1, run_id="slow")
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                worker = mai.Worker(url, workflows=[slow_pair], poll_interval=0.05)
                await nursery.start(worker.run)
                while not await client.steps("slow"):  # noqa: ASYNC110 - polling the store
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        run = await client.get("slow")
        assert (run.status, run.owner, run.attempts) == (RunStatus.PENDING, None, 0)
        assert [s.name for s in await client.steps("slow")] == ["inc"]


async def test_a_first_claim_reads_no_steps_and_a_claim_back_replays_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A run claimed for the first time (epoch 1) is not read back; claimed again, it replays."""
    from mai.core.durable._sqlite import SQLiteStore

    read: list[str] = []  # by the workers' stores (not the client's own reads)
    load_steps = SQLiteStore.load_steps
    clients: list[object] = []

    def counted(self: SQLiteStore, run_id: str) -> list[mai.core.durable.StepRecord]:
        if self not in clients:
            read.append(run_id)
        return load_steps(self, run_id)

    monkeypatch.setattr(SQLiteStore, "load_steps", counted)
    BODIES.clear()
    PAUSED.clear()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    async with mai.Runtime(url) as client:
        clients.append(client.store)
        fresh = await client.submit(inc, 1, run_id="fresh")
        await client.submit(noted_pair, 1, run_id="pair")
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                worker = mai.Worker(url, workflows=[inc, noted_pair], poll_interval=0.05)
                await nursery.start(worker.run)
                assert await fresh.result() == 2
                while not PAUSED:  # noqa: ASYNC110 - polling what the workflow did
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()  # "pair" is handed back after its first step
            assert read == []  # both were first claims: nothing to read back
            assert BODIES == [1]
            async with trio.open_nursery() as nursery:
                worker = mai.Worker(url, workflows=[noted_pair], poll_interval=0.05)
                await nursery.start(worker.run)
                while len(PAUSED) < 2:  # noqa: ASYNC110 - polling what the workflow did
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        run = await client.async_store.get_run("pair")
        assert run is not None and run.epoch == 2  # noqa: PT018
        assert read == ["pair"]  # claimed again (epoch 2): its steps were read back
        assert BODIES == [1]  # and the recorded step replayed, not run again
        assert PAUSED == [2, 2]


def test_worker_identity_is_name_plus_incarnation():
    """Two workers with the same name have different identities (host:pid:name:incarnation)."""
    a, b = mai.Worker("memory://", name="w"), mai.Worker("memory://", name="w")
    assert a.owner != b.owner
    assert a.owner.split(":")[2] == b.owner.split(":")[2] == "w"
    assert int(a.owner.split(":")[1]) > 0


def test_load_app_finds_module_level_modules(monkeypatch: pytest.MonkeyPatch):
    """--app imports a module and takes every mai.Module at its top level."""
    app = types.ModuleType("fake_app")
    app.inc = inc  # type: ignore[attr-defined]
    app.other = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_app", app)
    assert load_app("fake_app") == [inc]
    assert load_app([inc, 3]) == [inc]


def test_run_worker_reports_an_app_it_cannot_load(capsys: pytest.CaptureFixture[str]):
    """run_worker returns 2 with a message when the application cannot be imported or is empty."""
    assert run_worker("memory://", "no_such_app_module") == 2
    assert "cannot load 'no_such_app_module'" in capsys.readouterr().err
    assert run_worker("memory://", "json") == 2
    assert "no mai modules" in capsys.readouterr().err


def test_worker_rejects_bad_options():
    """A worker needs queues and a positive concurrency."""
    with pytest.raises(ValueError, match="queue"):
        mai.Worker("memory://", queues=())
    with pytest.raises(ValueError, match="concurrency"):
        mai.Worker("memory://", concurrency=0)
