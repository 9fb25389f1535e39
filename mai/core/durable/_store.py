"""The store protocol every durable backend implements, and the records it keeps.

Stores are synchronous: the runtime calls them from one long-lived executor thread per store
(see ``_executor.py``), inside :meth:`Store.transaction`, so a batch of writes from many
concurrent steps commits in one transaction. A store never needs to be thread-safe beyond that.

Every write that a run's owner makes is conditional on ``(owner, epoch)`` (fencing): a process
whose lease was taken over cannot overwrite the new owner's work; the method reports it by
returning ``False`` or raising :class:`~mai.core.durable.LeaseLostError`. A new run is stored
at epoch 0 and every claim increments it, so a run claimed at epoch 1 was never owned before and
has no steps (the runtime does not read them back then).
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from mai.core._records import record

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractContextManager

    from ._history import AttemptRecord, EventRecord


class RunStatus(enum.StrEnum):
    """Where a durable run is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"

    @property
    def terminal(self) -> bool:
        """True for a status a run never leaves."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.DEAD})


@record
class RunRecord:
    """One durable run as stored.

    Times are wall-clock epoch seconds from the store's clock; ``deadline`` is absolute.
    ``input`` is the JSON of ``{"args": [...], "kwargs": {...}}``; ``output`` the JSON of the
    result; ``error`` the JSON of ``{"type": ..., "message": ...}``.
    """

    run_id: str
    workflow: str
    ref: str | None
    plan_hash: str
    plan: str
    input: str
    status: RunStatus = RunStatus.PENDING
    output: str | None = None
    error: str | None = None
    format: str = "json"
    deadline: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    attempts: int = 0
    owner: str | None = None
    epoch: int = 0
    lease_until: float | None = None
    queue: str = "default"
    cancel_requested: bool = False
    trace_context: str | None = None
    #: Why the stored row could not be read faithfully (for example an unknown status); such a
    #: run is dead-lettered by recovery instead of breaking it.
    invalid: str | None = None


@record
class StepRecord:
    """One committed step: its recorded input and output.

    ``kind`` is ``"call"`` for a module call, ``"now"``, ``"timer"`` or ``"event"`` for the
    durable primitives. ``input`` is ``None`` when the input could not be recorded as JSON
    (then it is not compared on replay).
    """

    run_id: str
    step_id: str
    name: str
    kind: str
    input: str | None
    output: str
    format: str = "json"
    started_at: float = 0.0
    finished_at: float = 0.0
    attempts: int = 1
    worker: str | None = None


_R = TypeVar("_R")


class _StepBuilder:
    """:class:`StepRecord`'s fields as plain slots, in the same order (see :func:`_builder`)."""

    __slots__ = (  # noqa: RUF023 - the fields' order
        "run_id", "step_id", "name", "kind", "input", "output", "format", "started_at",
        "finished_at", "attempts", "worker",
    )  # fmt: skip

    def __init__(
        self,
        run_id: str,
        step_id: str,
        name: str,
        kind: str,
        input: str | None,  # noqa: A002 - the field's name
        output: str,
        format: str = "json",  # noqa: A002 - the field's name
        started_at: float = 0.0,
        finished_at: float = 0.0,
        attempts: int = 1,
        worker: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.step_id = step_id
        self.name = name
        self.kind = kind
        self.input = input
        self.output = output
        self.format = format
        self.started_at = started_at
        self.finished_at = finished_at
        self.attempts = attempts
        self.worker = worker


class _RunBuilder:
    """:class:`RunRecord`'s fields as plain slots, in the same order (see :func:`_builder`)."""

    __slots__ = (  # noqa: RUF023 - the fields' order
        "run_id", "workflow", "ref", "plan_hash", "plan", "input", "status", "output", "error",
        "format", "deadline", "created_at", "updated_at", "attempts", "owner", "epoch",
        "lease_until", "queue", "cancel_requested", "trace_context", "invalid",
    )  # fmt: skip

    def __init__(
        self,
        run_id: str,
        workflow: str,
        ref: str | None,
        plan_hash: str,
        plan: str,
        input: str,  # noqa: A002 - the field's name
        status: RunStatus = RunStatus.PENDING,
        output: str | None = None,
        error: str | None = None,
        format: str = "json",  # noqa: A002 - the field's name
        deadline: float | None = None,
        created_at: float = 0.0,
        updated_at: float = 0.0,
        attempts: int = 0,
        owner: str | None = None,
        epoch: int = 0,
        lease_until: float | None = None,
        queue: str = "default",
        cancel_requested: bool = False,
        trace_context: str | None = None,
        invalid: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.ref = ref
        self.plan_hash = plan_hash
        self.plan = plan
        self.input = input
        self.status = status
        self.output = output
        self.error = error
        self.format = format
        self.deadline = deadline
        self.created_at = created_at
        self.updated_at = updated_at
        self.attempts = attempts
        self.owner = owner
        self.epoch = epoch
        self.lease_until = lease_until
        self.queue = queue
        self.cancel_requested = cancel_requested
        self.trace_context = trace_context
        self.invalid = invalid


def _builder(cls: type[_R], twin: Callable[..., Any]) -> Callable[..., _R]:
    """A faster constructor for the frozen record class ``cls``: same arguments, same record.

    A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (~60 ns a
    field, most of a record's cost). The builder builds the mutable ``twin``, a plain class
    with the same fields and slots (plain attribute stores), then gives it its class:
    ``__class__`` assignment between two identical slot layouts, after which the record is as
    frozen as any other. A short durable run makes a dozen records; this was ~7% of its time.
    The twins are written out above rather than generated: a generated class is compiled when
    the module is imported, which every fresh process paid (the durable test suite checks that
    each twin has its record's fields, order and defaults).
    """

    def build(*args: Any, **kwargs: Any) -> _R:
        record = twin(*args, **kwargs)
        record.__class__ = cls
        return record  # type: ignore[no-any-return]

    build.__doc__ = f"Build a :class:`{cls.__name__}` (same arguments as the class)."
    return build


#: :class:`StepRecord` and :class:`RunRecord`, built faster (see :func:`_builder`).
new_step = _builder(StepRecord, _StepBuilder)
new_run = _builder(RunRecord, _RunBuilder)

_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
_RUN_INDEX = {name: i for i, name in enumerate(_RUN_FIELDS)}
_run_values = operator.attrgetter(*_RUN_FIELDS)


def evolve_run(run: RunRecord, changes: Mapping[str, object]) -> RunRecord:
    """``dataclasses.replace(run, **changes)`` in a third of its time (stores do it per run)."""
    values = list(_run_values(run))
    for name, value in changes.items():
        values[_RUN_INDEX[name]] = value
    return new_run(*values)


#: Column order of a run row, for SQL stores (``SELECT {RUN_COLUMNS} FROM ...``).
RUN_COLUMNS = (
    "run_id, workflow, ref, plan_hash, plan, input, status, output, error, format, deadline, "
    "created_at, updated_at, attempts, owner, epoch, lease_until, queue, cancel_requested, "
    "trace_context"
)
#: Column order of a step row (the fields of :class:`StepRecord`, in order).
STEP_COLUMNS = (
    "run_id, step_id, name, kind, input, output, format, started_at, finished_at, attempts, worker"
)

#: ``step_values(record)``: a :class:`StepRecord`'s fields as a tuple in :data:`STEP_COLUMNS`
#: order, the parameters of an SQL store's step insert (one C call, not eleven lookups).
step_values: Callable[[StepRecord], tuple[Any, ...]] = operator.attrgetter(
    *(f.name for f in dataclasses.fields(StepRecord))
)


def run_from_row(r: Sequence[Any]) -> RunRecord:
    """Build a :class:`RunRecord` from a row in :data:`RUN_COLUMNS` order.

    A row with a status this code does not know is returned as PENDING with
    :attr:`RunRecord.invalid` set, so recovery dead-letters it instead of failing.
    """
    invalid = None
    try:
        status = RunStatus(r[6])
    except ValueError:
        status, invalid = RunStatus.PENDING, f"the stored run has an unknown status {r[6]!r}"
    return new_run(
        run_id=r[0],
        workflow=r[1],
        ref=r[2],
        plan_hash=r[3],
        plan=r[4],
        input=r[5],
        status=status,
        output=r[7],
        error=r[8],
        format=r[9],
        deadline=r[10],
        created_at=r[11],
        updated_at=r[12],
        attempts=r[13],
        owner=r[14],
        epoch=r[15],
        lease_until=r[16],
        queue=r[17],
        cancel_requested=bool(r[18]),
        trace_context=r[19],
        invalid=invalid,
    )


@runtime_checkable
class Store(Protocol):
    """What a durable store provides. Methods are synchronous and run on one executor thread.

    Write methods are called inside :meth:`transaction`; the runtime groups many calls from
    concurrent steps into one transaction (one commit, one fsync).
    """

    #: The store's URL as shown in messages and thread names: never with a password
    #: (set it to :func:`mai.redact_url` of the URL the store was opened with).
    url: str

    def open(self) -> None:
        """Connect, check the store is usable, and migrate its schema (idempotent)."""

    def close(self) -> None:
        """Release connections."""

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction: commits on success, rolls back on error."""

    def now(self) -> float:
        """The store's clock, epoch seconds (leases and timers are judged by it)."""

    def schema_version(self) -> int:
        """The schema version the store is stamped with."""

    def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record`` unless its run id exists; return the stored run and whether new."""

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run, or ``None``."""

    def list_runs(self, status: RunStatus | None = None, limit: int = 1000) -> list[RunRecord]:
        """Return runs (newest first), optionally only those with ``status``."""

    def claim_run(
        self, run_id: str, owner: str, lease_seconds: float, *, steal_from: str | None = None
    ) -> RunRecord | None:
        """Take ownership of a non-terminal run whose lease is free or expired.

        ``steal_from`` also allows taking it from that specific (known dead) owner. On success
        the run is RUNNING, owned by ``owner``, its epoch and attempts incremented.
        """

    def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease_seconds: float,
        limit: int,
        queue_limits: Mapping[str, int] | None = None,
    ) -> list[RunRecord]:
        """Claim up to ``limit`` claimable runs of ``queues``, oldest first (never more).

        Claimable: PENDING whose ``lease_until`` is unset or past (a PENDING run with a future
        ``lease_until`` is parked until then), or RUNNING whose lease expired (its owner died
        or lost it). Each claimed run becomes RUNNING, owned by ``owner`` with a lease of
        ``lease_seconds`` judged by the store's clock, its epoch and attempts incremented.
        ``queue_limits`` caps, per queue, how many runs may be RUNNING with a live lease at
        once across every worker; concurrent claims must not exceed it.
        """

    def renew_lease(self, run_id: str, owner: str, epoch: int, lease_seconds: float) -> bool:
        """Extend the lease; ``False`` when ``(owner, epoch)`` no longer owns the run."""

    def mark_progress(self, run_id: str, owner: str, epoch: int) -> bool:
        """Record that the run made progress in this attempt: its attempt count goes back to 1.

        ``attempts`` counts consecutive starts without progress, so a poison run (one that kills
        its process before getting anywhere) is told apart from runs that were merely beside it.
        Conditional on ``(owner, epoch)``.
        """

    def release_run(self, run_id: str, owner: str, epoch: int) -> bool:
        """Give the run back (PENDING, no owner) so another process can take it at once.

        A release is not a crash: the attempt it ends is not counted towards dead-lettering
        (``attempts`` is decremented).
        """

    def finish_run(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record the run's final outcome, once: conditional on ownership and a live status."""

    def dead_letter(self, run_id: str, reason: str) -> bool:
        """Mark a non-terminal run DEAD with ``reason`` (once)."""

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Flag the run for cancellation; an unowned live run becomes CANCELLED at once."""

    def load_steps(self, run_id: str) -> list[StepRecord]:
        """Return the run's committed steps."""

    def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
        """Commit a step result exactly once.

        Returns ``True`` when this call recorded it, ``False`` when the same step was already
        recorded. Raises ``LeaseLostError`` when ``(owner, epoch)`` does not own the run.
        """

    def requeue_run(self, run_id: str) -> RunRecord | None:
        """Give a DEAD or FAILED run a new attempt: keep its outcome as history, make it PENDING.

        The run keeps its id and its committed steps; its owner, lease, outcome, cancellation
        flag and attempt count are cleared. Returns the requeued run, or ``None`` when there is
        no such run or it is not DEAD or FAILED (nothing changes then).
        """

    def load_history(self, run_id: str) -> list[AttemptRecord]:
        """Return the outcomes kept by :meth:`requeue_run`, oldest first."""

    def add_event(self, run_id: str, topic: str, payload: str) -> int:
        """Store a message for the run; return its id."""

    def take_event(self, run_id: str, topic: str, step_id: str) -> EventRecord | None:
        """Consume the oldest unconsumed message on ``topic`` for ``step_id`` (once)."""


# -- optional capabilities: small protocols a store may also implement ---------------------------


@runtime_checkable
class InlineStore(Protocol):
    """A store whose calls never block (no I/O): the runtime may run them in the calling task."""

    inline: bool


@runtime_checkable
class LocalStore(Protocol):
    """A store on a local file whose calls take microseconds to a few milliseconds (an fsync).

    Under Trio, when the store thread is idle and no other task is ready to run, the runtime
    makes a lone write on the event loop's own thread: nothing else was going to run meanwhile,
    and the two thread hand-offs a call costs are saved (a sequential run commits once per
    step, one at a time). Reads always go to the store thread, so a long read never holds up
    the loop. The store's connection must be usable from any thread, one at a time.
    """

    local: bool


@runtime_checkable
class OneStatementWrites(Protocol):
    """A store that can make some lone writes atomic without BEGIN/COMMIT (fewer round trips)."""

    def runs_alone(self, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` (one of the store's write methods) is atomic on its own."""


@runtime_checkable
class BatchedSteps(Protocol):
    """A store that can insert many steps with one statement (one round trip to a server)."""

    def put_step_batch(self, items: Sequence[tuple[StepRecord, str, int]]) -> list[bool]:
        """Insert each ``(record, owner, epoch)`` whose run that owner still holds.

        Returns, per item, whether it was inserted now. An item not inserted (already
        recorded, or its run no longer owned) is then passed to :meth:`Store.put_step` in the
        same transaction, which decides between ``False`` and :class:`LeaseLostError`; so this
        method must never raise for one item's sake. Runs inside the executor's transaction.
        """


@runtime_checkable
class BatchedFinish(Protocol):
    """A store that can record many runs' outcomes with one statement (one round trip)."""

    def finish_run_batch(
        self, items: Sequence[tuple[str, str, int, RunStatus, str | None, str | None]]
    ) -> list[bool]:
        """Record each ``(run_id, owner, epoch, status, output, error)`` as :meth:`finish_run`.

        Returns, per item, what :meth:`Store.finish_run` would have: whether that outcome was
        recorded now (each one conditional on its own ``(owner, epoch)`` and a live status).
        The run ids are distinct. Runs inside the executor's transaction.
        """


@runtime_checkable
class ClaimedCreate(Protocol):
    """A store that can insert a new run already claimed (one statement, nothing read back)."""

    def create_claimed(
        self, record: RunRecord, owner: str, lease_seconds: float
    ) -> tuple[RunRecord, RunRecord | None]:
        """Insert ``record`` as :meth:`Store.claim_run` would leave it just claimed by ``owner``.

        What ``create_run`` then ``claim_run`` do in one transaction: RUNNING, owned by
        ``owner``, epoch and attempts one more than ``record``'s, leased for ``lease_seconds``
        from the store's clock. Returns the stored run and the claimed one, or the stored run
        and ``None`` when the run id existed (nothing written then). Runs inside the
        executor's transaction.
        """


@runtime_checkable
class Reconnecting(Protocol):
    """A store that reconnects after losing its server; a failed batch is re-run meanwhile."""

    retry_seconds: float


@runtime_checkable
class Notifying(Protocol):
    """A store that notifies workers of new runs and messages (LISTEN/NOTIFY)."""

    def listener(self) -> Any:
        """A listener with ``wait(timeout) -> [(channel, payload), ...]`` and ``close()``.

        A store may also accept ``listener(slots=True)``: then finished runs are notified too
        (asked for by workers with ``queue_limits``).
        """


#: The methods every store must have (the :class:`Store` protocol), checked when a runtime opens.
REQUIRED_METHODS = tuple(
    name for name, value in vars(Store).items() if callable(value) and not name.startswith("_")
)


def missing_methods(store: object) -> list[str]:
    """The :class:`Store` methods ``store`` lacks (a store written for an older protocol)."""
    return [name for name in REQUIRED_METHODS if not callable(getattr(store, name, None))]
