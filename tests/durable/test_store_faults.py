"""Store faults on the real SQLite store: each gets a clear error, reported once, and recovery.

In-process tests (real files under ``tmp_path``, the real clock with short bounds). The file is
also read and written with the standard library's ``sqlite3`` to inject faults and to check
what the runtime left behind.

Read-only files: the suite may run as root (CI does), and root writes through ``chmod``. As
root the tests therefore make the file or directory immutable with ``chattr +i`` (ext4, which
``tmp_path`` is on here): the kernel then refuses writes even to root, and ``os.access`` says
so. As any other user they use ``chmod``. Either way the helper first proves a write is really
refused, so the test never passes on a file that is in fact writable.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
import workflows
from harness import Cluster, check_complete, check_ledger, integrity, read_ledger, runs, steps
from structlog.testing import capture_logs

import mai
from mai.core.durable._sqlite import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def url_of(db: Path, **opts: str) -> str:
    """The runtime URL of a database file."""
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    return f"sqlite:///{db}" + (f"?{query}" if query else "")


async def _at_least(rt: mai.Runtime, run_id: str, n: int) -> bool:
    """Whether the run has committed at least ``n`` steps."""
    return len(await rt.steps(run_id)) >= n


async def poll(predicate: Callable[[], Any], limit: float, what: str) -> Any:
    """Poll ``predicate()`` on the real clock until it is truthy; fail after ``limit`` seconds."""
    with trio.move_on_after(limit):
        while True:
            value = predicate()
            if inspect.isawaitable(value):  # an async read of the store
                value = await value
            if value:
                return value
            await trio.sleep(0.005)
    pytest.fail(f"timed out after {limit}s waiting for {what}")


def dump(db: Path) -> list[str]:
    """The whole logical content of the file (schema and rows), for before/after comparisons."""
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


async def make_store(db: Path, n: int = 3) -> None:
    """Create a store holding ``n`` finished runs of ``chain5``."""
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        handles = [
            await rt.start(workflows.chain5, f"old-{i}", run_id=f"old-{i}") for i in range(n)
        ]
        for h in handles:
            assert await h.result() == 5


async def check_old_runs(db: Path, n: int = 3) -> None:
    """The runs made by :func:`make_store` are intact and readable through a Runtime."""
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        for i in range(n):
            info = await rt.get(f"old-{i}")
            assert (info.status, info.output) == (mai.RunStatus.SUCCEEDED, 5)
            assert [s.output for s in await rt.steps(f"old-{i}")] == [5, 1, 2, 3, 4, 5]


# -- database full ---------------------------------------------------------------------------


@mai.module
async def blob(i: int) -> str:
    """A step with a big output (about three 4 KiB pages)."""
    return f"{i:04d}" * 3000


@mai.module
async def bulky(n: int) -> int:
    """``n`` steps with big outputs."""
    return sum([len(await blob(i)) for i in range(n)])


@mai.module
async def tick(i: int) -> int:
    """A quick step."""
    await trio.sleep(0.01)
    return i


@mai.module
async def ticker(n: int) -> int:
    """``n`` quick steps."""
    return sum([await tick(i) for i in range(n)])


class Spy:
    """Counts the calls of one store method and the StoreErrors they raised."""

    def __init__(self, target: Any, name: str) -> None:
        self.calls = 0
        self.errors: list[mai.StoreError] = []
        original = getattr(target, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            try:
                return original(*args, **kwargs)
            except mai.StoreError as exc:
                self.errors.append(exc)
                raise

        setattr(target, name, spy)


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-a-small-run"])
async def test_full_database_stalls_the_run_reports_once_and_resumes(
    tmp_path: Path, beside: bool
) -> None:
    """A full database stalls commits, logs one mai.store_error (full), loses nothing, resumes."""
    db = tmp_path / "full.db"
    async with mai.Runtime(url_of(db), workflows=[bulky, ticker]) as rt:
        conn = rt.store.conn  # type: ignore[attr-defined]

        def pragma(sql: str) -> int:
            return int(rt.executor.call_blocking(lambda: conn.execute(sql).fetchone()[0]))

        pages = pragma("PRAGMA page_count")
        assert pragma(f"PRAGMA max_page_count = {pages + 12}") == pages + 12
        spy = Spy(rt.store, "put_step")
        with capture_logs() as logs:
            handle = await rt.start(bulky, 8, run_id="bulky")
            await poll(lambda: len(spy.errors) >= 4, 10, "four failed commit attempts")
            if beside:  # small commits still fit while the big one cannot: the fault goes on
                small = await rt.start(ticker, 30, run_id="small")
                await poll(lambda: _at_least(rt, "small", 3), 10, "small commits to land")
                failed = len(spy.errors)
                await poll(lambda: len(spy.errors) >= failed + 2, 10, "the big commit to fail on")
            stalled = await rt.steps("bulky")
            assert 0 < len(stalled) < 8, "the limit should stop the run part-way"
            assert (await rt.get("bulky")).status == mai.RunStatus.RUNNING
            assert all(isinstance(e, mai.StoreFullError) for e in spy.errors)
            assert pragma(f"PRAGMA max_page_count = {pages + 10_000}") == pages + 10_000
            assert await handle.result() == 8 * 12_000
            if beside:
                assert await small.result() == sum(range(30))
        errors = [e for e in logs if e["event"] == "mai.store_error"]
        assert len(errors) == 1, f"one fault reported {len(errors)} times: {errors}"
        assert errors[0]["kind"] == "full"
        assert str(db) in errors[0]["error"]
        done = {s.step_id: s.output for s in await rt.steps("bulky")}
        assert {s.step_id: s.output for s in stalled}.items() <= done.items()
        assert len(done) == 9
    assert integrity(db) == "ok"


def companions(db: Path) -> list[Path]:
    """The ``-wal``/``-shm`` files of a database that exist."""
    return [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


# -- read-only file --------------------------------------------------------------------------


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process (``chattr +i`` as root, else ``chmod``)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        undo = ["chattr", "-i", str(path)]
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        undo = []
    try:
        probe = path / "probe" if path.is_dir() else path
        with pytest.raises(PermissionError):
            probe.open("a").close()  # prove the write is refused before testing the runtime
        yield
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            path.chmod(mode)


@pytest.mark.parametrize("what", ["file", "directory"])
async def test_read_only_store_is_refused_with_its_path_then_opens(
    tmp_path: Path, what: str
) -> None:
    """An unwritable file or directory gives StoreReadOnlyError naming it; restored, it opens."""
    db = tmp_path / "store" / "ro.db"
    await make_store(db)
    assert companions(db) == []  # closed cleanly: only the main file is left
    before = dump(db)
    target = db if what == "file" else db.parent
    with read_only(target):
        with pytest.raises(mai.StoreReadOnlyError) as info:
            async with mai.Runtime(url_of(db)):
                pass
        assert isinstance(info.value, mai.StoreError)
        assert isinstance(info.value, OSError)
        assert info.value.kind == "read_only"
        assert str(target) in str(info.value)
    assert dump(db) == before
    await check_old_runs(db)


async def test_unwritable_shm_of_a_crashed_store_is_refused_then_recovers(
    half_done: Cluster,
) -> None:
    """A crashed store whose -shm file is unwritable is refused naming it; restored, it recovers."""
    db = half_done.db
    shm = Path(f"{db}-shm")
    assert shm in companions(db), "a SIGKILLed worker leaves its -wal/-shm files behind"
    with read_only(shm):
        with pytest.raises(mai.StoreReadOnlyError) as info:
            await open_and_recover(db)
        assert str(shm) in str(info.value)
    assert integrity(db) == "ok"
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        for handle in await rt.recover():
            assert await handle.result() == 5
    check_complete(db, ["run-000", "run-001"], 5)
    check_ledger(read_ledger(half_done.ledger), steps(db), half_done.killed_pids)


# -- corrupted file --------------------------------------------------------------------------


async def test_garbage_file_is_refused_as_corrupt(tmp_path: Path) -> None:
    """A file that is not a database gives StoreCorruptError naming it, and is left untouched."""
    db = tmp_path / "garbage.db"
    garbage = bytes(range(256)) * 64
    db.write_bytes(garbage)
    with pytest.raises(mai.StoreCorruptError) as info:
        async with mai.Runtime(url_of(db)):
            pass
    assert info.value.kind == "corrupt"
    assert str(db) in str(info.value)
    assert db.read_bytes() == garbage


async def open_and_recover(db: Path) -> None:
    """Open a Runtime on ``db``, list its runs and recover them."""
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        await rt.list_runs()
        await rt.recover()


async def test_truncated_database_gives_a_store_error_and_spares_its_neighbour(
    tmp_path: Path,
) -> None:
    """A database cut in half gives a clear StoreError; a healthy store beside it still works."""
    db, healthy = tmp_path / "cut.db", tmp_path / "healthy.db"
    await make_store(db, n=20)
    await make_store(healthy)
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(mai.StoreError) as info:
        await open_and_recover(db)
    assert info.value.kind in {"corrupt", "io"}, info.value
    assert str(db) in str(info.value)
    await check_old_runs(healthy)
    assert integrity(healthy) == "ok"


# -- a newer schema --------------------------------------------------------------------------


async def test_newer_schema_is_refused_naming_both_versions_and_left_untouched(
    tmp_path: Path,
) -> None:
    """A store stamped with a newer schema gives StoreSchemaError naming both versions."""
    db = tmp_path / "future.db"
    await make_store(db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE mai_meta SET value = '999' WHERE key = 'schema_version'")
    before = dump(db)
    with pytest.raises(mai.StoreSchemaError) as info:
        async with mai.Runtime(url_of(db)):
            pass
    message = str(info.value)
    assert str(db) in message
    versions = re.findall(r"\b\d+\b", message.replace(str(db), ""))
    assert "999" in versions, message
    assert str(SCHEMA_VERSION) in versions, message
    assert info.value.kind == "schema"
    assert dump(db) == before
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE mai_meta SET value = '1' WHERE key = 'schema_version'")
    await check_old_runs(db)


async def test_garbled_schema_stamp_is_refused_as_a_store_error(tmp_path: Path) -> None:
    """A schema stamp that is not a number gives a StoreError naming the file, not a ValueError."""
    db = tmp_path / "garbled.db"
    await make_store(db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE mai_meta SET value = 'v2' WHERE key = 'schema_version'")
    before = dump(db)
    with pytest.raises(mai.StoreError) as info:
        await open_and_recover(db)
    assert info.value.kind in {"schema", "corrupt"}, info.value
    assert str(db) in str(info.value)
    assert dump(db) == before


# -- database locked -------------------------------------------------------------------------


@contextmanager
def lock_held(db: Path, seconds: float) -> Iterator[dict[str, Any]]:
    """Hold the write lock (``BEGIN IMMEDIATE``) from another connection for ``seconds``.

    Yields once the lock is held; the returned dict gets ``released`` (wall clock) when the
    lock is given back, and holds ``give_back``, which ends the fault at once.
    """
    times: dict[str, Any] = {}
    held, done = threading.Event(), threading.Event()
    times["give_back"] = done.set  # ends the fault early

    def holder() -> None:
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO mai_meta (key, value) VALUES ('lock-test', 'x')")
            held.set()
            done.wait(seconds)  # the fault's duration, not a wait for the system to settle
            conn.execute("ROLLBACK")
            times["released"] = time.time()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    try:
        yield times
    finally:
        thread.join()


async def test_locked_database_is_waited_out_without_error(tmp_path: Path) -> None:
    """While another connection holds the write lock for 0.5 s, commits wait, then succeed."""
    db = tmp_path / "locked.db"
    async with mai.Runtime(url_of(db), workflows=[ticker]) as rt:
        with capture_logs() as logs:
            handle = await rt.start(ticker, 20, run_id="tick")
            await poll(lambda: _at_least(rt, "tick", 2), 5, "the first commits")
            with lock_held(db, 0.5) as times:
                await poll(lambda: "released" in times, 5, "the lock to be released")
            assert await handle.result() == sum(range(20))
        assert not [e for e in logs if e["event"] == "mai.store_error"], logs
        finished = [s.finished_at for s in await rt.steps("tick")]
        assert any(t < times["released"] for t in finished)
        assert len(finished) == 21
        assert (await rt.get("tick")).updated_at >= times["released"]  # it did wait for the lock
    assert integrity(db) == "ok"


async def test_lock_held_past_busy_timeout_raises_store_busy_error(tmp_path: Path) -> None:
    """With busy_timeout=0.2, a write lock held for long fails the operation with StoreBusyError."""
    db = tmp_path / "busy.db"
    async with mai.Runtime(url_of(db, busy_timeout="0.2"), workflows=[ticker]) as rt:
        with lock_held(db, 60.0) as times:
            with pytest.raises(mai.StoreBusyError) as info:
                await rt.start(ticker, 3, run_id="late")
            # raised while the lock was still held (for up to a minute): the wait was bounded
            assert "released" not in times
            times["give_back"]()
        assert info.value.kind == "busy"
        assert str(db) in str(info.value)
        with pytest.raises(mai.RunNotFoundError):
            await rt.get("late")
        handle = await rt.start(ticker, 3, run_id="late")  # the lock is gone: it works again
        assert await handle.result() == 3


# -- poisoned rows ---------------------------------------------------------------------------


def insert_run(
    db: Path, run_id: str, workflow: str, ref: str | None, data: str, status: str
) -> None:
    """Write a run row directly with plain sqlite3, as a foreign tool or a bad migration might."""
    now = time.time()
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "INSERT INTO mai_runs (run_id, workflow, ref, plan_hash, plan, input, status, "
            "created_at, updated_at) VALUES (?, ?, ?, '', '', ?, ?, ?, ?)",
            (run_id, workflow, ref, data, status, now, now),
        )


@pytest.fixture
def half_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A store whose two chain5 runs were left half done by a worker killed with SIGKILL."""
    cluster = Cluster(db=tmp_path / "mai.db", ledger=tmp_path / "ledger.csv")
    crashed = cluster.run(
        "--workflow", "chain5", "--runs", "2", env={"MAI_CRASH_AT": "after_commit:6"}
    )
    assert crashed.killed, crashed.describe()
    monkeypatch.setenv("LEDGER", str(cluster.ledger))
    yield cluster
    cluster.close()


POISON = {
    "bad-json": (
        "chain5",
        "workflows:chain5",
        '{"args": ["bad-json"',
        "the run's input is not valid JSON",
    ),
}
#: A run of a workflow this process cannot find: it may belong to another app; left alone.
GHOST = ("ghost", "no_such_module_for_mai:flow", '{"args": ["x"], "kwargs": {}}')


async def test_poisoned_rows_are_dead_lettered_once_and_others_recover(half_done: Cluster) -> None:
    """Rows with invalid JSON are dead-lettered once; an unknown workflow's run is left alone."""
    db = half_done.db
    for run_id, (workflow, ref, data, _) in POISON.items():
        insert_run(db, run_id, workflow, ref, data, "PENDING")
    insert_run(db, "ghost", *GHOST, "PENDING")
    good = ["run-000", "run-001"]
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        with capture_logs() as logs:
            handles = {h.run_id: h for h in await rt.recover()}
            assert set(good) <= set(handles)
            for run_id in good:
                assert await handles[run_id].result() == 5
        for run_id, (*_, reason) in POISON.items():
            info = await rt.get(run_id)
            assert info.status == mai.RunStatus.DEAD
            assert reason in info.error["message"], info.error
            with pytest.raises(mai.RunDeadLetteredError, match=reason):
                await mai.RunHandle(rt, run_id).result()
        dead = sorted(e["run_id"] for e in logs if e["event"] == "mai.run_dead_lettered")
        assert dead == sorted(POISON)
        ghost = runs(db)["ghost"]
        assert (ghost.status, ghost.owner, ghost.attempts) == ("PENDING", None, 0)
        left = [e for e in logs if e["event"] == "mai.run_left_alone"]
        assert [e["run_id"] for e in left] == ["ghost"]
        assert "no_such_module_for_mai" in left[0]["why"]
        with pytest.raises(mai.WorkflowNotFoundError, match="no_such_module_for_mai"):
            await rt.resume("ghost")
        rows = runs(db)
        assert rows["ghost"] == ghost
        with capture_logs() as again:
            await rt.recover()
        assert not [e for e in again if e["event"] == "mai.run_dead_lettered"]
        assert runs(db) == rows
    check_complete(db, good, 5)
    check_ledger(read_ledger(half_done.ledger), steps(db), half_done.killed_pids)
    assert integrity(db) == "ok"


async def test_run_row_with_unknown_status_is_dead_lettered_not_fatal(half_done: Cluster) -> None:
    """A run row with an unknown status is dead-lettered with a reason; other runs still recover."""
    db = half_done.db
    insert_run(
        db, "weird", "chain5", "workflows:chain5", '{"args": ["weird"], "kwargs": {}}', "WEIRD"
    )
    good = ["run-000", "run-001"]
    async with mai.Runtime(url_of(db), workflows=[workflows.chain5]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        for run_id in good:
            assert await handles[run_id].result() == 5
        assert runs(db)["weird"].status == "DEAD"
        assert "WEIRD" in json.dumps((await rt.get("weird")).error)
    check_complete(db, good, 5)


# -- group commit ----------------------------------------------------------------------------


@mai.module
async def bump(x: int) -> int:
    """A trivial step."""
    return x + 1


fan_out = mai.Map(bump, name="fan_out")


async def test_map_of_1000_branches_is_group_committed(tmp_path: Path) -> None:
    """A Map of 1,000 trivial branches records 1,000 steps in far fewer than 1,000 commits."""
    db = tmp_path / "fan.db"
    async with mai.Runtime(url_of(db), workflows=[fan_out]) as rt:
        before = rt.executor.commits
        handle = await rt.start(fan_out, list(range(1000)), run_id="fan")
        assert await handle.result() == list(range(1, 1001))
        commits = rt.executor.commits - before
        recorded = [s for s in await rt.steps("fan") if s.name == "bump"]
    assert len(recorded) == 1000
    assert sorted(s.output for s in recorded) == list(range(1, 1001))
    assert len({s.step_id for s in recorded}) == 1000
    assert commits < 100, f"{commits} commits for 1,000 steps"
    assert integrity(db) == "ok"
