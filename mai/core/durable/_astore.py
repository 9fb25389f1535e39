"""The one async interface the runtime, workers, the CLI and the web view use to reach a store.

:class:`AsyncStore` lists every operation they need, each a coroutine, including the few
multi-statement transactions of the runtime (claiming a run, recording its outcome with what
finished before it, consuming a message). :class:`ExecutorStore` implements it over a
synchronous :class:`~mai.core.durable.Store` (SQLite, memory, the PostgreSQL plugin): each
call is run on the store's own thread by a :class:`~mai.core.durable._executor.StoreExecutor`
(writes grouped into transactions; a non-blocking store such as the memory store runs inline).

Optional capabilities of a synchronous store are small ``runtime_checkable`` protocols checked
with ``isinstance`` (:class:`~mai.core.durable.PagedRunStore`, ``Notifying``, ``InlineStore``,
``OneStatementWrites``, ``Reconnecting``); the async interface answers every operation either
way (a page of runs is computed from a list when the store cannot page).

A store that lacks a method of the :class:`~mai.core.durable.Store` protocol (one written for an
older release) is refused when the runtime opens, with a :class:`StoreInterfaceError` naming
every missing method.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from . import _serde
from ._errors import LeaseLostError, StoreInterfaceError
from ._executor import StoreExecutor
from ._store import (
    ClaimedCreate,
    Notifying,
    RunRecord,
    RunStatus,
    StepRecord,
    Store,
    missing_methods,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence

    from ._history import AttemptRecord, EventRecord
    from ._pages import RunQuery, RunSummary

#: How many runs a page is computed from when the store cannot page (``page_runs``).
FALLBACK_LIMIT = 5000


class AsyncStore(Protocol):
    """Every store operation the runtime, workers, CLI and web view use, as coroutines.

    Writes by a run's owner are fenced on ``(owner, epoch)`` exactly as in
    :class:`~mai.core.durable.Store`.
    """

    url: str

    async def open(self) -> None:
        """Connect, check and migrate the store."""

    def close(self) -> None:
        """Release the store (waits for queued work; callable from synchronous code)."""

    async def now(self) -> float:
        """The store's clock (epoch seconds)."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or ``None``."""

    async def list_runs(self, status: RunStatus | None, limit: int) -> list[RunRecord]:
        """Runs, newest first, optionally only those with ``status``."""

    async def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """One page of runs matching ``query`` after the cursor ``after``, and the next cursor."""

    @property
    def paged(self) -> bool:
        """Whether :meth:`page_runs` is answered by the store's own indexed queries."""

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        """The run's committed steps."""

    async def load_history(self, run_id: str) -> list[AttemptRecord]:
        """The outcomes of the run's earlier attempts, oldest first."""

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert a run unless its id exists; the stored run and whether it is new."""

    async def claim(
        self, run_id: str, owner: str, lease: float, steal_from: str | None
    ) -> RunRecord | None:
        """Claim one run (a run parked in a durable timer is not charged an attempt)."""

    async def create_and_claim(
        self, record: RunRecord, owner: str, lease: float
    ) -> tuple[RunRecord, RunRecord | None]:
        """Create a run and, when it is new, claim it, in one transaction.

        Returns the stored run and the claimed one (``None`` when the run existed: nothing
        was claimed then).
        """

    async def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease: float,
        limit: int,
        queue_limits: Mapping[str, int] | None,
    ) -> list[RunRecord]:
        """Claim up to ``limit`` claimable runs of ``queues``, oldest first."""

    async def renew(self, run_id: str, owner: str, epoch: int, lease: float) -> tuple[bool, bool]:
        """Extend a lease: whether it is still ours, and whether cancellation was requested."""

    async def mark_progress(self, run_id: str, owner: str, epoch: int) -> bool:
        """Record that the run made progress in this attempt."""

    async def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
        """Commit one step (fenced)."""

    async def put_steps(self, records: list[StepRecord], owner: str, epoch: int) -> None:
        """Commit several steps in one transaction (fenced)."""

    async def finish(
        self,
        extra: list[StepRecord],
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Commit ``extra`` then record the run's outcome, in one transaction (fenced)."""

    async def release(self, extra: list[StepRecord], run_id: str, owner: str, epoch: int) -> bool:
        """Commit ``extra`` then hand the run back, in one transaction (fenced)."""

    async def dead_letter(self, run_id: str, reason: str) -> bool:
        """Mark a live run DEAD with ``reason``."""

    async def request_cancel(self, run_id: str) -> RunRecord | None:
        """Flag the run for cancellation."""

    async def requeue_run(self, run_id: str) -> RunRecord | None:
        """Give a DEAD or FAILED run a new attempt."""

    async def add_event(self, run_id: str, topic: str, payload: str) -> int:
        """Store a message for the run."""

    async def take_event(
        self,
        run_id: str,
        topic: str,
        step_id: str,
        owner: str,
        epoch: int,
        timed_out: bool,
        worker: str,
    ) -> StepRecord | None:
        """Consume a message (or record the timeout) as the wait's step, in one transaction."""

    def listener(self, *, slots: bool = False) -> Any:
        """A notification listener (``wait(timeout)``, ``close()``), or ``None``.

        ``slots``: also notify when a run finishes (a slot of a limited queue is free).
        """

    def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a read of the synchronous interface from synchronous code and wait for it."""


class ExecutorStore:
    """:class:`AsyncStore` over a synchronous store, run on the store's thread.

    Each method returns the executor's coroutine directly (no extra frame on the hot path).

    Attributes:
        store: The synchronous store.
        executor: Its :class:`StoreExecutor` (``commits`` and ``writes`` count its work).
    """

    def __init__(self, store: Store) -> None:
        """Adapt ``store`` (checked: a store lacking protocol methods is refused)."""
        check_store(store)
        self.store = store
        self.url = store.url
        self.executor = StoreExecutor(store)
        self._read = self.executor.read
        self._write = self.executor.write
        #: Whether a new run is inserted already claimed (one statement; checked once here).
        self._claimed_create = isinstance(store, ClaimedCreate)

    async def open(self) -> None:
        """Start the store thread and open the store (stopping the thread if that fails)."""
        self.executor.start()
        try:
            await self._read(self.store.open)
        except BaseException:
            self.executor.stop()
            raise

    def close(self) -> None:
        """Close the store on its thread, then stop the thread."""
        try:
            self.executor.call_blocking(self.store.close)
        finally:
            self.executor.stop()

    def now(self) -> Coroutine[Any, Any, float]:
        """The store's clock."""
        return self._read(self.store.now)

    def get_run(self, run_id: str) -> Coroutine[Any, Any, RunRecord | None]:
        """The run, or ``None``."""
        return self._read(self.store.get_run, run_id)

    def list_runs(
        self, status: RunStatus | None, limit: int
    ) -> Coroutine[Any, Any, list[RunRecord]]:
        """Runs, newest first."""
        return self._read(self.store.list_runs, status, limit)

    async def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """A page of runs: the store's indexed query, or computed from a list of runs."""
        from ._pages import PagedRunStore, page_from_list  # noqa: PLC0415 - only lists need pages

        if isinstance(self.store, PagedRunStore):
            return await self._read(self.store.page_runs, query, after, limit)  # type: ignore[no-any-return]
        records = await self._read(self.store.list_runs, query.status, FALLBACK_LIMIT)
        return page_from_list(records, query, after, limit)

    @property
    def paged(self) -> bool:
        """Whether pages are answered by the store's own indexed queries."""
        from ._pages import PagedRunStore  # noqa: PLC0415 - only lists need pages

        return isinstance(self.store, PagedRunStore)

    def load_steps(self, run_id: str) -> Coroutine[Any, Any, list[StepRecord]]:
        """The run's committed steps."""
        return self._read(self.store.load_steps, run_id)

    def load_history(self, run_id: str) -> Coroutine[Any, Any, list[AttemptRecord]]:
        """The run's earlier outcomes."""
        return self._read(self.store.load_history, run_id)

    def create_run(self, record: RunRecord) -> Coroutine[Any, Any, tuple[RunRecord, bool]]:
        """Insert a run unless its id exists."""
        return self._write(self.store.create_run, record)

    def claim(
        self, run_id: str, owner: str, lease: float, steal_from: str | None
    ) -> Coroutine[Any, Any, RunRecord | None]:
        """Claim one run (see :func:`claim_tx`)."""
        return self._write(claim_tx, self.store, run_id, owner, lease, steal_from)

    def create_and_claim(
        self, record: RunRecord, owner: str, lease: float
    ) -> Coroutine[Any, Any, tuple[RunRecord, RunRecord | None]]:
        """Create a run and claim it when new (see :func:`create_and_claim_tx`)."""
        if self._claimed_create:
            return self._write(self.store.create_claimed, record, owner, lease)  # type: ignore[attr-defined]
        return self._write(create_and_claim_tx, self.store, record, owner, lease)

    def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease: float,
        limit: int,
        queue_limits: Mapping[str, int] | None,
    ) -> Coroutine[Any, Any, list[RunRecord]]:
        """Claim up to ``limit`` runs of ``queues``."""
        return self._write(self.store.claim_next, queues, owner, lease, limit, queue_limits)

    def renew(
        self, run_id: str, owner: str, epoch: int, lease: float
    ) -> Coroutine[Any, Any, tuple[bool, bool]]:
        """Extend a lease; also report a cancellation request."""
        return self._write(renew_tx, self.store, run_id, owner, epoch, lease)

    def mark_progress(self, run_id: str, owner: str, epoch: int) -> Coroutine[Any, Any, bool]:
        """Record progress in this attempt."""
        return self._write(self.store.mark_progress, run_id, owner, epoch)

    def put_step(self, record: StepRecord, owner: str, epoch: int) -> Coroutine[Any, Any, bool]:
        """Commit one step."""
        return self._write(self.store.put_step, record, owner, epoch)

    def put_steps(
        self, records: list[StepRecord], owner: str, epoch: int
    ) -> Coroutine[Any, Any, None]:
        """Commit several steps in one transaction."""
        return self._write(put_steps_tx, self.store, records, owner, epoch)

    def finish(
        self,
        extra: list[StepRecord],
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> Coroutine[Any, Any, bool]:
        """Commit ``extra`` and record the outcome.

        Without ``extra`` it is the store's own ``finish_run``, which a store can make alone
        (``OneStatementWrites``) or together with other runs' outcomes (``BatchedFinish``).
        """
        if not extra:
            return self._write(self.store.finish_run, run_id, owner, epoch, status, output, error)
        return self._write(
            finish_tx, self.store, extra, run_id, owner, epoch, status, output, error
        )

    def release(
        self, extra: list[StepRecord], run_id: str, owner: str, epoch: int
    ) -> Coroutine[Any, Any, bool]:
        """Commit ``extra`` and hand the run back."""
        return self._write(release_tx, self.store, extra, run_id, owner, epoch)

    def dead_letter(self, run_id: str, reason: str) -> Coroutine[Any, Any, bool]:
        """Mark a live run DEAD."""
        return self._write(self.store.dead_letter, run_id, reason)

    def request_cancel(self, run_id: str) -> Coroutine[Any, Any, RunRecord | None]:
        """Flag the run for cancellation."""
        return self._write(self.store.request_cancel, run_id)

    def requeue_run(self, run_id: str) -> Coroutine[Any, Any, RunRecord | None]:
        """Give a DEAD or FAILED run a new attempt."""
        return self._write(self.store.requeue_run, run_id)

    def add_event(self, run_id: str, topic: str, payload: str) -> Coroutine[Any, Any, int]:
        """Store a message for the run."""
        return self._write(self.store.add_event, run_id, topic, payload)

    def take_event(
        self,
        run_id: str,
        topic: str,
        step_id: str,
        owner: str,
        epoch: int,
        timed_out: bool,
        worker: str,
    ) -> Coroutine[Any, Any, StepRecord | None]:
        """Consume a message, or record the timeout, as the wait's step."""
        return self._write(
            take_event_tx, self.store, run_id, topic, step_id, owner, epoch, timed_out, worker
        )

    def listener(self, *, slots: bool = False) -> Any:
        """The store's notification listener, or ``None`` when it does not notify.

        ``slots`` is passed on only when asked for: a store written before it still works for
        workers without global queue limits.
        """
        if not isinstance(self.store, Notifying):
            return None
        store: Any = self.store  # ``slots`` is an optional keyword of Notifying.listener
        return store.listener(slots=True) if slots else store.listener()

    def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (a read) on the store thread from synchronous code."""
        return self.executor.call_blocking(fn, *args)


def check_store(store: object) -> None:
    """Refuse a store that lacks methods of the :class:`~mai.core.durable.Store` protocol.

    Raises:
        StoreInterfaceError: Naming the store's class and every missing method.
    """
    lacking = missing_methods(store)
    try:
        url = store.url  # type: ignore[attr-defined]
    except AttributeError:
        url = None
    if not isinstance(url, str):
        lacking.append("url (the redacted URL, a str)")
    if lacking:
        cls = type(store)
        raise StoreInterfaceError(
            f"the store {cls.__module__}.{cls.__qualname__} lacks {', '.join(lacking)}: it "
            "was written for an older mai store protocol; implement these methods (see "
            "mai.core.durable.Store and the conformance suite mai.testing.StoreConformance)",
            missing=lacking,
        )


# -- the runtime's transactions (run on the store thread, inside one transaction) ----------------


def claim_tx(
    store: Store, run_id: str, owner: str, lease: float, steal_from: str | None
) -> RunRecord | None:
    """Claim a run; one parked in a durable timer is not charged an attempt (same transaction).

    A run whose last record is a timer still running was sleeping when its process died: that
    death was not its doing, so its count of starts without progress goes back to 1.
    """
    claimed = store.claim_run(run_id, owner, lease, steal_from=steal_from)
    if claimed is None or claimed.attempts <= 1:
        return claimed
    steps = store.load_steps(run_id)
    if steps:
        last = max(steps, key=lambda s: s.finished_at)
        if last.kind == "timer" and wake_at(last) > store.now():
            store.mark_progress(run_id, owner, claimed.epoch)
            return dataclasses.replace(claimed, attempts=1)
    return claimed


def create_and_claim_tx(
    store: Store, record: RunRecord, owner: str, lease: float
) -> tuple[RunRecord, RunRecord | None]:
    """Create a run; when it is new, claim it in the same transaction (one commit, not two)."""
    stored, created = store.create_run(record)
    if not created:
        return stored, None
    return stored, store.claim_run(record.run_id, owner, lease)


def wake_at(step: StepRecord) -> float:
    """The wake-up time a timer step recorded (0 when unreadable)."""
    try:
        return float(_serde.loads(step.output))
    except (TypeError, ValueError):
        return 0.0


def put_steps_tx(store: Store, records: list[StepRecord], owner: str, epoch: int) -> None:
    """Commit each record (fenced)."""
    for r in records:
        store.put_step(r, owner, epoch)


def finish_tx(
    store: Store,
    extra: list[StepRecord],
    run_id: str,
    owner: str,
    epoch: int,
    status: RunStatus,
    output: str | None,
    error: str | None,
) -> bool:
    """Commit what finished but was not committed yet, then record the outcome (fenced)."""
    try:
        put_steps_tx(store, extra, owner, epoch)
    except LeaseLostError:
        return False
    return store.finish_run(run_id, owner, epoch, status, output, error)


def release_tx(store: Store, extra: list[StepRecord], run_id: str, owner: str, epoch: int) -> bool:
    """Commit what finished, then give the run back (fenced)."""
    try:
        put_steps_tx(store, extra, owner, epoch)
    except LeaseLostError:
        return False
    return store.release_run(run_id, owner, epoch)


def renew_tx(store: Store, run_id: str, owner: str, epoch: int, lease: float) -> tuple[bool, bool]:
    """Extend the lease; report whether it held and whether cancellation was requested."""
    ok = store.renew_lease(run_id, owner, epoch, lease)
    run = store.get_run(run_id) if ok else None
    return ok, bool(run is not None and run.cancel_requested)


def take_event_tx(
    store: Store,
    run_id: str,
    topic: str,
    sid: str,
    owner: str,
    epoch: int,
    timed_out: bool,
    worker: str,
) -> StepRecord | None:
    """Consume a message and record the wait's outcome in one transaction."""
    event: EventRecord | None = store.take_event(run_id, topic, sid)
    if event is None and not timed_out:
        return None
    now = store.now()
    body = {"payload": _serde.loads(event.payload)} if event is not None else {"timeout": True}
    record = StepRecord(
        run_id,
        sid,
        "mai.wait_for",
        "event",
        None,
        _serde.dumps(body, what="event"),
        started_at=now,
        finished_at=now,
        worker=worker,
    )
    store.put_step(record, owner, epoch)
    return record
