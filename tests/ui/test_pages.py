"""Pages of runs: the optional PagedRunStore capability of the built-in stores."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from mai.core.durable import (
    MemoryStore,
    PageCursorError,
    PagedRunStore,
    RunQuery,
    RunRecord,
    RunStatus,
    SQLiteStore,
)

_ids = itertools.count()
STATUSES = list(RunStatus)


def fill(store, n: int = 60) -> list[RunRecord]:
    """Create ``n`` runs over several statuses, workflows, queues and tied start times."""
    records = []
    with store.transaction():
        for i in range(n):
            record = RunRecord(
                run_id=f"{'ab'[i % 2]}-{i:03d}",
                workflow=("etl", "report", "agent")[i % 3],
                ref=None,
                plan_hash="h",
                plan="{}",
                input="{}",
                status=STATUSES[i % len(STATUSES)],
                created_at=1_000_000.0 + i // 3,  # three runs share each start time
                queue=("default", "slow")[i % 2],
            )
            store.create_run(record)
            records.append(record)
    return records


def walk(store, query: RunQuery, size: int) -> list[str]:
    """Every run of ``query``, page by page."""
    seen: list[str] = []
    after = None
    for _ in range(1000):
        rows, after = store.page_runs(query, after, size)
        assert len(rows) <= size
        seen += [r.run_id for r in rows]
        if after is None:
            return seen
    raise AssertionError("the pages never ended")


def expected(records: list[RunRecord], query: RunQuery) -> list[str]:
    """What the pages must show, computed without the store."""
    keep = [
        r
        for r in records
        if (query.status is None or r.status == query.status)
        and (query.workflow is None or r.workflow == query.workflow)
        and (query.run_id_prefix is None or r.run_id.startswith(query.run_id_prefix))
    ]
    if query.run_id_prefix:
        return sorted(r.run_id for r in keep)
    return [r.run_id for r in sorted(keep, key=lambda r: (r.created_at, r.run_id), reverse=True)]


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    """An open built-in store (memory, SQLite on a real file)."""
    if request.param == "memory":
        s = MemoryStore(f"memory://pages-{next(_ids)}")
    else:
        s = SQLiteStore(f"sqlite:///{tmp_path}/pages.db")
    s.open()
    yield s
    s.close()


QUERIES = [
    RunQuery(),
    RunQuery(status=RunStatus.FAILED),
    RunQuery(workflow="report"),
    RunQuery(status=RunStatus.SUCCEEDED, workflow="etl"),
    RunQuery(run_id_prefix="a-0"),
    RunQuery(run_id_prefix="b-01", status=RunStatus.PENDING),
    RunQuery(workflow="nothing-like-it"),
]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
@pytest.mark.parametrize("size", [1, 7, 500])
def test_pages_cover_every_matching_run_once_in_order(store, query, size):
    """Walking the pages yields exactly the matching runs, newest first, none twice."""
    records = fill(store)
    assert isinstance(store, PagedRunStore)
    assert walk(store, query, size) == expected(records, query)


def test_a_page_does_not_shift_when_new_runs_arrive(store):
    """The cursor is a keyset: runs created after the first page do not repeat its rows."""
    records = fill(store, 30)
    first, after = store.page_runs(RunQuery(), None, 10)
    with store.transaction():
        store.create_run(RunRecord("z-new", "etl", None, "h", "{}", "{}", created_at=2_000_000.0))
    second, _ = store.page_runs(RunQuery(), after, 10)
    order = expected(records, RunQuery())
    assert [r.run_id for r in first + second] == order[:20]


def test_a_cursor_of_another_kind_of_query_is_refused(store):
    """A run-id search cursor given to the time-ordered list is a clear PageCursorError."""
    fill(store, 20)
    _, after = store.page_runs(RunQuery(run_id_prefix="a"), None, 2)
    assert after is not None
    with pytest.raises(PageCursorError, match="not a cursor of this run list"):
        store.page_runs(RunQuery(), after, 2)
    with pytest.raises(ValueError, match="not a cursor"):
        store.page_runs(RunQuery(), "garbage", 2)


def test_sqlite_pages_never_sort_the_table(tmp_path):
    """Every statement of a SQLite page reads an index in order (no temp B-tree over rows)."""
    s = SQLiteStore(f"sqlite:///{tmp_path}/plan.db")
    s.open()
    fill(s, 30)
    plans: list[str] = []
    s.conn.set_trace_callback(plans.append)
    for query in QUERIES:
        _, after = s.page_runs(query, None, 5)
        if after is not None:
            s.page_runs(query, after, 5)
    s.conn.set_trace_callback(None)
    check = sqlite3.connect(s.path)
    for sql in {p for p in plans if p.lstrip().upper().startswith("SELECT")}:
        detail = " / ".join(row[3] for row in check.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN mai_runs" not in detail or "COVERING INDEX" in detail, (sql, detail)
        assert "TEMP B-TREE FOR ORDER BY" not in detail, (sql, detail)
    check.close()
    s.close()
