"""An optional store capability: one page of runs, filtered, by an indexed keyset query.

``Store.list_runs`` returns the newest runs and nothing after them; a view over 100,000 runs
needs the next page too, without sorting the whole table for each one. A store that can answers
:meth:`PagedRunStore.page_runs`; callers check with ``isinstance(store, PagedRunStore)`` and fall
back to :func:`page_from_list` (``list_runs`` and filtering in Python) when it cannot.

Order: newest first, ``(created_at DESC, run_id DESC)``; a run-id search is ordered by run id.
The cursor is an opaque string made by :func:`encode_cursor`: the keyset of the last row shown,
so a page never skips or repeats a run when new ones arrive meanwhile.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mai._errors import MaiError
from mai.core._records import record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._store import RunRecord, RunStatus

#: The largest page a store is asked for.
MAX_PAGE = 500


class PageCursorError(MaiError, ValueError):
    """A page cursor that was not made by :func:`encode_cursor` (or belongs to another query)."""


@record
class RunQuery:
    """Which runs a page shows.

    Attributes:
        status: Only runs with this status.
        workflow: Only runs of this workflow (exact name).
        run_id_prefix: Only runs whose id starts with this text (then ordered by run id).
    """

    status: RunStatus | None = None
    workflow: str | None = None
    run_id_prefix: str | None = None


@record
class RunSummary:
    """A run as a list shows it (none of its payloads)."""

    run_id: str
    workflow: str
    status: RunStatus
    created_at: float
    updated_at: float
    attempts: int
    queue: str


@runtime_checkable
class PagedRunStore(Protocol):
    """A store that pages runs with an indexed keyset query (an optional capability)."""

    def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """Return up to ``limit`` runs matching ``query`` after the cursor ``after``.

        Returns the runs and the cursor of the next page (``None`` on the last page).

        Raises:
            PageCursorError: When ``after`` is not a cursor of this query.
        """


def encode_cursor(query: RunQuery, last: RunSummary) -> str:
    """The cursor after ``last`` for ``query`` (``repr`` keeps the float exact)."""
    if query.run_id_prefix:
        return f"i|{last.run_id}"
    return f"t|{last.created_at!r}|{last.run_id}"


def decode_cursor(query: RunQuery, cursor: str) -> tuple[float, str]:
    """Return ``(created_at, run_id)`` of a cursor (``created_at`` is 0 for a search by id).

    Raises:
        PageCursorError: When ``cursor`` was not made by :func:`encode_cursor` for such a query.
    """
    kind, _, rest = cursor.partition("|")
    if query.run_id_prefix and kind == "i" and rest:
        return 0.0, rest
    if not query.run_id_prefix and kind == "t":
        when, sep, run_id = rest.partition("|")
        try:
            if sep and run_id:
                return float(when), run_id
        except ValueError:
            pass
    raise PageCursorError(f"page cursor {cursor[:60]!r} is not a cursor of this run list")


def summary_of(record: RunRecord) -> RunSummary:
    """The summary of a full run record."""
    return RunSummary(
        record.run_id,
        record.workflow,
        record.status,
        record.created_at,
        record.updated_at,
        record.attempts,
        record.queue,
    )


def matches(query: RunQuery, run: RunSummary | RunRecord) -> bool:
    """Whether ``run`` belongs to the runs ``query`` selects."""
    return (
        (query.status is None or run.status == query.status)
        and (query.workflow is None or run.workflow == query.workflow)
        and (query.run_id_prefix is None or run.run_id.startswith(query.run_id_prefix))
    )


def _order(query: RunQuery) -> tuple[Callable[[RunSummary], Any], bool]:
    """The key that orders a page and whether it is descending (newest first, or by run id)."""
    if query.run_id_prefix:
        return (lambda r: r.run_id), False
    return (lambda r: (r.created_at, r.run_id)), True


def after_cursor(query: RunQuery, cursor: str | None) -> Callable[[RunSummary], bool]:
    """A predicate: is the run strictly after the cursor in the page order?"""
    if cursor is None:
        return lambda _r: True
    when, run_id = decode_cursor(query, cursor)
    if query.run_id_prefix:
        return lambda r: r.run_id > run_id
    return lambda r: r.created_at < when or (r.created_at == when and r.run_id < run_id)


def merge_pages(
    query: RunQuery, parts: Iterable[list[RunSummary]], limit: int
) -> tuple[list[RunSummary], str | None]:
    """Merge runs fetched in page order by several indexed queries into one page."""
    key, reverse = _order(query)
    merged = list(heapq.merge(*parts, key=key, reverse=reverse))
    rows = merged[:limit]
    more = len(merged) > limit
    return rows, (encode_cursor(query, rows[-1]) if more and rows else None)


def page_from_list(
    records: Iterable[RunRecord], query: RunQuery, after: str | None, limit: int
) -> tuple[list[RunSummary], str | None]:
    """A page computed from a list of runs (for a store without :class:`PagedRunStore`)."""
    later = after_cursor(query, after)
    key, reverse = _order(query)
    rows = sorted(
        (s for s in map(summary_of, records) if matches(query, s) and later(s)),
        key=key,
        reverse=reverse,
    )
    page = rows[:limit]
    return page, (encode_cursor(query, page[-1]) if len(rows) > limit and page else None)
