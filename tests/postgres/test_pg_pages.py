"""The PostgreSQL store pages runs by indexed keyset queries (the PagedRunStore capability)."""

from __future__ import annotations

import psycopg

import mai.testing
from mai.testing._pages import QUERIES, fill_runs


def test_postgres_pages_runs_like_every_store(pg_url):
    """page_runs passes the shipped check on a real server."""
    from mai_postgres import PostgresStore

    mai.testing.check_paged_store(lambda: PostgresStore(pg_url))


def test_postgres_pages_read_indexes(pg_url):
    """With sequential scans discouraged, every page query still has an index plan."""
    from mai_postgres import PostgresStore

    store = PostgresStore(pg_url)
    store.open()
    fill_runs(store, 60)
    statements: list[tuple[str, tuple]] = []
    original = store._all

    def spy(sql, params=()):
        statements.append((sql, tuple(params)))
        return original(sql, params)

    store._all = spy  # type: ignore[method-assign]
    for query in QUERIES:
        _, after = store.page_runs(query, None, 5)
        if after is not None:
            store.page_runs(query, after, 5)
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("ANALYZE mai_runs")
        for sql, params in statements:
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {sql}", params).fetchall())
            assert "Index" in plan, (sql, plan)
