"""An in-memory store (``memory://`` or ``memory://name``), for tests and examples.

Stores with the same name in one process share their data, so two runtimes opened on
``memory://shared`` see the same runs (useful to test resume and attach). Transactions are real:
a failing batch leaves no trace.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from ._errors import LeaseLostError
from ._store import RunRecord, RunStatus, StepRecord, evolve_run

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractContextManager

    from ._history import AttemptRecord, EventRecord
    from ._pages import RunQuery, RunSummary

SCHEMA_VERSION = 1


class _Data:
    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.steps: dict[str, dict[str, StepRecord]] = {}
        self.events: dict[int, EventRecord] = {}
        self.history: dict[str, list[AttemptRecord]] = {}
        self.ids = itertools.count(1)
        self.lock = threading.RLock()
        #: While a transaction is open: (mapping, key, previous value) per change, to undo.
        self.undo: list[tuple[dict[Any, Any], Any, Any]] | None = None

    def set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        """``mapping[key] = value``, remembering the previous value for a rollback."""
        if self.undo is not None:
            self.undo.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value


_MISSING = object()


class _Transaction:
    """A memory transaction (a class, not a generator: it is entered once per store write)."""

    __slots__ = ("data", "outer")

    def __init__(self, data: _Data) -> None:
        self.data = data
        self.outer = False

    def __enter__(self) -> None:
        d = self.data
        d.lock.acquire()
        if d.undo is None:  # nested: the outer transaction undoes everything
            d.undo = []
            self.outer = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        d = self.data
        try:
            if self.outer:
                undo, d.undo = d.undo, None
                if exc_type is not None and undo:
                    for mapping, key, previous in reversed(undo):
                        if previous is _MISSING:
                            del mapping[key]
                        else:
                            mapping[key] = previous
        finally:
            d.lock.release()


_shared: dict[str, _Data] = {}
_shared_lock = threading.Lock()


class MemoryStore:
    """A store kept in process memory; same-named stores share data."""

    #: Calls never block (no I/O): the runtime may run them in the calling task when idle.
    inline = True

    def __init__(self, url: str = "memory://", *, clock: Callable[[], float] | None = None) -> None:
        """Create (or join) the in-memory store named by ``url``.

        ``clock`` (epoch seconds) replaces the wall clock for leases, for tests on virtual time.
        """
        self.url = url
        self._clock = clock or time.time
        name = url.removeprefix("memory://")
        if name:
            with _shared_lock:
                self._data = _shared.setdefault(name, _Data())
        else:
            self._data = _Data()

    def open(self) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        """Nothing to release."""

    def schema_version(self) -> int:
        """Always the current version."""
        return SCHEMA_VERSION

    def now(self) -> float:
        """Epoch seconds from the store's clock (the wall clock unless one was given)."""
        return self._clock()

    def transaction(self) -> AbstractContextManager[None]:
        """Apply all or nothing: state is restored if the block raises."""
        return _Transaction(self._data)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert unless present."""
        with self._data.lock:
            existing = self._data.runs.get(record.run_id)
            if existing is not None:
                return existing, False
            now = self.now()
            stored = evolve_run(record, {"created_at": record.created_at or now, "updated_at": now})
            self._data.set(self._data.runs, record.run_id, stored)
            return stored, True

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run or ``None``."""
        return self._data.runs.get(run_id)

    def list_runs(self, status: RunStatus | None = None, limit: int = 1000) -> list[RunRecord]:
        """Return runs, newest first."""
        with self._data.lock:
            runs = [r for r in self._data.runs.values() if status is None or r.status == status]
        runs.sort(key=lambda r: (-r.created_at, r.run_id))
        return runs[:limit]

    def _update(self, run_id: str, **changes: object) -> RunRecord:
        changes["updated_at"] = self.now()
        run = evolve_run(self._data.runs[run_id], changes)
        self._data.set(self._data.runs, run_id, run)
        return run

    def claim_run(
        self, run_id: str, owner: str, lease_seconds: float, *, steal_from: str | None = None
    ) -> RunRecord | None:
        """Take a live run whose lease is free or expired (or held by ``steal_from``)."""
        with self._data.lock:
            run = self._data.runs.get(run_id)
            now = self.now()
            if run is None or run.status.terminal:
                return None
            free = run.owner is None or run.lease_until is None or run.lease_until < now
            if not free and run.owner != steal_from:
                return None
            return self._update(
                run_id,
                status=RunStatus.RUNNING,
                owner=owner,
                epoch=run.epoch + 1,
                attempts=run.attempts + 1,
                lease_until=now + lease_seconds,
            )

    def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease_seconds: float,
        limit: int,
        queue_limits: Mapping[str, int] | None = None,
    ) -> list[RunRecord]:
        """Claim up to ``limit`` claimable runs of ``queues``, oldest first."""
        with self._data.lock:
            now = self.now()
            limits = dict(queue_limits or {})
            room = {
                q: limits[q]
                - sum(
                    1
                    for r in self._data.runs.values()
                    if r.queue == q
                    and r.status == RunStatus.RUNNING
                    and r.lease_until is not None
                    and r.lease_until >= now
                )
                for q in queues
                if q in limits
            }
            candidates = sorted(
                (
                    r
                    for r in self._data.runs.values()
                    if r.queue in queues
                    and r.status in {RunStatus.PENDING, RunStatus.RUNNING}
                    and (r.lease_until is None or r.lease_until < now)
                ),
                key=lambda r: (r.created_at, r.run_id),
            )
            claimed: list[RunRecord] = []
            for run in candidates:
                if len(claimed) >= limit:
                    break
                if run.queue in room:
                    if room[run.queue] <= 0:
                        continue
                    room[run.queue] -= 1
                claimed.append(
                    self._update(
                        run.run_id,
                        status=RunStatus.RUNNING,
                        owner=owner,
                        epoch=run.epoch + 1,
                        attempts=run.attempts + 1,
                        lease_until=now + lease_seconds,
                    )
                )
            return claimed

    def _owns(self, run_id: str, owner: str, epoch: int) -> bool:
        run = self._data.runs.get(run_id)
        return (
            run is not None
            and run.owner == owner
            and run.epoch == epoch
            and run.status == RunStatus.RUNNING
        )

    def renew_lease(self, run_id: str, owner: str, epoch: int, lease_seconds: float) -> bool:
        """Extend the lease if still owned."""
        with self._data.lock:
            if not self._owns(run_id, owner, epoch):
                return False
            self._update(run_id, lease_until=self.now() + lease_seconds)
            return True

    def mark_progress(self, run_id: str, owner: str, epoch: int) -> bool:
        """Reset the run's count of starts without progress to 1."""
        with self._data.lock:
            if not self._owns(run_id, owner, epoch) or self._data.runs[run_id].attempts <= 1:
                return False
            self._update(run_id, attempts=1)
            return True

    def release_run(self, run_id: str, owner: str, epoch: int) -> bool:
        """Hand the run back."""
        with self._data.lock:
            if not self._owns(run_id, owner, epoch):
                return False
            attempts = max(self._data.runs[run_id].attempts - 1, 0)
            self._update(
                run_id, status=RunStatus.PENDING, owner=None, lease_until=None, attempts=attempts
            )
            return True

    def finish_run(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record the final outcome once."""
        with self._data.lock:
            if not self._owns(run_id, owner, epoch):
                return False
            self._update(run_id, status=status, output=output, error=error, lease_until=None)
            return True

    def dead_letter(self, run_id: str, reason: str) -> bool:
        """Mark a live run DEAD."""
        with self._data.lock:
            run = self._data.runs.get(run_id)
            if run is None or run.status.terminal:
                return False
            self._update(run_id, status=RunStatus.DEAD, error=reason, owner=None, lease_until=None)
            return True

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Flag for cancellation; unowned live runs are cancelled at once."""
        with self._data.lock:
            run = self._data.runs.get(run_id)
            if run is None or run.status.terminal:
                return run
            run = self._update(run_id, cancel_requested=True)
            if run.owner is None or run.lease_until is None or run.lease_until < self.now():
                run = self._update(run_id, status=RunStatus.CANCELLED, owner=None, lease_until=None)
            return run

    def requeue_run(self, run_id: str) -> RunRecord | None:
        """Keep the DEAD/FAILED outcome as history and make the run PENDING again."""
        with self._data.lock:
            run = self._data.runs.get(run_id)
            if run is None or run.status not in (RunStatus.DEAD, RunStatus.FAILED):
                return None
            from ._history import AttemptRecord  # noqa: PLC0415 - loaded on first use

            d = self._data
            kept = d.history.get(run_id, [])
            attempt = AttemptRecord(
                run_id, len(kept) + 1, str(run.status), run.output, run.error, run.updated_at
            )
            d.set(d.history, run_id, [*kept, attempt])
            return self._update(
                run_id,
                status=RunStatus.PENDING,
                output=None,
                error=None,
                owner=None,
                lease_until=None,
                attempts=0,
                cancel_requested=False,
            )

    def load_history(self, run_id: str) -> list[AttemptRecord]:
        """Return the kept outcomes, oldest first."""
        with self._data.lock:
            return list(self._data.history.get(run_id, ()))

    # -- steps ---------------------------------------------------------------------------------

    def load_steps(self, run_id: str) -> list[StepRecord]:
        """Return committed steps in commit order."""
        with self._data.lock:
            steps = list(self._data.steps.get(run_id, {}).values())
        steps.sort(key=lambda s: s.finished_at)
        return steps

    def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
        """Commit once; fenced."""
        d = self._data
        with d.lock:
            run = d.runs.get(record.run_id)
            if (
                run is None
                or run.owner != owner
                or run.epoch != epoch
                or run.status != RunStatus.RUNNING
            ):
                raise LeaseLostError(
                    f"run {record.run_id!r}: step {record.step_id} not recorded, this process "
                    f"(epoch {epoch}) no longer owns the run",
                    run_id=record.run_id,
                    step_id=record.step_id,
                )
            steps = d.steps.get(record.run_id)
            if steps is None:
                steps = {}
                d.set(d.steps, record.run_id, steps)
            if record.step_id in steps:
                return False
            d.set(steps, record.step_id, record)
            return True

    # -- events --------------------------------------------------------------------------------

    def add_event(self, run_id: str, topic: str, payload: str) -> int:
        """Store a message."""
        from ._history import EventRecord  # noqa: PLC0415 - loaded on first use

        with self._data.lock:
            event_id = next(self._data.ids)
            record = EventRecord(event_id, run_id, topic, payload, self.now())
            self._data.set(self._data.events, event_id, record)
            return event_id

    def take_event(self, run_id: str, topic: str, step_id: str) -> EventRecord | None:
        """Consume the oldest unconsumed message for ``step_id`` (idempotent)."""
        with self._data.lock:
            events = sorted(self._data.events.values(), key=lambda e: e.event_id)
            for e in events:
                if e.run_id == run_id and e.topic == topic and e.consumed_by == step_id:
                    return e
            for e in events:
                if e.run_id == run_id and e.topic == topic and e.consumed_by is None:
                    taken = dataclasses.replace(e, consumed_by=step_id)
                    self._data.set(self._data.events, e.event_id, taken)
                    return taken
            return None

    # -- pages of runs (the optional PagedRunStore capability, for `mai ui`) -------------------

    def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """One page of runs, in the order and with the cursors of the SQL stores."""
        from ._pages import MAX_PAGE, page_from_list  # noqa: PLC0415 - only lists need pages

        with self._data.lock:
            runs = list(self._data.runs.values())
        return page_from_list(runs, query, after, max(1, min(limit, MAX_PAGE)))
