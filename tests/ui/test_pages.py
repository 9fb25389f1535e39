"""Pages of runs: the optional PagedRunStore capability of the built-in stores."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

import mai.testing
from mai.core.durable import MemoryStore, PageCursorError, RunQuery, RunRecord, SQLiteStore
from mai.testing._pages import QUERIES, expected_page_order, fill_runs

_ids = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path):
    """A factory of fresh built-in stores (memory, SQLite on a real file)."""
    if request.param == "memory":
        return lambda: MemoryStore(f"memory://pages-{next(_ids)}")
    return lambda: SQLiteStore(f"sqlite:///{tmp_path}/pages-{next(_ids)}.db")


def test_pages_cover_every_matching_run_once_in_order(make_store):
    """Walking the pages of every kind of query yields exactly its runs, in order, none twice."""
    mai.testing.check_paged_store(make_store)


def test_the_check_catches_a_store_that_drops_a_run(make_store):
    """check_paged_store fails a store whose pages lose a run at a page boundary."""

    class Lossy(MemoryStore):
        def page_runs(self, query, after, limit):  # type: ignore[no-untyped-def]
            rows, cursor = super().page_runs(query, after, limit + 1)
            return rows[:limit], cursor  # the extra row is never shown

    with pytest.raises(AssertionError, match="pages of"):
        mai.testing.check_paged_store(lambda: Lossy(f"memory://lossy-{next(_ids)}"))


def test_a_page_does_not_shift_when_new_runs_arrive(make_store):
    """The cursor is a keyset: runs created after the first page do not repeat its rows."""
    store = make_store()
    store.open()
    records = fill_runs(store, 30)
    first, after = store.page_runs(RunQuery(), None, 10)
    with store.transaction():
        store.create_run(RunRecord("z-new", "etl", None, "h", "{}", "{}", created_at=2e6))
    second, _ = store.page_runs(RunQuery(), after, 10)
    assert [r.run_id for r in first + second] == expected_page_order(records, RunQuery())[:20]
    with pytest.raises(PageCursorError, match="not a cursor of this run list"):
        store.page_runs(RunQuery(), "garbage", 2)
    store.close()


def test_sqlite_pages_never_sort_the_table(tmp_path):
    """Every statement of a SQLite page reads an index in order (no temp B-tree over rows)."""
    s = SQLiteStore(f"sqlite:///{tmp_path}/plan.db")
    s.open()
    fill_runs(s, 30)
    statements: list[str] = []
    s.conn.set_trace_callback(statements.append)
    for query in QUERIES:
        _, after = s.page_runs(query, None, 5)
        if after is not None:
            s.page_runs(query, after, 5)
    s.conn.set_trace_callback(None)
    check = sqlite3.connect(s.path)
    for sql in {p for p in statements if p.lstrip().upper().startswith("SELECT")}:
        detail = " / ".join(row[3] for row in check.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN mai_runs" not in detail or "COVERING INDEX" in detail, (sql, detail)
        assert "TEMP B-TREE FOR ORDER BY" not in detail, (sql, detail)
    check.close()
    s.close()
