"""The SQLite store's per-run shortcuts: a run inserted already claimed, WAL checkpoints aside."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import mai
from mai.core.durable import RunRecord, RunStatus, SQLiteStore, StepRecord
from mai.core.durable import _sqlite as sqlite_store

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


@mai.module
async def inc(x: int) -> int:
    """A trivial step."""
    return x + 1


def _store(db: Path) -> SQLiteStore:
    """An open store on ``db`` (synchronous=normal, as the benchmarks use it)."""
    store = SQLiteStore(f"sqlite:///{db}?synchronous=normal")
    store.open()
    return store


def _record(run_id: str) -> RunRecord:
    """A new run's record, as ``Runtime.start`` builds it."""
    return RunRecord(run_id, "flow", None, "h1", '{"plan": 1}', '{"args":[1],"kwargs":{}}')


def test_a_run_created_claimed_is_stored_exactly_as_returned(tmp_path: Path) -> None:
    """create_claimed returns what get_run reads back: RUNNING, owned, epoch and attempts 1."""
    store = _store(tmp_path / "c.db")
    try:
        with store.transaction():
            stored, claimed = store.create_claimed(_record("r"), "me", 30.0)
        assert claimed is not None
        assert stored == claimed == store.get_run("r")
        assert (claimed.status, claimed.owner, claimed.epoch, claimed.attempts) == (
            RunStatus.RUNNING,
            "me",
            1,
            1,
        )
        assert claimed.lease_until == claimed.updated_at + 30.0
        assert claimed.plan == '{"plan": 1}'
    finally:
        store.close()


def test_creating_an_existing_run_claimed_changes_nothing(tmp_path: Path) -> None:
    """A second create_claimed of the same id claims nothing and leaves the stored run as it was."""
    store = _store(tmp_path / "c.db")
    try:
        with store.transaction():
            _, first = store.create_claimed(_record("r"), "me", 30.0)
        with store.transaction():
            stored, again = store.create_claimed(_record("r"), "other", 30.0)
        assert again is None
        assert stored == first == store.get_run("r")
    finally:
        store.close()


async def test_a_run_started_here_is_inserted_claimed_in_one_statement(tmp_path: Path) -> None:
    """Runtime.start writes its run with one INSERT (no claim UPDATE, no read back)."""
    db = tmp_path / "s.db"
    statements: list[str] = []
    async with mai.Runtime(f"sqlite:///{db}", workflows=[inc]) as rt:
        store = rt.store
        assert isinstance(store, SQLiteStore)
        store.conn.set_trace_callback(statements.append)
        handle = await rt.start(inc, 1, run_id="one")
        store.conn.set_trace_callback(None)
        assert await handle.result() == 2
        info = await rt.get("one")
    first = statements[: statements.index("COMMIT") + 1]
    verbs = [" ".join(s.split()[:3]) for s in first]  # the plan's row is new too, this once
    assert verbs == ["BEGIN IMMEDIATE", "INSERT INTO mai_plans", "INSERT INTO mai_runs", "COMMIT"]
    assert info.status == RunStatus.SUCCEEDED


def test_the_wal_is_checkpointed_by_a_thread_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every _CHECKPOINT_EVERY commits a background thread copies the WAL into the file."""
    db = tmp_path / "w.db"
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("sqlite:///w.db?synchronous=normal")  # relative to the directory now
    store.open()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the checkpoints still go to the file opened
    try:
        with closing(store.conn.execute("PRAGMA wal_autocheckpoint")) as cur:
            assert cur.fetchone() == (sqlite_store._CHECKPOINT_BACKSTOP,)
        with store.transaction():
            _, claimed = store.create_claimed(_record("r"), "me", 30.0)
        assert claimed is not None
        size = db.stat().st_size
        for i in range(sqlite_store._CHECKPOINT_EVERY):
            step = StepRecord("r", str(i + 1), "inc", "call", "[]", "x" * 300)
            with store.transaction():
                assert store.put_step(step, "me", 1)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        assert checkpointer.done.wait(60)  # a bound against a hang, not a timing assertion
        assert db.stat().st_size > size  # the steps reached the file: not SQLite's backstop
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM mai_steps").fetchone() == (300,)
        assert list(elsewhere.iterdir()) == []
    finally:
        store.close()
    assert not checkpointer.thread.is_alive()  # closing the store ends the thread


def _wal_frames(store: SQLiteStore) -> int:
    """Frames in the store's log now (what a PASSIVE checkpoint reports; it copies what it can)."""
    with closing(store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")) as cur:
        row = cur.fetchone()
    return int(row[1])


def _commit_step(store: SQLiteStore, n: int) -> None:
    """Commit step ``n`` of run ``r`` (a ~300-byte step, one transaction)."""
    with store.transaction():
        assert store.put_step(StepRecord("r", str(n), "inc", "call", "[]", "x" * 300), "me", 1)


def _log_after_a_checkpoint_overtaken_by_commits(store: SQLiteStore, db: Path) -> int:
    """Frames in the log after a background checkpoint that commits overtook, and more commits.

    The checkpoint is made as the thread makes it, on a connection of its own, but while a
    reader still sees the log as it was before step 21: it copies only up to there, as one
    racing a writer that kept committing would. Then steps 22-40 are committed.
    """
    with store.transaction():
        store.create_claimed(_record("r"), "me", 30.0)
    for n in range(1, 21):
        _commit_step(store, n)
    with closing(sqlite3.connect(db, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM mai_steps").fetchone()
        _commit_step(store, 21)
        with closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        reader.execute("COMMIT")
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer.made = checkpointer.catches_up  # as the thread leaves it after a checkpoint
    for n in range(22, 41):
        _commit_step(store, n)
    return _wal_frames(store)


def _store_with_its_checkpointer(db: Path, sync: str) -> SQLiteStore:
    """An open store whose checkpoint thread exists and is idle (it made one checkpoint)."""
    store = SQLiteStore(f"sqlite:///{db}?synchronous={sync}")
    store.open()
    store._checkpoint_soon()
    checkpointer = store._checkpointer
    assert checkpointer is not None
    assert checkpointer.done.wait(60)  # a bound against a hang, not a timing assertion
    return store


def test_at_full_the_writer_catches_up_so_the_log_starts_over(tmp_path: Path) -> None:
    """After a checkpoint commits overtook, the writer copies the rest: the log starts over."""
    full = _store_with_its_checkpointer(tmp_path / "f.db", "full")
    try:
        caught_up = _log_after_a_checkpoint_overtaken_by_commits(full, tmp_path / "f.db")
        assert full._checkpointer is not None
        assert full._checkpointer.made is False  # the writer's next commit caught up
    finally:
        full.close()
    normal = _store_with_its_checkpointer(tmp_path / "n.db", "normal")
    try:  # no catch-up at normal (a commit there does not fsync): the log kept growing
        grown = _log_after_a_checkpoint_overtaken_by_commits(normal, tmp_path / "n.db")
    finally:
        normal.close()
    # 19 commits after the restart hold fewer frames than 40 without one
    assert caught_up < grown
    assert caught_up <= 19 * 3
    assert grown >= 40
