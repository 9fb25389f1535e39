"""The SQLite store keeps each plan once (``mai_plans``), not in every run's row."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import pytest

import mai
from mai.core.durable import RunRecord, SQLiteStore
from mai.core.durable._versioning import plan_for

if TYPE_CHECKING:
    from pathlib import Path


@mai.module
async def inc(x: int) -> int:
    """A trivial step."""
    return x + 1


FLOW = mai.Sequential(inc, inc, name="plans-flow")


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of a query on the file, read with a connection of its own."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def _store(db: Path) -> SQLiteStore:
    """An open store on ``db``."""
    store = SQLiteStore(f"sqlite:///{db}")
    store.open()
    return store


def _create_then_fail(store: SQLiteStore, record: RunRecord) -> None:
    """Create ``record`` in a transaction that then fails (and rolls back)."""
    with store.transaction():
        store.create_run(record)
        raise RuntimeError("the batch failed")


async def test_runs_of_one_workflow_store_its_plan_once(tmp_path: Path) -> None:
    """Three runs of a workflow write its plan once; each run still reads back the full plan."""
    db = tmp_path / "plans.db"
    async with mai.Runtime(f"sqlite:///{db}") as rt:
        for i in range(3):
            assert await (await rt.start(FLOW, i, run_id=f"r{i}")).result() == i + 2
    plan_hash, plan = plan_for(FLOW)
    assert _rows(db, "SELECT plan_hash, plan FROM mai_plans") == [(plan_hash, plan)]
    assert _rows(db, "SELECT DISTINCT plan FROM mai_runs") == [("",)]
    store = _store(db)
    try:
        for i in range(3):
            run = store.get_run(f"r{i}")
            assert run is not None
            assert (run.plan_hash, run.plan) == (plan_hash, plan)
        assert {r.plan for r in store.list_runs()} == {plan}
    finally:
        store.close()


def test_another_plan_under_a_known_hash_stays_in_its_row(tmp_path: Path) -> None:
    """A record whose plan differs from the one stored under its hash keeps its own plan."""
    store = _store(tmp_path / "clash.db")
    try:
        with store.transaction():
            store.create_run(RunRecord("a", "wf", None, "same-hash", '{"plan": "A"}', "{}"))
        with store.transaction():
            stored, created = store.create_run(
                RunRecord("b", "wf", None, "same-hash", '{"plan": "B"}', "{}")
            )
        assert created
        assert stored.plan == '{"plan": "B"}'
        assert [store.get_run(r).plan for r in ("a", "b")] == ['{"plan": "A"}', '{"plan": "B"}']  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_rolled_back_plan_is_written_again_by_the_next_run(tmp_path: Path) -> None:
    """A plan whose transaction rolled back is not taken as stored: the next run writes it."""
    db = tmp_path / "rollback.db"
    store = _store(db)
    try:
        record = RunRecord("gone", "wf", None, "h1", '{"plan": 1}', "{}")
        with pytest.raises(RuntimeError, match="the batch failed"):
            _create_then_fail(store, record)
        assert store.get_run("gone") is None
        with store.transaction():
            store.create_run(RunRecord("kept", "wf", None, "h1", '{"plan": 1}', "{}"))
        run = store.get_run("kept")
        assert run is not None
        assert run.plan == '{"plan": 1}'
        assert _rows(db, "SELECT plan_hash FROM mai_plans") == [("h1",)]
    finally:
        store.close()


def test_rows_written_with_their_plan_inline_still_read(tmp_path: Path) -> None:
    """A run row that holds its plan itself (written before mai_plans) reads back unchanged."""
    db = tmp_path / "old.db"
    store = _store(db)
    store.close()
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "INSERT INTO mai_runs (run_id, workflow, plan_hash, plan, input, status, created_at, "
            "updated_at) VALUES ('old', 'wf', 'h0', '{\"old\": true}', '{}', 'PENDING', 1, 1)"
        )
    store = _store(db)
    try:
        run = store.get_run("old")
        assert run is not None
        assert run.plan == '{"old": true}'
    finally:
        store.close()
