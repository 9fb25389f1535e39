"""One owner per run: the object that executes a durable run in this process, start to outcome.

A :class:`RunOwner` is created when this process claims a run and lives until the run has an
outcome or is handed back. It is the run's whole lifecycle in one place:

* **replay**: it is the interceptor of the run's calls; every leaf call is a step keyed by its
  hierarchical step id; a committed step returns its recorded output without running;
* **commit**: a finished step is committed (with the ``mai.now()`` readings before it) before
  the run proceeds past it, waiting out transient store failures for ``store_patience``;
* **drive**: it executes the workflow under the run's deadline and trace context;
* **finish** / **release**: it records the outcome, or hands an interrupted run back;
* **heartbeat**: it renews its lease, and is cancelled when the lease is lost or the run is
  cancelled;
* the durable primitives (``mai.sleep``, ``mai.now``, ``mai.random``, ``mai.wait_for``): it
  implements the seam's :class:`~mai._seam.Durability` protocol.

A :class:`Host` holds what the owners of one process share (the async store, the owner id,
the lease, the clock, the task group) and the one **admission policy** deciding whether a run
may be executed here at all (unreadable, unknown, incompatible, cancelled, or a *suspect* that
must run alone). The :class:`~mai.Runtime` and the :class:`~mai.Worker` both admit runs through
it; the worker is only a claim policy on top (what to claim, how many, when).
"""

from __future__ import annotations

import math
import os
import socket
from typing import TYPE_CHECKING, Any

from mai._backend import current_backend
from mai._composites import Composite
from mai._context import current_frame, set_frame
from mai._errors import DeadlineExceeded, MaiError
from mai._module import library_logger
from mai._seam import durability, intercept

from . import _serde
from ._errors import (
    LeaseLostError,
    NonDeterminismError,
    RunCancelledError,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
    StoreUnavailableError,
    WaitTimeoutError,
    WorkflowNotFoundError,
)
from ._faults import fault_point
from ._store import RunRecord, RunStatus, StepRecord, new_step
from ._versioning import check_resumable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import anyio

    from mai._context import Frame
    from mai._module import Module
    from mai._seam import Call

    from ._astore import AsyncStore

_HOST = socket.gethostname()
#: Owner ids of the runtimes open in this process (a run owned by another one is not stolen).
_live_owners: set[str] = set()


def _log() -> Any:
    return library_logger("mai")


def _owner_dead(owner: str | None) -> bool:
    """Tell whether ``owner`` (``host:pid:incarnation``) is certainly gone (same host only)."""
    if owner is None:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _live_owners
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _error_json(exc: BaseException) -> str:
    error = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)}
    return _serde.dumps(error, what="error")


_CANCELLED_JSON = '{"type": "Cancelled", "message": "the run was cancelled"}'


class Host:
    """What the run owners of one process share, and the one admission policy.

    Args:
        store: The async store interface.
        owner: This process's owner id in the store.
        lease: Seconds a lease lasts (renewed every third of it).
        max_attempts: Starts without finishing before a run is dead-lettered.
        poll_interval: Seconds between store polls (``mai.wait_for``).
        store_patience: Seconds a transient store failure is waited out on the commit path.
        clock: The durable clock (epoch seconds).
        spawn: Starts a background task in the runtime's task group.
    """

    def __init__(
        self,
        store: AsyncStore,
        owner: str,
        *,
        lease: float,
        max_attempts: int,
        poll_interval: float,
        store_patience: float,
        clock: Callable[[], float],
        spawn: Callable[..., object],
    ) -> None:
        """Bind the shared services."""
        self.store = store
        self.owner = owner
        self.lease = lease
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.store_patience = store_patience
        self.clock = clock
        self.spawn = spawn
        #: The runs this process executes now, by id.
        self.active: dict[str, RunOwner] = {}
        #: Called with each owner whose run ended here (a worker frees its slot).
        self.finished: Callable[[RunOwner], object] | None = None
        self._reported: set[str] = set()
        self._foreign: set[str] = set()

    # -- store failures --------------------------------------------------------------------------

    def report(self, exc: StoreError) -> None:
        """Log a store failure once per kind while it lasts."""
        if exc.kind not in self._reported:
            self._reported.add(exc.kind)
            _log().error("mai.store_error", kind=exc.kind, error=str(exc))

    def recovered(self, kind: str) -> None:
        """A write of ``kind``'s failure got through: report the next one again."""
        self._reported.discard(kind)

    def retryable(self, exc: StoreError, since: float) -> bool:
        """Whether a store failure is worth waiting out (bounded by ``store_patience``)."""
        if isinstance(exc, StoreCorruptError | StoreSchemaError):
            return False
        if isinstance(exc, StoreUnavailableError) and not exc.retryable:
            return False
        return current_backend().current_time() - since < self.store_patience

    async def patiently(self, write: Callable[[], Awaitable[Any]]) -> Any:
        """Run a write, waiting out transient store failures (see :meth:`retryable`)."""
        since = current_backend().current_time()
        delay = 0.05
        while True:
            try:
                return await write()
            except StoreError as exc:
                self.report(exc)
                if not self.retryable(exc, since):
                    raise
                await current_backend().sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- the admission policy --------------------------------------------------------------------

    def suspect(self, record: RunRecord, *, claimed: bool) -> bool:
        """Whether the run was started at least twice before without making progress.

        ``attempts`` counts consecutive starts without progress (a commit resets it; a claim
        adds one). One death proves little (a process killed by a deploy, a paused worker whose
        runs were taken over); two in a row make the run a suspect, which is executed alone
        until it makes progress, so a poison run never takes the runs beside it down with it.
        """
        before = record.attempts - 1 if claimed else record.attempts
        return before >= max(1, min(2, self.max_attempts - 1))

    def isolating(self) -> bool:
        """Whether a suspect executes here without progress yet (admit no other suspect)."""
        return any(o.suspect and not o.progressed.is_set() for o in self.active.values())

    async def cleared(self, owner: RunOwner) -> None:
        """Wait until a suspect made progress or finished (at most one lease)."""
        with _after(self.lease):
            async with current_backend().open_nursery() as tg:

                async def first(event: anyio.Event) -> None:
                    await event.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(first, owner.progressed)
                tg.start_soon(first, owner.done)

    async def isolate(self, claimed: list[RunRecord], *, busy: bool) -> list[RunRecord]:
        """Of runs just claimed together, keep those that may execute beside each other.

        A suspect executes alone: with nothing executing here (``busy`` false) one suspect is
        kept and the rest handed back; otherwise the suspects are handed back. A poison run
        kills every run beside it; executing suspects alone keeps innocent runs from being
        dead-lettered with it. Runs handed back are released (not an attempt).
        """
        risky = [r for r in claimed if self.suspect(r, claimed=True)]
        if not risky or (len(claimed) == 1 and not busy):
            return claimed
        keep = risky[:1] if not busy else [r for r in claimed if r not in risky]
        for record in claimed:
            if record not in keep:
                await self.store.release([], record.run_id, self.owner, record.epoch)
        return keep

    async def quarantine(
        self, suspects: list[RunRecord], attach: Callable[[RunRecord], Awaitable[object]]
    ) -> None:
        """Admit unclaimed suspects one at a time, each once the previous one is cleared.

        ``attach`` admits one run (the runtime's resume of a run by its record). A store failure
        is waited out and never escapes (that would tear down every run of this process).
        """
        for record in suspects:
            while True:
                try:
                    await attach(record)
                except StoreError as exc:
                    self.report(exc)
                    await current_backend().sleep(self.poll_interval)
                    continue
                break
            owner = self.active.get(record.run_id)
            if owner is not None:
                await self.cleared(owner)

    async def admit(
        self,
        record: RunRecord,
        module: Module[..., Any] | WorkflowNotFoundError,
        *,
        claimed: bool,
        strict: bool = False,
    ) -> RunOwner | None:
        """Execute a run here if it may be, or record why it cannot (never leave it claimed).

        The one admission policy of the Runtime and the Worker. ``claimed`` says whether
        ``record`` was already claimed by this process (a worker's ``claim_next``); otherwise
        the run is claimed here, from a dead owner if need be. A run whose stored record or
        input is unreadable, or that started ``max_attempts`` times without finishing, is
        dead-lettered; a run whose workflow is unknown here is left alone (handed back when
        claimed: it may belong to another application sharing the store); a run whose plan
        the code cannot resume is left alone, or failed when claimed; a run whose
        cancellation was requested is recorded CANCELLED. ``strict`` raises instead of
        leaving an unclaimed run alone.

        Returns:
            The run's owner when it executes here now, else ``None``.
        """
        run_id = record.run_id
        if record.invalid is not None:
            await self.dead_letter(record, record.invalid)
            return None
        if isinstance(module, WorkflowNotFoundError):
            if not claimed:
                if strict:
                    raise module
                _log().info(
                    "mai.run_left_alone", run_id=run_id, workflow=record.workflow, why=str(module)
                )
                return None
            await self.store.release([], run_id, self.owner, record.epoch)
            if run_id not in self._foreign:  # said once per run, however often it is claimed
                self._foreign.add(run_id)
                _log().warning("mai.run_left_alone", run_id=run_id, why=str(module))
            return None
        try:
            _serde.loads(record.input, record.format)
        except ValueError as exc:
            await self.dead_letter(record, f"the run's input is not valid JSON ({exc})")
            return None
        try:
            check_resumable(run_id, record.plan_hash, record.plan, module)
        except MaiError as exc:  # incompatible code: refused before any new side effect
            if not claimed:
                if strict:
                    raise
                _log().error("mai.resume_refused", run_id=run_id, exc_info=True)
                return None
            await self.refuse(record, RunStatus.FAILED, _error_json(exc))
            return None
        if not claimed:
            steal = record.owner if record.owner and _owner_dead(record.owner) else None
            got = await self.store.claim(run_id, self.owner, self.lease, steal)
            if got is None:
                return None  # someone else is running it
            record = got
        current = self.active.get(run_id)
        if current is not None:  # this process claimed back a run it is still executing
            if await current.carry_on(record):
                return current
            await current.done.wait()  # it had learnt it was fenced: let it end, start afresh
        if record.cancel_requested:
            await self.refuse(record, RunStatus.CANCELLED, _CANCELLED_JSON)
            return None
        if record.attempts > self.max_attempts:
            await self.dead_letter(
                record,
                f"the run started {record.attempts - 1} times without finishing (its process "
                f"died each time); dead-lettered after max_attempts={self.max_attempts}",
            )
            return None
        if record.epoch <= 1:
            # Its first claim ever (a run is created at epoch 0 and every claim increments it),
            # and a step is only ever recorded by an owner under its epoch: nothing to read.
            return self._launch(record, module, {})
        steps = await self.store.load_steps(run_id)
        return self._launch(record, module, {s.step_id: s for s in steps})

    def admit_new(self, claimed: RunRecord, module: Module[..., Any]) -> RunOwner:
        """Execute a run this process has just created and claimed (``Runtime.start``).

        The admission policy holds by construction for it: its record, input and plan were
        just made from ``module``, it has no steps, no cancellation and one attempt; so it is
        launched without reading anything back.
        """
        return self._launch(claimed, module, {})

    def _launch(
        self, record: RunRecord, module: Module[..., Any], steps: dict[str, StepRecord]
    ) -> RunOwner:
        owner = RunOwner(self, record, module, suspect=self.suspect(record, claimed=True))
        owner.recorded = steps
        self.active[record.run_id] = owner
        self.spawn(owner.drive)
        return owner

    async def dead_letter(self, record: RunRecord, reason: str) -> None:
        """Mark the run DEAD with ``reason`` (logged)."""
        if await self.store.dead_letter(record.run_id, reason):
            _log().error("mai.run_dead_lettered", run_id=record.run_id, reason=reason)

    async def refuse(self, record: RunRecord, status: RunStatus, error: str) -> None:
        """Record the outcome of a claimed run that is not executed (fenced; logged)."""
        await self.store.finish([], record.run_id, self.owner, record.epoch, status, None, error)
        _log().error("mai.run_refused", run_id=record.run_id, status=str(status), error=error)

    # -- heartbeats ------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Renew every owner's lease every third of it, forever.

        The renewals of one beat are made together (the store groups them into one
        transaction): one at a time, a worker with dozens of runs in flight waited one commit
        per run, and the last ones were renewed late, or after their run had finished.
        """
        backend = current_backend()
        while True:
            await backend.sleep(self.lease / 3)
            owners = list(self.active.values())
            if len(owners) == 1:
                await owners[0].renew()
            elif owners:
                async with backend.open_nursery() as tg:
                    for owner in owners:
                        tg.start_soon(owner.renew)


class RunOwner:
    """The one owner of a run executing in this process (see the module docstring).

    It is the run's interceptor (replay and commit of every step) and its
    :class:`~mai._seam.Durability` (the durable primitives).
    """

    def __init__(
        self, host: Host, record: RunRecord, module: Module[..., Any], *, suspect: bool = False
    ) -> None:
        """Own ``record`` (just claimed by ``host``'s process) running ``module``."""
        self.host = host
        self.store = host.store
        self.record = record
        self.module = module
        self.run_id = record.run_id
        self.owner = record.owner or ""
        self.epoch = record.epoch
        self.worker = host.owner
        self.clock = host.clock
        #: Whether the run was admitted as a suspect (see :meth:`Host.suspect`).
        self.suspect = suspect
        #: Until when (on the runtime's clock) the lease is known to hold: renewed by heartbeats.
        self.fresh_until = self.clock() + host.lease
        self.done = current_backend().event()
        self.scope = current_backend().scope()
        self.cancelled = False
        self.lost = False
        #: Set once the run's outcome (or its release) is being written: that write is fenced
        #: itself, so a renewal refused meanwhile (the outcome already landed) means nothing,
        #: and the run's scope is shielded, never cancelled (see :meth:`interrupt`).
        self.finishing = False
        self.error: BaseException | None = None
        self.recorded: dict[str, StepRecord] = {}
        self.waiters: dict[str, anyio.Event] = {}
        #: Set once the run gets somewhere in this attempt (a new commit, or a durable wait).
        self.progressed = current_backend().event()
        self.moved = False  # ``progressed.is_set()``, read on every commit
        #: Steps whose body is executing now (a second call of the same step waits for it).
        self.inflight: dict[str, anyio.Event | None] = {}
        #: Steps whose body finished but whose commit has not landed yet.
        self.uncommitted: dict[str, StepRecord] = {}
        #: ``mai.now()`` readings not committed yet (they go with the next commit).
        self.pending: list[StepRecord] = []
        #: Set when the store became unusable for this run (it is handed back, not failed).
        self.store_failed: StoreError | None = None
        #: The result as the workflow returned it, once its outcome is recorded.
        self.value: Any = None
        self.succeeded = False

    # -- control ---------------------------------------------------------------------------------

    def cancel(self, *, requested: bool) -> None:
        """Cancel the run's steps: ``requested`` (recorded CANCELLED) or because it was lost."""
        if requested:
            self.cancelled = True
        else:
            self.lost = True
        self.interrupt()

    def interrupt(self) -> None:
        """Cancel the run's steps, unless its outcome is being recorded (that is never cut)."""
        if not self.finishing:
            self.scope.cancel()

    def wake(self, topic: str | None = None) -> None:
        """Wake the ``mai.wait_for`` on ``topic`` (every one when ``None``): a message came."""
        if topic is None:
            for waiter in self.waiters.values():
                waiter.set()
            self.waiters.clear()
            return
        event = self.waiters.pop(topic, None)
        if event is not None:
            event.set()

    # -- drive -----------------------------------------------------------------------------------

    async def drive(self) -> None:
        """Execute the run to an outcome, or leave it resumable if interrupted.

        The outcome is recorded inside the run's own scope, shielded from then on (one scope
        per run, not two: entering a Trio cancel scope costs ~5 us); a run whose scope was
        cancelled records it from a shielded scope of its own instead.
        """
        record = self.record
        decided: tuple[RunStatus, str | None, str | None] | None = None
        result: Any = None
        concluded = False
        try:
            with self.scope:
                raised = False  # whether the workflow failed (its error decides, not a cancel)
                try:
                    data = _serde.loads(record.input, record.format)
                    args, kwargs = list(data.get("args", [])), dict(data.get("kwargs", {}))
                    token = None
                    changes: dict[str, Any] = {}
                    if record.deadline is not None:
                        backend = current_backend()
                        changes["deadline"] = (
                            backend.current_time() + record.deadline - self.clock()
                        )
                    if record.trace_context:  # continue the submitter's trace (W3C traceparent)
                        changes["metadata"] = _serde.loads(record.trace_context)
                    if changes:
                        token = set_frame(**changes)
                    binding = durability.set(self)
                    try:
                        with intercept(self):
                            result = await self.module(*args, **kwargs)
                    finally:
                        durability.reset(binding)
                        if token is not None:
                            current_frame.reset(token)
                    output = _serde.dumps(
                        result, what=lambda: f"the result of run {record.run_id!r}"
                    )
                    decided = (RunStatus.SUCCEEDED, output, None)
                except LeaseLostError as exc:
                    raised = True
                    self.lost = True
                    self.error = exc
                    _log().warning(
                        "mai.lease_lost", run_id=record.run_id, owner=self.owner, error=str(exc)
                    )
                except Exception as exc:  # any failure is the run's outcome
                    raised = True
                    if self.store_failed is not None:  # not the run's fault: hand it back
                        self.error = self.store_failed
                    else:
                        expired = (
                            record.deadline is not None and self.clock() >= record.deadline - 0.01
                        )
                        if isinstance(exc, DeadlineExceeded) and expired:
                            exc.add_note(f"the deadline of durable run {record.run_id!r} expired")
                        self.error = exc
                        decided = (RunStatus.FAILED, None, _error_json(exc))
                if not self.scope.cancel_called:  # the common end: conclude here, shielded
                    self.finishing = True
                    self.scope.shield = True
                    concluded = True
                    await self._conclude(decided, result)
            if not raised and decided is None and self.cancelled and not self.lost:
                decided = (RunStatus.CANCELLED, None, _CANCELLED_JSON)
                self.error = RunCancelledError(
                    f"run {record.run_id!r} was cancelled", run_id=record.run_id
                )
        finally:
            self.finishing = True
            try:
                if not concluded:
                    with current_backend().scope(shield=True):
                        await self._conclude(decided, result)
            finally:
                if self.host.active.get(self.run_id) is self:
                    del self.host.active[self.run_id]
                self.done.set()
                if self.host.finished is not None:
                    self.host.finished(self)

    async def _conclude(
        self, decided: tuple[RunStatus, str | None, str | None] | None, result: Any
    ) -> None:
        """Record the outcome, or hand the run back; called shielded from cancellation."""
        if self.lost:
            return  # another owner has the run now: write nothing more
        if decided is not None:
            if await self.finish(*decided) and decided[1] is not None:
                self.value, self.succeeded = result, True
            return
        # Interrupted (shutdown): hand the run back, resumable at once. Patiently only when the
        # store failed the run; an interrupt (Ctrl-C, a cancelled runtime) tries once, never
        # waits out store_patience.
        await self.release(patient=self.store_failed is not None)

    async def finish(self, status: RunStatus, output: str | None, error: str | None) -> bool:
        """Record the run's outcome (with anything not committed yet); ``True`` when recorded."""
        extra = [*self.pending, *self.uncommitted.values()]
        try:
            ok = await self.host.patiently(
                lambda: self.store.finish(
                    extra, self.run_id, self.owner, self.epoch, status, output, error
                )
            )
        except StoreError as exc:
            _log().error(
                "mai.run_outcome_not_recorded",
                run_id=self.run_id,
                status=str(status),
                error=str(exc),
                note="the run stays resumable once its lease expires",
            )
            return False
        if not ok:
            self.lost = True
            _log().warning("mai.run_outcome_fenced", run_id=self.run_id, status=str(status))
        return bool(ok)

    async def release(self, *, patient: bool = True) -> None:
        """Hand an interrupted run back (committing what finished); never raises.

        ``patient`` waits out transient store failures (up to ``store_patience``); otherwise
        the release is tried once (an interrupt must not hang on a failing store).
        """
        extra = [*self.pending, *self.uncommitted.values()]

        def write() -> Awaitable[bool]:
            return self.store.release(extra, self.run_id, self.owner, self.epoch)

        try:
            await (self.host.patiently(write) if patient else write())
        except StoreError as exc:
            _log().error(
                "mai.run_not_released",
                run_id=self.run_id,
                error=str(exc),
                note="it is resumable once its lease expires",
            )

    async def carry_on(self, claimed: RunRecord) -> bool:
        """Keep executing the run under the epoch this process just claimed it back with.

        Its lease had lapsed (the process was too slow to renew it) and nobody else took the
        run over, so the claim sweep took it back: the execution goes on under the new epoch
        rather than a second one starting beside it (which would run the in-flight step again
        and, when this one ended, lose its heartbeat). ``False`` when this execution already
        learnt it was fenced.
        """
        if self.lost:
            return False
        self.epoch = claimed.epoch
        self.fresh_until = self.clock() + self.host.lease
        if claimed.attempts > 1:  # the execution never stopped: not a start without progress
            try:
                await self.store.mark_progress(self.run_id, self.owner, self.epoch)
            except StoreError as exc:
                self.host.report(exc)
        return True

    async def renew(self) -> None:
        """Renew the lease once (a heartbeat); cancel the run if it was lost or cancelled."""
        epoch = self.epoch
        try:
            ok, cancel = await self.store.renew(self.run_id, self.owner, epoch, self.host.lease)
        except StoreError as exc:
            self.host.report(exc)
            return
        if not ok and (self.epoch != epoch or self.finishing):
            # this process claimed the run back meanwhile (carry_on), or the run's outcome is
            # being written (fenced by itself: it reports a lost lease, if that is what it was)
            return
        if not ok:
            self.cancel(requested=False)
            _log().warning("mai.lease_lost", run_id=self.run_id, owner=self.owner)
            return
        self.fresh_until = self.clock() + self.host.lease
        if cancel:
            self.cancel(requested=True)

    # -- commit ----------------------------------------------------------------------------------

    async def commit(self, record: StepRecord) -> None:
        """Commit a step (and the ``mai.now()`` readings before it), in one transaction.

        Transient storage failures are waited out (reported once) for up to
        ``store_patience`` seconds; then, or at once for a corrupt or wrong-schema store, the
        store is unusable for this run: it is handed back, resumable, and the commit raises.
        A commit cancelled while waiting keeps the finished step in memory: the next call of
        the same step commits it instead of running the body again.
        """
        pending = list(self.pending) if self.pending else None
        since: float | None = None
        delay = 0.05
        stalled: str | None = None
        while True:
            epoch = self.epoch
            try:
                if pending:
                    await self.store.put_steps([*pending, record], self.owner, self.epoch)
                else:
                    await self.store.put_step(record, self.owner, self.epoch)
            except StoreError as exc:
                self.host.report(exc)
                stalled = exc.kind
                if since is None:
                    since = current_backend().current_time()
                if not self.host.retryable(exc, since):
                    self.store_failed = exc
                    self.interrupt()
                    raise
                await current_backend().sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except LeaseLostError:
                if self.epoch != epoch:
                    continue  # this process claimed the run back meanwhile (carry_on)
                self.lost = True
                self.interrupt()
                raise
            if stalled is not None:  # this write got through: the fault is gone, re-arm it
                self.host.recovered(stalled)
            if pending:
                self.pending = [r for r in self.pending if r not in pending]
            self.uncommitted.pop(record.step_id, None)
            self.recorded[record.step_id] = record
            if not self.moved:
                await self.note_progress()
            return

    async def note_progress(self) -> None:
        """The run got somewhere in this attempt: it is not the one killing its processes.

        Called on the first new commit and on entering a durable wait. When the run had been
        started before without progress, its count of starts without progress is reset.
        """
        if self.moved:
            return
        self.moved = True
        self.progressed.set()
        if self.record.attempts > 1:
            try:
                await self.store.mark_progress(self.run_id, self.owner, self.epoch)
            except StoreError as exc:
                self.host.report(exc)

    # -- replay: the interceptor of the run's calls ----------------------------------------------

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Replay a committed step, or run it and commit its output."""
        frame = call.frame
        run = frame.run
        if run is not None and run.durable is None:
            run.durable = self
            run.run_id = self.run_id
        module = call.module
        if isinstance(module, Composite):
            return await proceed()
        sid = frame.step_id
        input_text = _serde.fingerprint_call(call.args, call.kwargs)
        while True:
            recorded = self.recorded.get(sid)
            if recorded is not None:
                self._check(recorded, sid, module.name, "call", input_text)
                call.replayed = True
                span = frame.span
                if span is not None and hasattr(span, "set_attribute"):
                    # a replayed step did no work now: marked, and no usage (tokens) on its span
                    span.set_attribute("mai.replayed", True)
                return module.cast_output(_serde.loads(recorded.output, recorded.format))
            done = self.uncommitted.get(sid)
            if done is not None:
                # The body finished in this process but its commit did not land (the branch
                # was cancelled while the store was failing): commit it now, never re-run it.
                self._check(done, sid, module.name, "call", input_text)
                await self.commit(done)
                return module.cast_output(_serde.loads(done.output, done.format))
            if sid not in self.inflight:
                break
            # The same step is already executing here (a retried parent scheduled background
            # work again): wait for that call instead of running the body a second time.
            running = self.inflight[sid]
            if running is None:
                running = self.inflight[sid] = current_backend().event()
            await running.wait()
        clock = self.clock
        started = clock()
        if started > self.fresh_until:
            # No heartbeat renewed the lease for a whole lease (the process was paused or
            # starved): it may be another owner's run now; renew before starting a body.
            await self.renew()
            if self.lost:
                raise LeaseLostError(
                    f"run {self.run_id!r}: step {sid} not started, this process (epoch "
                    f"{self.epoch}) no longer owns the run",
                    run_id=self.run_id,
                    step_id=sid,
                )
            started = clock()
        self.inflight[sid] = None  # an event is made only if a second call has to wait
        try:
            fault_point("before_body")
            result = await proceed()
            fault_point("after_body")
            output = _serde.dumps(result, what=lambda: f"the output of step {sid} ({module.name})")
            record = new_step(
                self.run_id,
                sid,
                module.name,
                "call",
                input_text,
                output,
                "json",
                started,
                clock(),
                frame.attempts,
                self.worker,
            )
            self.uncommitted[sid] = record
            await self.commit(record)
        finally:
            finished = self.inflight.pop(sid)
            if finished is not None:
                finished.set()
        return result

    def _check(
        self, recorded: StepRecord, sid: str, name: str, kind: str, input_text: str | None
    ) -> None:
        if recorded.kind != kind or recorded.name != name:
            raise NonDeterminismError(
                f"run {self.run_id!r}: step {sid} was recorded as {recorded.kind} "
                f"{recorded.name!r} but the code now makes a {kind} {name!r} there; the workflow "
                "is not deterministic (or changed) at this step",
                run_id=self.run_id,
                step_id=sid,
                module_name=name,
            )
        if recorded.input is not None and input_text is not None and recorded.input != input_text:
            raise NonDeterminismError(
                f"run {self.run_id!r}: step {sid} ({name}) was recorded with input "
                f"{recorded.input[:200]} but is now called with {input_text[:200]}; the workflow "
                "is not deterministic at this step",
                run_id=self.run_id,
                step_id=sid,
                module_name=name,
            )

    # -- the durable primitives (the seam's Durability protocol) ---------------------------------

    def _child(self, frame: Frame) -> str:
        index = frame.reserve(1) + 1
        return f"{frame.step_id}.{index}" if frame.step_id else str(index)

    def _record(self, sid: str, name: str, kind: str, output: str, started: float) -> StepRecord:
        return new_step(
            run_id=self.run_id,
            step_id=sid,
            name=name,
            kind=kind,
            input=None,
            output=output,
            started_at=started,
            finished_at=self.clock(),
            worker=self.worker,
        )

    def now(self, frame: Frame) -> float:
        """A recorded reading of the runtime's clock.

        The reading is committed with the next commit of the run (in the same transaction),
        and again on every retry of that commit: it is never dropped while later commits land.
        """
        sid = self._child(frame)
        recorded = self.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.now", "now", None)
            return float(_serde.loads(recorded.output))
        value = self.clock()
        record = self._record(sid, "mai.now", "now", repr(value), value)
        self.recorded[sid] = record
        self.pending.append(record)
        return value

    def seed(self, frame: Frame) -> str:
        """A deterministic seed for this position in the run."""
        return f"{self.run_id}/{self._child(frame)}"

    async def sleep(self, frame: Frame, seconds: float) -> None:
        """A durable timer: the wake-up time is committed; a restart waits only for the rest."""
        sid = self._child(frame)
        recorded = self.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.sleep", "timer", None)
            wake_at = float(_serde.loads(recorded.output))
        else:
            started = self.clock()
            wake_at = started + seconds
            await self.commit(self._record(sid, "mai.sleep", "timer", repr(wake_at), started))
        remaining = wake_at - self.clock()
        if remaining > 0:
            await self.note_progress()  # idle: a crash now is not our fault
            backend = current_backend()
            await backend.sleep_until(backend.current_time() + remaining)

    async def wait_for(self, frame: Frame, topic: str, timeout: float | None) -> Any:  # noqa: ASYNC109 - a durable timeout, not a cancel scope
        """Wait durably for a message sent with ``Runtime.send(run_id, topic, ...)``."""
        sid = self._child(frame)
        recorded = self.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.wait_for", "event", None)
            return _event_result(_serde.loads(recorded.output), topic, sid)
        wake_at = math.inf
        if timeout is not None:
            timer = self.recorded.get(f"{sid}.1")
            if timer is not None:
                wake_at = float(_serde.loads(timer.output))
            else:
                started = self.clock()
                wake_at = started + timeout
                await self.commit(
                    self._record(f"{sid}.1", "mai.wait_for.timer", "timer", repr(wake_at), started)
                )
        await self.note_progress()  # waiting: a crash now is not our fault
        poll = self.host.poll_interval
        while True:
            timed_out = self.clock() >= wake_at
            try:
                got = await self.store.take_event(
                    self.run_id, topic, sid, self.owner, self.epoch, timed_out, self.worker
                )
            except StoreError as exc:  # the store is away (e.g. restarting): keep waiting
                self.host.report(exc)
                await current_backend().sleep(poll)
                continue
            if got is not None:
                self.recorded[sid] = got
                return _event_result(_serde.loads(got.output), topic, sid)
            event = self.waiters.setdefault(topic, current_backend().event())
            wait = min(wake_at - self.clock(), poll * 5)
            with _after(max(wait, 0)):
                await event.wait()


def _after(seconds: float) -> Any:
    """A cancel scope that expires ``seconds`` from now (``anyio.move_on_after`` on any loop)."""
    backend = current_backend()
    return backend.scope(deadline=backend.current_time() + seconds)


def _event_result(value: Any, topic: str, sid: str) -> Any:
    if isinstance(value, dict) and value.get("timeout"):
        raise WaitTimeoutError(f"mai.wait_for({topic!r}) at step {sid} timed out", step_id=sid)
    return value.get("payload") if isinstance(value, dict) else value
