"""The durable runtime: runs whose steps are checkpointed, replayed and resumed.

A run is a top-level module call executed under a :class:`_DurableCalls` interceptor. Every
leaf module call is a step keyed by its hierarchical step id (structure and per-parent
counters, never completion order). A step's output is committed to the store before the run
proceeds past it; on resume, a committed step returns its recorded output without running.
Composites are not recorded: they re-run their (deterministic) orchestration and every child
replays from the record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import math
import os
import socket
import sys
import time
import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Self

import anyio
import sniffio

from mai._backend import current_backend
from mai._composites import Composite
from mai._ctxmodel import Context
from mai._errors import DeadlineExceeded, MaiError
from mai._module import library_logger
from mai._seam import durability, intercept

from . import _serde
from ._crash import crash_point
from ._errors import (
    LeaseLostError,
    RunCancelledError,
    RunDeadLetteredError,
    RunFailedError,
    RunNotFoundError,
    RunNotRetryableError,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
    StoreUnavailableError,
    WorkflowIdentityError,
    WorkflowNotFoundError,
)
from ._executor import StoreExecutor
from ._identity import describe, has_default_name, ref_of, resolve_ref, unnamed_message
from ._info import (
    RunHandle,
    RunInfo,
    StepInfo,
    _decode,
    _decode_error,
    _step_sort_key,
)
from ._memory import MemoryStore
from ._replay import _DurableCalls
from ._results import cast_result
from ._sqlite import SQLiteStore
from ._store import RunRecord, RunStatus, StepRecord, Store, missing_methods
from ._trace import trace_of_run
from ._urls import redact_url
from ._versioning import check_resumable, plan_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mai._module import Module

DEFAULT_URL = "sqlite:///.mai/mai.db"
_log_name = "mai"
_live_owners: set[str] = set()
_HOST = socket.gethostname()


def _log() -> Any:
    return library_logger(_log_name)


def default_url() -> str:
    """The store URL used when none is given: ``$MAI_STORE`` or ``sqlite:///.mai/mai.db``."""
    return os.environ.get("MAI_STORE") or DEFAULT_URL


def open_store(url: str) -> Store:
    """Create the store for ``url`` (built-in schemes, then plugins of the ``mai.stores`` group)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return SQLiteStore(url)
    if scheme == "memory":
        return MemoryStore(url)
    factory = _plugin_store(scheme)
    if factory is None:
        raise StoreError(
            f"no durable store for {redact_url(url)!r}: scheme {redact_url(scheme)!r} is not "
            "built in (sqlite, memory) and no installed plugin registers it in the 'mai.stores' "
            "entry-point group"
            + (
                " (for PostgreSQL: pip install 'pymai[postgres]')"
                if scheme.startswith("postgres")
                else ""
            ),
            url=url,
        )
    return factory(url)  # type: ignore[no-any-return]


def _plugin_store(scheme: str) -> Callable[[str], Any] | None:
    try:
        plugins = importlib.import_module("mai.core.plugins")
    except ImportError:
        return None
    lookup = getattr(plugins, "store_factory", None)
    return lookup(scheme) if lookup is not None else None


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


class _Active:
    """A run this process is executing."""

    def __init__(self, record: RunRecord, module: Module[..., Any]) -> None:
        self.record = record
        self.module = module
        self.run_id = record.run_id
        self.owner = record.owner or ""
        self.epoch = record.epoch
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()
        self.cancelled = False
        self.lost = False
        #: Until when the lease surely holds, on the store's clock (claim, then each renewal
        #: from the moment it was sent): past it, no step body starts before a renewal.
        self.lease_until = record.lease_until if record.lease_until is not None else -math.inf
        self.error: BaseException | None = None
        self.recorded: dict[str, StepRecord] = {}
        self.waiters: dict[str, anyio.Event] = {}
        #: Set once the run gets somewhere in this attempt (a new commit, or a durable wait).
        self.progressed = anyio.Event()
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


class BlockingReads:
    """Synchronous reads of a runtime's store, for code outside the event loop (``rt.blocking``).

    Each call waits for the store thread; calling one from the event loop's own thread would
    freeze every run (and their heartbeats), so it raises instead.
    """

    def __init__(self, runtime: Runtime) -> None:
        """Bind to an open runtime."""
        self._rt = runtime

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return self._rt.executor.call_blocking(fn, *args)
        raise RuntimeError(
            "rt.blocking reads wait for the store and would block the event loop; "
            "use the async reads (await rt.get(...), await rt.steps(...)) here"
        )

    def get(self, run_id: str) -> RunInfo:
        """Return the run ``run_id``.

        Raises:
            RunNotFoundError: When no such run exists.
        """
        record = self._call(self._rt.store.get_run, run_id)
        if record is None:
            raise RunNotFoundError.for_id(run_id)
        return RunInfo(record)

    def list_runs(
        self, status: RunStatus | str | None = None, *, limit: int = 1000
    ) -> list[RunInfo]:
        """Return runs, newest first, optionally only those with ``status``."""
        st = RunStatus(status.upper()) if isinstance(status, str) else status
        return [RunInfo(r) for r in self._call(self._rt.store.list_runs, st, limit)]

    def steps(self, run_id: str) -> list[StepInfo]:
        """Return the committed steps of a run, in step order."""
        records = self._call(self._rt.store.load_steps, run_id)
        return sorted((StepInfo(r) for r in records), key=_step_sort_key)


class Runtime:
    """Runs modules durably on a store; an async context manager.

    Example::

        async with mai.Runtime("sqlite:///.mai/mai.db") as rt:
            handle = await rt.start(pipeline, "input", run_id="order-42")
            print(await handle.result())

    Args:
        url: Store URL: ``sqlite:///path.db`` (default ``$MAI_STORE`` or
            ``sqlite:///.mai/mai.db``), ``memory://`` or a plugin's scheme; or a store object
            (anything implementing :class:`~mai.core.durable.Store`, opened by the runtime).
        workflows: Modules this runtime may resume by name (in addition to every module
            started through it and importable ``pkg.mod:attr`` references).
        lease: Seconds a run's lease lasts; it is renewed every third of it.
        max_attempts: A run whose execution started this many times without finishing (its
            process died each time) is dead-lettered instead of started again.
        poll_interval: Seconds between store polls for cross-process events and results.
        store_patience: Seconds a step commit or a run's outcome keeps retrying a transient
            store failure (locked, read-only, full, unreachable) before the run is handed
            back, resumable; a corrupt or wrong-schema store is not retried.
        clock: Epoch seconds for durable timers, deadlines and ``mai.now()`` (default: the
            store's clock). Tests pass a virtual clock (see ``mai.testing.virtual_runtime``);
            give the store the same clock so leases are judged on it too.
    """

    def __new__(cls, url: str | Store | None = None, **options: Any) -> Self:
        """Return the remote executor's runtime when ``url``'s scheme is one (``temporal://``)."""
        if cls is Runtime and (url is None or isinstance(url, str)):
            from mai.core.executor import executor_factory  # noqa: PLC0415

            factory = executor_factory(url or default_url())
            if factory is not None:
                return factory(url or default_url(), **options)  # type: ignore[no-any-return]
        return super().__new__(cls)

    def __init__(
        self,
        url: str | Store | None = None,
        *,
        workflows: Iterable[Module[..., Any]] = (),
        lease: float = 30.0,
        max_attempts: int = 5,
        poll_interval: float = 0.2,
        store_patience: float = 120.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Configure the runtime; nothing is opened before ``async with``."""
        self._given: Store | None = None
        if url is not None and not isinstance(url, str):
            self._given, url = url, str(getattr(url, "url", type(url).__name__))
        self.url = url or default_url()
        self.store_patience = float(store_patience)
        self._clock = clock
        self.lease = float(lease)
        self.max_attempts = int(max_attempts)
        self.poll_interval = float(poll_interval)
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._workflows: dict[str, Module[..., Any]] = {}
        self._names: dict[int, str] = {}
        #: Runs this process was asked to resume: claimed as soon as their owner's lease expires.
        self._adopted: dict[str, Module[..., Any]] = {}
        for m in workflows:
            self.register(m)
        self._store: Store | None = None
        self._exec: StoreExecutor | None = None
        self._stack: AsyncExitStack | None = None
        self._nursery: Any = None
        self._active: dict[str, _Active] = {}
        self._store_errors_reported: set[str] = set()
        self._clock_offset = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The open store."""
        if self._store is None:
            raise RuntimeError("the Runtime is not open; use `async with mai.Runtime(...) as rt:`")
        return self._store

    @property
    def executor(self) -> StoreExecutor:
        """The store thread's executor."""
        if self._exec is None:
            raise RuntimeError("the Runtime is not open; use `async with mai.Runtime(...) as rt:`")
        return self._exec

    async def __aenter__(self) -> Self:
        """Open the store (migrating it if needed) and start the background tasks."""
        store = self._given if self._given is not None else open_store(self.url)
        lacking = missing_methods(store)
        if lacking:
            raise StoreError(
                f"the store for {self.url!r} ({type(store).__module__}."
                f"{type(store).__qualname__}) lacks {', '.join(lacking)}: it was written for an "
                "older mai store protocol; implement these methods (see mai.core.durable.Store "
                "and the conformance suite mai.testing.StoreConformance)",
                url=self.url,
            )
        executor = StoreExecutor(store)
        executor.start()
        try:
            await executor.read(store.open)
            before = time.time()
            store_now = await executor.read(store.now)
            self._clock_offset = store_now - (before + time.time()) / 2
        except BaseException:
            executor.stop()
            raise
        self._store, self._exec = store, executor
        _live_owners.add(self.owner)
        stack = AsyncExitStack()
        self._nursery = await stack.enter_async_context(current_backend().open_nursery())
        self._stack = stack
        self._heartbeat_scope = anyio.CancelScope()
        self._nursery.start_soon(self._heartbeat)
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Wait for this process's runs to finish (or, on error, hand them back), then close.

        An exception raised inside the ``async with`` block propagates unchanged (never wrapped
        in an ExceptionGroup); the runs it interrupted stay resumable.
        """
        try:
            with anyio.CancelScope(shield=exc_type is not None):
                if exc_type is not None:
                    for active in list(self._active.values()):
                        active.scope.cancel()
                for active in list(self._active.values()):
                    await active.done.wait()
            self._heartbeat_scope.cancel()
            assert self._stack is not None  # noqa: S101
            await self._stack.__aexit__(None, None, None)
        finally:
            _live_owners.discard(self.owner)
            executor, store = self._exec, self._store
            self._exec = self._store = None
            if executor is not None and store is not None:
                executor.call_blocking(store.close)
                executor.stop()

    def clock(self) -> float:
        """The store's clock (epoch seconds): durable timers and deadlines are judged by it.

        Measured once when the runtime opens (``store.now()``, the database's ``now()`` for
        PostgreSQL) and followed with this process's clock, so workers on hosts whose clocks
        disagree still agree on when a timer fires.
        """
        if self._clock is not None:
            return self._clock()
        return time.time() + self._clock_offset

    def store_clock(self) -> float:
        """This process's estimate of the store's clock (leases are judged by it).

        With a ``clock`` given, the store is assumed to share it (as ``virtual_runtime`` does).
        """
        if self._clock is not None:
            return self._clock()
        return time.time() + self._clock_offset

    def register(self, module: Module[..., Any], name: str | None = None) -> str:
        """Make ``module`` resumable by this runtime under ``name``; return the name used.

        The default name is the workflow's identity: its own name, or for a composite left
        with its default name (``Sequential``, ...) the ``pkg.mod:attr`` of the module-level
        variable holding it (failing that, its default name).

        Raises:
            WorkflowIdentityError: When a different workflow is already registered under the
                name (both are named in the message).
        """
        key = name or self._identity(module) or module.name
        existing = self._workflows.get(key)
        if existing is not None and existing is not module:
            raise WorkflowIdentityError(
                f"two different workflows are named {key!r} in this runtime: "
                f"{describe(existing)} and {describe(module)}; give one of them another name "
                "(name='...' or .with_(name='...')) or register it under another name"
            )
        self._workflows[key] = module
        self._names[id(module)] = key
        return key

    def _identity(self, module: Module[..., Any]) -> str | None:
        """The name a run of ``module`` is recorded under, ``None`` when it has none."""
        known = self._names.get(id(module))
        if known is not None and self._workflows.get(known) is module:
            return known
        if not has_default_name(module):
            return module.name
        return ref_of(module)

    # -- reads ---------------------------------------------------------------------------------

    async def _read_run(self, run_id: str) -> RunRecord:
        record = await self.executor.read(self.store.get_run, run_id)
        if record is None:
            raise RunNotFoundError.for_id(run_id)
        return record  # type: ignore[no-any-return]

    async def get(self, run_id: str) -> RunInfo:
        """Return the run ``run_id``, read on the store thread (the event loop keeps running).

        Raises:
            RunNotFoundError: When no such run exists.
        """
        return RunInfo(await self._read_run(run_id))

    async def list_runs(
        self, status: RunStatus | str | None = None, *, limit: int = 1000
    ) -> list[RunInfo]:
        """Return runs, newest first, optionally only those with ``status``."""
        st = RunStatus(status.upper()) if isinstance(status, str) else status
        records = await self.executor.read(self.store.list_runs, st, limit)
        return [RunInfo(r) for r in records]

    async def trace(self, run_id: str) -> Any:
        """The run's trace (a :class:`~mai.TraceHandle`) rebuilt from its recorded steps.

        Composites are not recorded; their spans are named from the run's plan and span their
        children. Input and output sizes are those of the recorded JSON.
        """
        run = await self._read_run(run_id)
        return trace_of_run(run, await self.executor.read(self.store.load_steps, run_id))

    async def steps(self, run_id: str) -> list[StepInfo]:
        """Return the committed steps of a run, in step order, with inputs, outputs, timings."""
        records = await self.executor.read(self.store.load_steps, run_id)
        return sorted((StepInfo(r) for r in records), key=_step_sort_key)

    @property
    def blocking(self) -> BlockingReads:
        """The same reads for synchronous code (a thread, a script): they wait for the store.

        Never call them from the event loop's thread: there, ``await rt.get(...)``.
        """
        return BlockingReads(self)

    # -- starting and resuming -----------------------------------------------------------------

    async def start(
        self,
        module: Module[..., Any],
        *args: Any,
        run_id: str | None = None,
        deadline: float | dt.datetime | None = None,
        ref: str | None = None,
        queue: str = "default",
        **kwargs: Any,
    ) -> RunHandle:
        """Start ``module(*args, **kwargs)`` as a durable run and return its handle.

        Starting a ``run_id`` that exists attaches to that run (resuming it in this process if
        nobody is executing it) instead of starting a second one.

        Args:
            module: The workflow (any module or composite).
            *args: Positional arguments; validated against the module's types before anything
                is written.
            run_id: The run's id (default: a new random id).
            deadline: For the whole run: seconds from now, or an aware/naive ``datetime``.
                Stored as wall-clock time and enforced again after a restart.
            ref: ``pkg.mod:attr`` import reference for resuming in another process (derived
                automatically for module-level workflows).
            queue: Queue name (used by workers).
            **kwargs: Keyword arguments for the module.

        Raises:
            CastError: When the input does not fit the module's types (nothing is written).
            SerializationError: When the input cannot be recorded as JSON.
        """
        record = self._new_record(module, args, kwargs, run_id, deadline, ref, queue)
        stored, _created = await self.executor.write(self.store.create_run, record)
        return await self._attach(stored, module)

    async def submit(
        self,
        module: Module[..., Any],
        *args: Any,
        run_id: str | None = None,
        deadline: float | dt.datetime | None = None,
        ref: str | None = None,
        queue: str = "default",
        **kwargs: Any,
    ) -> RunHandle:
        """Enqueue ``module(*args, **kwargs)`` as a durable run for a worker; do not execute it.

        The run is recorded PENDING on ``queue``; a :class:`mai.Worker` serving that queue
        claims and executes it. The input is validated exactly as by :meth:`start`, before
        anything is written, and the caller's W3C trace context is recorded with the run, so
        its spans continue the caller's trace in whichever worker executes it. Submitting a
        ``run_id`` that exists returns a handle on that run. ``await handle.result()`` polls
        the store until the run finishes.

        Raises:
            CastError: When the input does not fit the module's types (nothing is written).
            SerializationError: When the input cannot be recorded as JSON.
        """
        record = self._new_record(module, args, kwargs, run_id, deadline, ref, queue, remote=True)
        stored, _created = await self.executor.write(self.store.create_run, record)
        return RunHandle(self, stored.run_id)

    def _new_record(
        self,
        module: Module[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str | None,
        deadline: float | dt.datetime | None,
        ref: str | None,
        queue: str,
        *,
        remote: bool = False,
    ) -> RunRecord:
        """Validate the input and build the record of a new run (nothing is written)."""
        name = self._identity(module) or ref
        if name is None:
            raise WorkflowIdentityError(f"cannot start a durable run: {unnamed_message(module)}")
        self.register(module, name)
        cast_args, cast_kwargs = _validate_input(module, args, kwargs)
        payload = _serde.dumps({"args": cast_args, "kwargs": cast_kwargs}, what="the run's input")
        plan_hash, plan = plan_for(module)
        now = self.clock()
        if isinstance(deadline, dt.datetime):
            deadline_at: float | None = deadline.timestamp()
        elif deadline is not None:
            deadline_at = now + float(deadline)
        else:
            deadline_at = None
        return RunRecord(
            run_id=run_id or uuid.uuid4().hex,
            workflow=name,
            ref=ref or ref_of(module),
            plan_hash=plan_hash,
            plan=plan,
            input=payload,
            deadline=deadline_at,
            created_at=now,
            queue=queue,
            trace_context=_trace_context(make_up=remote),
        )

    async def resume(self, run_id: str, module: Module[..., Any] | None = None) -> RunHandle:
        """Resume an unfinished run in this process (no-op for finished or active runs).

        A run owned by another live process is not taken over: the returned handle waits for
        it, and claims the run (fencing the old owner) as soon as that owner's lease expires
        (a stopped or hung process), judged by the store's clock.

        Raises:
            RunNotFoundError: When no such run exists.
            WorkflowNotFoundError: When this process cannot find the run's workflow (pass
                ``module``, register it, or import its app); the run is left untouched.
            PlanMismatchError: When the current code is incompatible with the recorded plan
                (raised before any new step runs).
        """
        record = await self._read_run(run_id)
        if module is not None:
            self._workflows[record.workflow] = module
            self._names[id(module)] = record.workflow
        handle = await self._attach(record, module, strict=True)
        if not record.status.terminal:
            found = self._module_for(record)
            if not isinstance(found, WorkflowNotFoundError):
                self._adopted[run_id] = found
        return handle

    async def retry(self, run_id: str) -> RunHandle:
        """Requeue a DEAD or FAILED run once its cause is fixed; it keeps its id and steps.

        The run's previous outcome is kept in its history (:meth:`history`); the run becomes
        PENDING with its committed steps intact (they replay, they do not run again) and gets
        one new outcome. When this process knows the workflow, the run resumes here at once;
        otherwise it waits for a process (or worker) that does.

        Raises:
            RunNotFoundError: When no such run exists.
            RunNotRetryableError: When the run is not DEAD or FAILED.
        """
        record = await self.executor.write(self.store.requeue_run, run_id)
        if record is None:
            current = await self._read_run(run_id)
            raise RunNotRetryableError(
                f"run {run_id!r} is {current.status.value}; only a DEAD or FAILED run can be "
                "requeued",
                run_id=run_id,
                status=current.status.value,
            )
        if isinstance(self._module_for(record), WorkflowNotFoundError):
            return RunHandle(self, run_id)
        return await self.resume(run_id)

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        """The outcomes of a run's earlier attempts (before each :meth:`retry`), oldest first.

        Each item has ``status``, ``output``, ``error`` (decoded) and ``finished_at``.
        """
        await self._read_run(run_id)
        records = await self.executor.read(self.store.load_history, run_id)
        return [
            {
                "status": r.status,
                "output": _decode(r.output),
                "error": _decode_error(r.error),
                "finished_at": r.finished_at,
            }
            for r in records
        ]

    async def recover(self) -> list[RunHandle]:
        """Resume every unfinished run this process may own; return their handles.

        A run is taken when it has no owner, its lease expired, or its owner is a dead process
        on this host; a run with a live owner is never taken. A run whose workflow this process
        cannot find is left alone (it may belong to another app sharing the store) and logged.
        Runs whose stored record or input is unreadable, or that crashed their process
        ``max_attempts`` times, are dead-lettered with the reason.

        A run that was started at least twice without making progress is a suspect (it may be
        the one killing its processes): suspects are resumed one at a time, each only after the
        previous one made progress or finished, so a poison run is charged alone and never
        takes the runs beside it down with it.
        """
        handles = []
        suspects = []
        records = await self.executor.read(self.store.list_runs, None, 100_000)
        for record in sorted(records, key=lambda r: (r.created_at, r.run_id)):
            if record.status.terminal or record.run_id in self._active:
                continue
            crash_point("during_recovery")
            if record.attempts >= 2 and record.invalid is None:
                suspects.append(record)
                handles.append(RunHandle(self, record.run_id))
            else:
                handles.append(await self._attach(record, None))
        if suspects:
            self._nursery.start_soon(self._quarantine, suspects)
        return handles

    async def _quarantine(self, suspects: list[RunRecord]) -> None:
        """Resume suspect runs one at a time (see :meth:`recover`).

        A store failure here is waited out and never escapes into the runtime's task group
        (that would tear down every run this process executes).
        """
        for record in suspects:
            while True:
                try:
                    await self._attach(record, None)
                except StoreError as exc:
                    self._report_store_error(exc)
                    await anyio.sleep(self.poll_interval)
                    continue
                break
            active = self._active.get(record.run_id)
            if active is None:
                continue
            with anyio.move_on_after(self.lease):
                async with anyio.create_task_group() as tg:

                    async def first(event: anyio.Event, scope: anyio.CancelScope) -> None:
                        await event.wait()
                        scope.cancel()

                    tg.start_soon(first, active.progressed, tg.cancel_scope)
                    tg.start_soon(first, active.done, tg.cancel_scope)

    def _module_for(self, record: RunRecord) -> Module[..., Any] | WorkflowNotFoundError:
        """The workflow module of a run, or why it cannot be found (a run to leave alone).

        By recorded name among registered workflows, then by importing the recorded
        reference, then (runs recorded before workflow identity, under a default composite
        name) the one registered workflow with that name and the recorded plan.
        """
        module = self._workflows.get(record.workflow)
        if module is not None:
            return module
        problem = ""
        if record.ref:
            try:
                found = resolve_ref(record.ref)
            except (ImportError, AttributeError, TypeError) as exc:
                problem = f"; cannot import its reference {record.ref!r} ({exc})"
            else:
                self._workflows.setdefault(record.workflow, found)
                return found
        same = {id(m): m for m in self._workflows.values() if m.name == record.workflow}
        matches = [m for m in same.values() if plan_for(m)[0] == record.plan_hash]
        if len(matches) == 1:
            return matches[0]
        return WorkflowNotFoundError(
            f"run {record.run_id!r}: this process does not know workflow {record.workflow!r}"
            f"{problem or ' (no importable reference was recorded)'}; the run is left as it "
            "is. Resume it where its workflow is defined: mai runs resume ID --app pkg.module "
            "(or from the directory mai run was started in), mai.Runtime(workflows=[...]), or "
            "rt.resume(run_id, module)",
            run_id=record.run_id,
            workflow=record.workflow,
        )

    async def _attach(
        self, record: RunRecord, module: Module[..., Any] | None, *, strict: bool = False
    ) -> RunHandle:
        handle = RunHandle(self, record.run_id)
        if record.status.terminal or record.run_id in self._active:
            return handle
        if record.invalid is not None:
            await self._dead_letter(record, record.invalid)
            return handle
        found = module if module is not None else self._module_for(record)
        if isinstance(found, WorkflowNotFoundError):
            if strict:
                raise found
            _log().info(
                "mai.run_left_alone", run_id=record.run_id, workflow=record.workflow, why=str(found)
            )
            return handle
        try:
            _serde.loads(record.input, record.format)
        except ValueError as exc:
            await self._dead_letter(record, f"the run's input is not valid JSON ({exc})")
            return handle
        try:
            check_resumable(record.run_id, record.plan_hash, record.plan, found)
        except MaiError:
            if strict:
                raise
            _log().error("mai.resume_refused", run_id=record.run_id, exc_info=True)
            return handle
        steal = record.owner if record.owner and _owner_dead(record.owner) else None
        claimed = await self.executor.write(
            _claim, self.store, record.run_id, self.owner, self.lease, steal
        )
        if claimed is None:
            return handle  # someone else is running it: the handle polls the store
        await self._launch(claimed, found)
        return handle

    def claimable(self, record: RunRecord) -> bool:
        """Whether a live run's owner is gone: none, its lease expired, or a dead local process."""
        if record.status.terminal:
            return False
        if record.owner is None or record.lease_until is None:
            return True
        return record.lease_until < self.store_clock() or _owner_dead(record.owner)

    async def _launch(self, claimed: RunRecord, module: Module[..., Any]) -> _Active | None:
        """Execute a run this process just claimed (or dead-letter it past ``max_attempts``)."""
        current = self._active.get(claimed.run_id)
        if current is not None and await self._carry_on(current, claimed):
            return current
        if claimed.attempts > self.max_attempts:
            await self._dead_letter(
                claimed,
                f"the run started {claimed.attempts - 1} times without finishing (its process "
                f"died each time); dead-lettered after max_attempts={self.max_attempts}",
            )
            return None
        active = _Active(claimed, module)
        steps = await self.executor.read(self.store.load_steps, claimed.run_id)
        active.recorded = {s.step_id: s for s in steps}
        self._active[claimed.run_id] = active
        self._nursery.start_soon(self._drive, active)
        return active

    async def _carry_on(self, active: _Active, claimed: RunRecord) -> bool:
        """This process claimed a run it is still executing: keep that execution going.

        Its lease had lapsed (the process was too slow to renew it) and nobody else took the
        run over, so the claim sweep took it back. The execution carries on under the new
        epoch rather than a second one starting beside it (which would run its in-flight step
        again). Returns ``False`` when the execution had already learnt it was fenced: it is
        let finish, and the run starts afresh.
        """
        if active.lost:
            await active.done.wait()
            return False
        active.epoch = claimed.epoch
        if claimed.lease_until is not None:
            active.lease_until = claimed.lease_until
        if claimed.attempts > 1:  # the execution never stopped: not a start without progress
            try:
                await self.executor.write(
                    self.store.mark_progress, claimed.run_id, active.owner, claimed.epoch
                )
            except StoreError as exc:
                self._report_store_error(exc)
        return True

    async def _dead_letter(self, record: RunRecord, reason: str) -> None:
        if await self.executor.write(self.store.dead_letter, record.run_id, reason):
            _log().error("mai.run_dead_lettered", run_id=record.run_id, reason=reason)

    # -- executing -----------------------------------------------------------------------------

    async def _drive(self, active: _Active) -> None:
        """Execute a claimed run to an outcome, or leave it resumable if interrupted."""
        record = active.record
        decided: tuple[RunStatus, str | None, str | None] | None = None
        result: Any = None
        try:
            data = _serde.loads(record.input, record.format)
            args, kwargs = list(data.get("args", [])), dict(data.get("kwargs", {}))
            calls = _DurableCalls(self, active)
            with active.scope:
                token = None
                changes: dict[str, Any] = {}
                if record.deadline is not None:
                    backend = current_backend()
                    remaining = record.deadline - self.clock()
                    changes["deadline"] = backend.current_time() + remaining
                if record.trace_context:  # continue the submitter's trace (W3C traceparent)
                    changes["metadata"] = _serde.loads(record.trace_context)
                if changes:
                    token = Context.set(**changes)
                binding = durability.set(calls)
                try:
                    with intercept(calls):
                        result = await active.module(*args, **kwargs)
                finally:
                    durability.reset(binding)
                    if token is not None:
                        Context.reset(token)
                output = _serde.dumps(result, what=f"the result of run {record.run_id!r}")
                decided = (RunStatus.SUCCEEDED, output, None)
            if decided is None and active.cancelled and not active.lost:
                error = {"type": "Cancelled", "message": "the run was cancelled"}
                decided = (RunStatus.CANCELLED, None, _serde.dumps(error, what="error"))
                active.error = RunCancelledError(
                    f"run {record.run_id!r} was cancelled", run_id=record.run_id
                )
        except LeaseLostError as exc:
            active.lost = True
            active.error = exc
            _log().warning(
                "mai.lease_lost", run_id=record.run_id, owner=active.owner, error=str(exc)
            )
        except Exception as exc:  # any failure is the run's outcome
            if active.store_failed is not None:  # not the run's fault: hand it back
                active.error = active.store_failed
            else:
                expired = record.deadline is not None and self.clock() >= record.deadline - 0.01
                if isinstance(exc, DeadlineExceeded) and expired:
                    exc.add_note(f"the deadline of durable run {record.run_id!r} expired")
                active.error = exc
                error = {
                    "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "message": str(exc),
                }
                decided = (RunStatus.FAILED, None, _serde.dumps(error, what="error"))
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    if active.lost:
                        pass  # another owner has the run now: write nothing more
                    elif decided is not None:
                        if await self._finish(active, *decided) and decided[1] is not None:
                            active.value, active.succeeded = result, True
                    else:  # interrupted (shutdown): hand the run back, resumable at once
                        # Patiently only when the store failed the run; an interrupt (Ctrl-C,
                        # a cancelled runtime) tries once, never waits out store_patience.
                        await self._release(active, patient=active.store_failed is not None)
            finally:
                if self._active.get(active.run_id) is active:
                    del self._active[active.run_id]
                active.done.set()

    def _retryable(self, exc: StoreError, since: float) -> bool:
        """Whether a store failure is worth waiting out (bounded by ``store_patience``)."""
        if isinstance(exc, StoreCorruptError | StoreSchemaError):
            return False
        if isinstance(exc, StoreUnavailableError) and not exc.retryable:
            return False
        return anyio.current_time() - since < self.store_patience

    async def _write_patiently(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a write, waiting out transient store failures (see :meth:`_retryable`)."""
        since = anyio.current_time()
        delay = 0.05
        while True:
            try:
                return await self.executor.write(fn, *args)
            except StoreError as exc:
                self._report_store_error(exc)
                if not self._retryable(exc, since):
                    raise
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _finish(
        self, active: _Active, status: RunStatus, output: str | None, error: str | None
    ) -> bool:
        """Record the run's outcome (with anything not committed yet); ``True`` when recorded."""
        extra = [*active.pending, *active.uncommitted.values()]
        try:
            ok = await self._write_patiently(
                _finish_tx,
                self.store,
                extra,
                active.run_id,
                active.owner,
                active.epoch,
                status,
                output,
                error,
            )
        except StoreError as exc:
            _log().error(
                "mai.run_outcome_not_recorded",
                run_id=active.run_id,
                status=str(status),
                error=str(exc),
                note="the run stays resumable once its lease expires",
            )
            return False
        if not ok:
            active.lost = True
            _log().warning("mai.run_outcome_fenced", run_id=active.run_id, status=str(status))
        return bool(ok)

    async def _release(self, active: _Active, *, patient: bool = True) -> None:
        """Hand an interrupted run back (committing what finished); never raises."""
        extra = [*active.pending, *active.uncommitted.values()]
        write = self._write_patiently if patient else self.executor.write
        try:
            await write(_release_tx, self.store, extra, active.run_id, active.owner, active.epoch)
        except StoreError as exc:
            _log().error(
                "mai.run_not_released",
                run_id=active.run_id,
                error=str(exc),
                note="it is resumable once its lease expires",
            )

    def _report_store_error(self, exc: StoreError) -> None:
        """Log a store failure once per kind while it lasts."""
        if exc.kind not in self._store_errors_reported:
            self._store_errors_reported.add(exc.kind)
            _log().error("mai.store_error", kind=exc.kind, error=str(exc))

    async def commit(self, active: _Active, record: StepRecord) -> None:
        """Commit a step (and the ``mai.now()`` readings before it), in one transaction.

        Transient storage failures are waited out (reported once) for up to
        ``store_patience`` seconds; then, or at once for a corrupt or wrong-schema store, the
        store is unusable for this run: it is handed back, resumable, and the commit raises.
        A commit cancelled while waiting keeps the finished step in memory: the next call of
        the same step commits it instead of running the body again.
        """
        pending = list(active.pending) if active.pending else None
        since: float | None = None
        delay = 0.05
        stalled: str | None = None
        while True:
            epoch = active.epoch
            try:
                if pending:
                    await self.executor.write(
                        _put_steps, self.store, [*pending, record], active.owner, active.epoch
                    )
                else:
                    await self.executor.write(
                        self.store.put_step, record, active.owner, active.epoch
                    )
            except StoreError as exc:
                self._report_store_error(exc)
                stalled = exc.kind
                if since is None:
                    since = anyio.current_time()
                if not self._retryable(exc, since):
                    active.store_failed = exc
                    active.scope.cancel()
                    raise
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except LeaseLostError:
                if active.epoch != epoch:
                    continue  # this process took the run back meanwhile (_carry_on): commit again
                active.lost = True
                active.scope.cancel()
                raise
            if stalled is not None:  # this write got through: the fault is gone, re-arm it
                self._store_errors_reported.discard(stalled)
            if pending:
                active.pending = [r for r in active.pending if r not in pending]
            active.uncommitted.pop(record.step_id, None)
            active.recorded[record.step_id] = record
            if not active.progressed.is_set():
                await self.note_progress(active)
            return

    async def hold_lease(self, active: _Active) -> None:
        """Before a step body starts: make sure this process still owns the run.

        A process stalled past its lease (paused, starved of CPU, waiting for an answer
        already on its way) may wake after another worker took the run over and committed
        the very step it is about to run. Its writes would be fenced, but a body is an effect
        outside the store: so once the lease may have expired (by this process's estimate of
        the store's clock), the lease is renewed first, and a fenced renewal cancels the run
        here, before the body. Within the lease, this costs nothing.

        Raises:
            LeaseLostError: When another owner has the run now (its in-flight steps are
                cancelled, as by the heartbeat).
            StoreError: When the store stays unusable past ``store_patience`` (the run is
                handed back, as when a commit fails).
        """
        if self.store_clock() < active.lease_until:
            return
        sent, epoch = self.store_clock(), active.epoch
        try:
            ok, cancel = await self._write_patiently(
                _renew, self.store, active.run_id, active.owner, epoch, self.lease
            )
        except StoreError as exc:
            active.store_failed = exc
            active.scope.cancel()
            raise
        if not ok and active.epoch != epoch:
            return  # this process took the run back meanwhile (_carry_on), with a fresh lease
        if not ok:
            active.lost = True
            active.scope.cancel()
            raise LeaseLostError(
                f"run {active.run_id!r}: this process (epoch {active.epoch}) no longer owns the "
                "run; its next step was not started",
                run_id=active.run_id,
            )
        active.lease_until = max(active.lease_until, sent + self.lease)
        if cancel:
            active.cancelled = True
            active.scope.cancel()
            await anyio.lowlevel.checkpoint()

    async def note_progress(self, active: _Active) -> None:
        """The run got somewhere in this attempt: it is not the one killing its processes.

        Called on the first new commit and on entering a durable wait. When the run had been
        started before without progress, its count of starts without progress is reset.
        """
        if active.progressed.is_set():
            return
        active.progressed.set()
        if active.record.attempts > 1:
            try:
                await self.executor.write(
                    self.store.mark_progress, active.run_id, active.owner, active.epoch
                )
            except StoreError as exc:
                self._report_store_error(exc)

    async def _heartbeat(self) -> None:
        with self._heartbeat_scope:
            while True:
                await anyio.sleep(self.lease / 3)
                for active in list(self._active.values()):
                    sent, epoch = self.store_clock(), active.epoch
                    try:
                        ok, cancel = await self.executor.write(
                            _renew,
                            self.store,
                            active.run_id,
                            active.owner,
                            epoch,
                            self.lease,
                        )
                    except StoreError as exc:
                        self._report_store_error(exc)
                        continue
                    if not ok:
                        if active.epoch == epoch:  # else this process took the run back
                            active.lost = True
                            active.scope.cancel()
                            _log().warning(
                                "mai.lease_lost", run_id=active.run_id, owner=active.owner
                            )
                        continue
                    active.lease_until = max(active.lease_until, sent + self.lease)
                    if cancel:
                        active.cancelled = True
                        active.scope.cancel()

    # -- control -------------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> None:
        """Cancel a run: its running steps are cancelled and it is recorded CANCELLED.

        Raises:
            RunNotFoundError: When no such run exists.
        """
        record = await self.executor.write(self.store.request_cancel, run_id)
        if record is None:
            raise RunNotFoundError.for_id(run_id)
        active = self._active.get(run_id)
        if active is not None:
            active.cancelled = True
            active.scope.cancel()
            await active.done.wait()

    async def send(self, run_id: str, topic: str, payload: Any = None) -> None:
        """Send ``payload`` to the run; a ``mai.wait_for(topic)`` inside it receives it.

        Raises:
            RunNotFoundError: When no such run exists.
            SerializationError: When the payload is not JSON-serialisable.
        """
        await self._read_run(run_id)
        data = _serde.dumps(payload, what=f"the payload sent to run {run_id!r}")
        await self.executor.write(self.store.add_event, run_id, topic, data)
        active = self._active.get(run_id)
        if active is not None:
            event = active.waiters.pop(topic, None)
            if event is not None:
                event.set()

    def _outcome(self, record: RunRecord) -> Any:
        if record.status == RunStatus.SUCCEEDED:
            value = _serde.loads(record.output or "null", record.format)
            module = self._workflows.get(record.workflow)
            return cast_result(module, value) if module is not None else value
        if record.status == RunStatus.CANCELLED:
            raise RunCancelledError(f"run {record.run_id!r} was cancelled", run_id=record.run_id)
        if record.status == RunStatus.DEAD:
            raise RunDeadLetteredError(
                f"run {record.run_id!r} was dead-lettered: {record.error}",
                run_id=record.run_id,
                reason=record.error or "",
            )
        err = _decode_error(record.error) or {}
        raise RunFailedError(
            f"run {record.run_id!r} failed: {err.get('type', '?')}: {err.get('message', '')}",
            run_id=record.run_id,
            error_type=str(err.get("type", "")),
            error_message=str(err.get("message", "")),
        )


def _trace_context(*, make_up: bool) -> str | None:
    """The caller's W3C trace context as JSON, to continue its trace wherever the run executes.

    With no current span (or no OpenTelemetry loaded) and ``make_up`` (a submitted run), a new
    trace id is made up, so the spans of every attempt of the run, in any worker, still form
    one trace; otherwise there is nothing to record.
    """
    carrier: dict[str, Any] = {}
    if sys.modules.get("opentelemetry.trace") is not None:
        from mai.core.tracing import inject_trace_context  # noqa: PLC0415

        carrier = {k: v for k, v in inject_trace_context({}).items() if isinstance(v, str)}
    if "traceparent" not in carrier:
        if not make_up:
            return None
        carrier = {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"}
    return _serde.dumps(carrier, what="the trace context")


def _claim(
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
        if last.kind == "timer" and _wake_at(last) > store.now():
            store.mark_progress(run_id, owner, claimed.epoch)
            return dataclasses.replace(claimed, attempts=1)
    return claimed


def _put_steps(store: Store, records: list[StepRecord], owner: str, epoch: int) -> None:
    for r in records:
        store.put_step(r, owner, epoch)


def _finish_tx(
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
        _put_steps(store, extra, owner, epoch)
    except LeaseLostError:
        return False
    return store.finish_run(run_id, owner, epoch, status, output, error)


def _release_tx(store: Store, extra: list[StepRecord], run_id: str, owner: str, epoch: int) -> bool:
    try:
        _put_steps(store, extra, owner, epoch)
    except LeaseLostError:
        return False
    return store.release_run(run_id, owner, epoch)


def _wake_at(step: StepRecord) -> float:
    try:
        return float(_serde.loads(step.output))
    except (TypeError, ValueError):
        return 0.0


def _renew(store: Store, run_id: str, owner: str, epoch: int, lease: float) -> tuple[bool, bool]:
    ok = store.renew_lease(run_id, owner, epoch, lease)
    run = store.get_run(run_id) if ok else None
    return ok, bool(run is not None and run.cancel_requested)


def _validate_input(
    module: Module[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Cast the input to the types of the module that will receive it, before any write."""
    target: Any = module
    while isinstance(target, Composite) and getattr(target, "_input_child", None) is not None:
        target = target._input_child
    spec = target._spec
    if spec.passthrough:
        return list(args), dict(kwargs)
    cast_args, cast_kwargs = spec.bind(target.name, args, kwargs, target._bound)
    for key in target._bound:  # values bound with with_() are the module's, not the input's
        if key not in kwargs:
            cast_kwargs.pop(key, None)
    positional = list(cast_args)
    free = [
        p.name
        for p in spec.params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in target._bound
    ]
    keep = [n for n in free[len(positional) : len(args)] if n in cast_kwargs]
    positional.extend(cast_kwargs.pop(n) for n in keep)  # keep the caller's shape, cast
    return positional, cast_kwargs
