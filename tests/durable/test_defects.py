"""Defects of the durable runtime found by users and random programs, each on memory and SQLite."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest
import trio
from pydantic import BaseModel
from resume_cases import hold, outer, shift

import mai
import mai.testing

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_names = itertools.count()


class Doc(BaseModel):
    """A typed value that must come back typed."""

    title: str


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind."""
    if request.param == "memory":
        return f"memory://defects-{next(_names)}"
    return f"sqlite:///{tmp_path / 'defects.db'}"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SQLite file for tests that inject faults with a second connection."""
    return tmp_path / "faults.db"


class _Stop(Exception):
    """Leaves a runtime block abruptly (the runs in it are handed back)."""


@mai.module
async def to_doc(x: int) -> Doc:
    """A step with a pydantic output."""
    return Doc(title=f"doc {x}")


@mai.module
async def to_text(x: int) -> str:
    """A step with a text output."""
    return f"text {x}"


@mai.module
async def double(x: int) -> int:
    """A trivial step."""
    return x * 2


SHAPES: dict[str, tuple[mai.Module[..., Any], Any, Any]] = {
    "keyword Parallel": (
        mai.Parallel(a=to_doc, b=to_text, name="kw"),
        1,
        {"a": Doc(title="doc 1"), "b": "text 1"},
    ),
    "positional Parallel": (
        mai.Parallel(to_doc, double, name="pos"),
        2,
        (Doc(title="doc 2"), 4),
    ),
    "Map": (mai.Map(to_doc, name="map"), [1, 2], [Doc(title="doc 1"), Doc(title="doc 2")]),
    "Sequential": (mai.Sequential(double, to_doc, name="seq"), 3, Doc(title="doc 6")),
    "Race": (mai.Race(to_doc, name="race"), 4, Doc(title="doc 4")),
    "Loop": (mai.Loop(double, max_iterations=2, name="loop"), 1, 4),
    "Conditional with differently typed routes": (
        mai.Conditional(lambda x: x > 0, to_doc, to_text, name="cond"),
        5,
        Doc(title="doc 5"),
    ),
    "Conditional, other route": (
        mai.Conditional(lambda x: x > 0, to_doc, to_text, name="cond2"),
        -1,
        "text -1",
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_every_composite_shape_returns_typed_results(url: str, shape: str) -> None:
    """A durable run returns what the in-process call returns, here and from another runtime."""
    flow, value, expected = SHAPES[shape]
    assert await flow(value) == expected
    async with mai.Runtime(url) as rt:
        got = await (await rt.start(flow, value, run_id="typed")).result()
        assert got == expected
        assert type(got) is type(expected)
    async with mai.Runtime(url, workflows=[flow]) as other:
        again = await mai.RunHandle(other, "typed").result()
    assert again == expected
    assert type(again) is type(expected)


@mai.module
async def takes_doc(d: Doc, n: int) -> str:
    """A step whose input must be recorded cast."""
    return f"{d.title} x{n}"


async def test_run_input_is_recorded_cast(url: str) -> None:
    """Positional input is recorded cast to the parameter types, in the caller's shape."""
    async with mai.Runtime(url) as rt:
        handle = await rt.start(takes_doc, {"title": "t"}, "3", run_id="cast")
        assert await handle.result() == "t x3"
        info = await rt.get("cast")
    assert info.input == {"args": [{"title": "t"}, 3], "kwargs": {}}


async def _interrupt(url: str, flow: mai.Module[..., Any], run_id: str) -> None:
    """Start ``flow`` and leave the runtime abruptly once the run reached ``gate``."""

    async def go() -> None:
        async with mai.Runtime(url) as rt:
            await rt.start(flow, 1, run_id=run_id)
            await hold["entered"].wait()
            raise _Stop

    with pytest.raises(_Stop):
        await go()


async def test_a_step_input_that_is_not_json_is_still_checked_on_replay(url: str) -> None:
    """A step input with a non-JSON part is still compared on replay (by its JSON parts)."""
    shift[0] = 0
    hold["gate"], hold["entered"] = trio.Event(), trio.Event()
    await _interrupt(url, outer, "nd")
    shift[0] = 1
    hold["gate"].set()
    async with mai.Runtime(url, workflows=[outer]) as rt:
        handle = await rt.resume("nd")
        with pytest.raises(mai.NonDeterminismError, match=r"1\.1"):
            await handle.result()


async def test_non_blocking_delay_body_runs_once_under_retries(
    url: str, autojump_clock: trio.abc.Clock
) -> None:
    """A NonBlockingDelay re-scheduled by a composite retry never runs its body twice."""
    bodies: list[str] = []
    failures = [1]

    @mai.module
    async def notify(x: int) -> int:
        key = mai.Context.get().idempotency_key
        bodies.append(str(key))
        await trio.sleep(1)
        return x

    @mai.module
    async def flaky(x: int) -> int:
        if failures[0]:
            failures[0] -= 1
            raise ValueError("fails once")
        return x + 1

    flow = mai.Sequential(mai.NonBlockingDelay(0.0, notify), flaky, name="nbd-retry").with_(
        retries=1
    )
    async with mai.testing.virtual_runtime(url) as rt:
        assert await (await rt.start(flow, 1, run_id="nbd")).result() == 2
        names = [s.name for s in await rt.steps("nbd")]
    assert len(bodies) == 1, bodies
    assert names.count("notify") == 1


def _held_lock(db: Path, seconds: float) -> threading.Thread:
    """Hold SQLite's write lock from another connection for ``seconds`` (a store fault)."""
    held = threading.Event()

    def hold_it() -> None:
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")

    thread = threading.Thread(target=hold_it, daemon=True)
    thread.start()
    held.wait()
    return thread


async def _prepare(db: Path) -> str:
    async with mai.Runtime(f"sqlite:///{db}"):
        pass
    return f"sqlite:///{db}?busy_timeout=0.05"


@pytest.fixture
def locked() -> Iterator[list[threading.Thread]]:
    """Threads holding locks; joined at the end."""
    threads: list[threading.Thread] = []
    yield threads
    for t in threads:
        t.join()


async def test_a_now_reading_is_never_lost_to_a_transient_store_error(
    db: Path, locked: list[threading.Thread]
) -> None:
    """A mai.now() reading taken while the store is locked is committed with the step."""
    store = await _prepare(db)

    @mai.module
    async def stamp(x: int) -> float:
        locked.append(_held_lock(db, 0.3))
        value = mai.now()
        await trio.to_thread.run_sync(locked[-1].join)
        return value

    async with mai.Runtime(store) as rt:
        value = await (await rt.start(stamp, 1, run_id="now")).result()
        kinds = {s.kind: s.output for s in await rt.steps("now")}
    assert kinds["now"] == value


async def test_an_abandoned_commit_never_reruns_a_completed_step(
    db: Path, locked: list[threading.Thread]
) -> None:
    """A finished step whose commit was cancelled by a sibling's failure is not run again."""
    store = await _prepare(db)
    bodies: list[int] = []
    finished = trio.Event()
    failures = [1]

    @mai.module
    async def work(x: int) -> int:
        bodies.append(x)
        locked.append(_held_lock(db, 0.3))  # this step's commit now meets a locked store
        finished.set()
        return x + 1

    @mai.module
    async def sibling(x: int) -> int:
        await finished.wait()
        await trio.sleep(0.1)  # the commit of ``work`` is retrying by now
        if failures[0]:
            failures[0] -= 1
            raise ValueError("sibling fails once")
        return x

    flow = mai.Parallel(work, sibling, name="abandon").with_(retries=1)
    async with mai.Runtime(store) as rt:
        assert await (await rt.start(flow, 1, run_id="ab")).result() == (2, 1)
        names = sorted(s.name for s in await rt.steps("ab"))
    assert bodies == [1]
    assert names == ["sibling", "work"]


async def test_a_store_error_while_resuming_suspects_never_tears_down_the_runtime(
    db: Path, locked: list[threading.Thread]
) -> None:
    """A locked store during recover()'s background claim of a suspect is waited out."""
    store = await _prepare(db)
    async with mai.Runtime(store) as rt:
        await rt.submit(double, 5, run_id="suspect")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE mai_runs SET attempts = 2 WHERE run_id = 'suspect'")
    async with mai.Runtime(store, workflows=[double], poll_interval=0.05) as rt:
        other = await rt.start(to_text, 1, run_id="bystander")
        locked.append(_held_lock(db, 0.3))
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["suspect"].result() == 10
        assert await other.result() == "text 1"


async def test_a_store_that_stays_unusable_hands_the_run_back_resumable(
    db: Path, locked: list[threading.Thread]
) -> None:
    """Commit retries are bounded: past store_patience the run is handed back, then resumes."""
    store = await _prepare(db)
    bodies: list[int] = []

    @mai.module
    async def work(x: int) -> int:
        bodies.append(x)
        if len(bodies) == 1:
            locked.append(_held_lock(db, 1.0))  # longer than the runtime's patience
        return x + 1

    flow = work.with_(name="patient")
    async with mai.Runtime(store, store_patience=0.2, lease=0.5, poll_interval=0.05) as rt:
        handle = await rt.start(flow, 1, run_id="u")
        with trio.fail_after(30), pytest.raises(mai.StoreBusyError):
            await handle.result()
        assert "u" not in rt._active  # this process no longer drives (nor heartbeats) it
        await trio.to_thread.run_sync(locked[-1].join)
        info = await rt.get("u")
        assert not info.status.terminal
        again = await rt.resume("u")
        with trio.fail_after(30):
            assert await again.result() == 2
    assert bodies == [1, 1]  # the first body's commit never landed: at least once, not lost


async def test_a_store_changed_under_a_run_fails_it_at_once_not_after_store_patience(
    db: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A commit meeting a store whose tables were dropped is not retried as if transient."""

    @mai.module
    async def breaker(x: int) -> int:
        with closing(sqlite3.connect(db)) as conn, conn:  # another tool changes the store
            conn.execute("DROP TABLE mai_steps")
        return x

    flow = breaker.with_(name="broken")
    async with mai.testing.virtual_runtime(f"sqlite:///{db}", store_patience=3600) as rt:
        handle = await rt.start(flow, 1, run_id="b")
        started = trio.current_time()
        with pytest.raises(mai.StoreSchemaError, match="no such table: mai_steps"):
            await handle.result()
        waited = trio.current_time() - started  # virtual: a transient error would wait 3600 s
    assert waited < 1


async def test_a_commit_waiting_out_a_locked_store_can_be_interrupted(db: Path) -> None:
    """Cancelling the runtime (what Ctrl-C does) stops a commit that waits out a locked store."""
    url = await _prepare(db)
    held, release, gone = threading.Event(), threading.Event(), threading.Event()
    committing = trio.Event()

    def hold_lock() -> None:
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(60)  # the fault lasts until the test ends it (at most a minute)
            conn.execute("ROLLBACK")
        gone.set()

    locker = threading.Thread(target=hold_lock, daemon=True)

    @mai.module
    async def work(x: int) -> int:
        if not held.is_set():  # the first attempt (its commit never lands: it runs again)
            locker.start()
            await trio.to_thread.run_sync(held.wait)
            committing.set()  # returning now: this step's commit meets the locked store
        return x + 1

    flow = work.with_(name="locked-out")
    try:
        with trio.CancelScope() as interrupt:
            async with mai.Runtime(url, store_patience=3600) as rt:
                await rt.start(flow, 1, run_id="l")
                await committing.wait()
                interrupt.cancel()
                await trio.sleep_forever()
        assert interrupt.cancelled_caught
        assert not gone.is_set()  # the runtime stopped while the store was still locked
    finally:
        release.set()
        await trio.to_thread.run_sync(locker.join)
    async with mai.Runtime(url, workflows=[flow]) as rt:
        assert not (await rt.get("l")).status.terminal  # nothing lost: resumable
        assert await (await rt.resume("l")).result() == 2
