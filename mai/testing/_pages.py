"""A check for stores offering pages of runs (:class:`~mai.core.durable.PagedRunStore`).

A store plugin that implements ``page_runs`` runs :func:`check_paged_store` against itself: it
fills a fresh store with runs over every status, several workflows and queues and tied start
times, then walks every page of several queries and compares them with what the definition says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai.core.durable import PageCursorError, PagedRunStore, RunQuery, RunRecord, RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

#: The queries the check walks (filters alone and combined, id searches, an empty result).
QUERIES = (
    RunQuery(),
    RunQuery(status=RunStatus.FAILED),
    RunQuery(workflow="report"),
    RunQuery(status=RunStatus.SUCCEEDED, workflow="etl"),
    RunQuery(run_id_prefix="a-0"),
    RunQuery(run_id_prefix="b-01", status=RunStatus.PENDING),
    RunQuery(workflow="nothing-like-it"),
)


def fill_runs(store: Any, n: int = 60) -> list[RunRecord]:
    """Create ``n`` runs over every status, three workflows, two queues, three per start time."""
    statuses = list(RunStatus)
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
                status=statuses[i % len(statuses)],
                created_at=1_000_000.0 + i // 3,
                queue=("default", "slow")[i % 2],
            )
            store.create_run(record)
            records.append(record)
    return records


def expected_page_order(records: list[RunRecord], query: RunQuery) -> list[str]:
    """The run ids ``query`` selects, in page order, computed without any store."""
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


def walk_pages(store: Any, query: RunQuery, size: int) -> list[str]:
    """Every run id of ``query``, page by page of ``size``."""
    seen: list[str] = []
    after = None
    for _ in range(10_000):
        rows, after = store.page_runs(query, after, size)
        if len(rows) > size:
            raise AssertionError(f"a page of {size} returned {len(rows)} runs for {query}")
        seen += [r.run_id for r in rows]
        if after is None:
            return seen
    raise AssertionError(f"the pages of {query} never ended")


def check_paged_store(make_store: Callable[[], Any]) -> None:
    """Check a store's ``page_runs`` against its definition; raise ``AssertionError`` if not.

    The definition is :class:`~mai.core.durable.PagedRunStore`'s.

    Args:
        make_store: Returns a fresh, empty, unopened store (called once).

    Raises:
        AssertionError: Naming the query and page size whose pages were wrong.
    """
    store: Any = make_store()
    store.open()
    try:
        capable: object = store
        if not isinstance(capable, PagedRunStore):
            raise AssertionError(  # noqa: TRY004 - a conformance check fails with AssertionError
                f"{type(store).__name__} has no page_runs method"
            )
        records = fill_runs(store)
        for query in QUERIES:
            want = expected_page_order(records, query)
            for size in (1, 7, 500):
                got = walk_pages(store, query, size)
                if got != want:
                    raise AssertionError(
                        f"pages of {query} by {size}: expected {want[:8]}..., got {got[:8]}..."
                    )
        _, after = store.page_runs(RunQuery(run_id_prefix="a"), None, 2)
        try:
            store.page_runs(RunQuery(), after, 2)
        except PageCursorError:
            pass
        else:
            raise AssertionError("a cursor of a run-id search was accepted by the time order")
    finally:
        store.close()
