"""The durable runtime: runs whose steps are checkpointed, replayed and resumed.

The :class:`Runtime` opens the store (through the async interface of ``_astore.py``), starts,
resumes, recovers, cancels and reads runs; each run it executes has one owner
(:class:`~mai.core.durable._owner.RunOwner`), admitted by the policy of
:class:`~mai.core.durable._owner.Host`. A run is a top-level module call executed with its owner
as interceptor: every leaf module call is a step keyed by its hierarchical step id (structure
and per-parent counters, never completion order), committed before the run proceeds past it
and replayed from the record on resume. Composites are not recorded: they re-run their
(deterministic) orchestration and every child replays from the record.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import time
import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Self

import sniffio

from mai._backend import current_backend
from mai._composites import Composite

from . import _serde
from ._astore import ExecutorStore
from ._errors import (
    RunCancelledError,
    RunDeadLetteredError,
    RunFailedError,
    RunNotFoundError,
    RunNotRetryableError,
    StoreError,
    WorkflowIdentityError,
    WorkflowNotFoundError,
)
from ._faults import fault_point
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
from ._owner import _HOST, Host, RunOwner, _live_owners, _owner_dead
from ._results import cast_result
from ._sqlite import SQLiteStore
from ._store import RunRecord, RunStatus, Store, new_run
from ._trace import trace_of_run
from ._urls import redact_url
from ._versioning import plan_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mai._module import Module

    from ._executor import StoreExecutor

DEFAULT_URL = "sqlite:///.mai/mai.db"


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
            return self._rt.async_store.blocking(fn, *args)
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
            self._given, url = url, url.url if isinstance(url, Store) else type(url).__name__
        self.url = url or default_url()
        self.store_patience = float(store_patience)
        self._clock = clock
        self.lease = float(lease)
        self.max_attempts = int(max_attempts)
        self.poll_interval = float(poll_interval)
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._workflows: dict[str, Module[..., Any]] = {}
        self._names: dict[int, str] = {}
        #: ``ref_of`` per workflow object started here (it scans the module that defined it).
        self._refs: dict[int, tuple[Module[..., Any], str | None]] = {}
        #: Runs this process was asked to resume: claimed as soon as their owner's lease expires.
        self._adopted: dict[str, Module[..., Any]] = {}
        for m in workflows:
            self.register(m)
        self._astore: ExecutorStore | None = None
        self._host: Host | None = None
        self._stack: AsyncExitStack | None = None
        self._nursery: Any = None
        self._clock_offset = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The open (synchronous) store; use :attr:`async_store` from async code."""
        return self.async_store.store

    @property
    def async_store(self) -> ExecutorStore:
        """The open store's async interface (every operation the runtime uses, as coroutines)."""
        if self._astore is None:
            raise RuntimeError("the Runtime is not open; use `async with mai.Runtime(...) as rt:`")
        return self._astore

    @property
    def executor(self) -> StoreExecutor:
        """The store thread's executor (``commits`` and ``writes`` count its work)."""
        return self.async_store.executor

    @property
    def _active(self) -> dict[str, RunOwner]:
        """The runs this process executes now (their owners), by run id."""
        return self._host.active if self._host is not None else {}

    async def __aenter__(self) -> Self:
        """Open the store (migrating it if needed) and start the background tasks.

        Raises:
            StoreInterfaceError: When the store lacks methods of the store protocol (one
                written for an older release); the message names each one.
        """
        store = self._given if self._given is not None else open_store(self.url)
        astore = ExecutorStore(store)
        await astore.open()
        try:
            before = time.time()
            store_now = await astore.now()
            self._clock_offset = store_now - (before + time.time()) / 2
        except BaseException:
            astore.executor.stop()
            raise
        self._astore = astore
        _live_owners.add(self.owner)
        stack = AsyncExitStack()
        self._nursery = await stack.enter_async_context(current_backend().open_nursery())
        self._stack = stack
        self._host = Host(
            astore,
            self.owner,
            lease=self.lease,
            max_attempts=self.max_attempts,
            poll_interval=self.poll_interval,
            store_patience=self.store_patience,
            clock=self.clock,
            spawn=self._nursery.start_soon,
        )
        self._heartbeat_scope = current_backend().scope()
        self._nursery.start_soon(self._heartbeat)
        return self

    async def _heartbeat(self) -> None:
        assert self._host is not None  # noqa: S101
        with self._heartbeat_scope:
            await self._host.heartbeat()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Wait for this process's runs to finish (or, on error, hand them back), then close.

        An exception raised inside the ``async with`` block propagates unchanged (never wrapped
        in an ExceptionGroup); the runs it interrupted stay resumable.
        """
        try:
            with current_backend().scope(shield=exc_type is not None):
                if exc_type is not None:
                    for active in list(self._active.values()):
                        active.interrupt()
                for active in list(self._active.values()):
                    await active.done.wait()
            self._heartbeat_scope.cancel()
            assert self._stack is not None  # noqa: S101
            await self._stack.__aexit__(None, None, None)
        finally:
            _live_owners.discard(self.owner)
            astore, self._astore, self._host = self._astore, None, None
            if astore is not None:
                astore.close()

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

    def _ref_of(self, module: Module[..., Any]) -> str | None:
        """:func:`ref_of` ``module``, looked up once per workflow object by this runtime."""
        cached = self._refs.get(id(module))
        if cached is None or cached[0] is not module:
            cached = self._refs[id(module)] = (module, ref_of(module))
        return cached[1]

    # -- reads ---------------------------------------------------------------------------------

    async def _read_run(self, run_id: str) -> RunRecord:
        record = await self.async_store.get_run(run_id)
        if record is None:
            raise RunNotFoundError.for_id(run_id)
        return record

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
        records = await self.async_store.list_runs(st, limit)
        return [RunInfo(r) for r in records]

    async def trace(self, run_id: str) -> Any:
        """The run's trace (a :class:`~mai.TraceHandle`) rebuilt from its recorded steps.

        Composites are not recorded; their spans are named from the run's plan and span their
        children. Input and output sizes are those of the recorded JSON.
        """
        run = await self._read_run(run_id)
        return trace_of_run(run, await self.async_store.load_steps(run_id))

    async def steps(self, run_id: str) -> list[StepInfo]:
        """Return the committed steps of a run, in step order, with inputs, outputs, timings."""
        records = await self.async_store.load_steps(run_id)
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
        stored, claimed = await self.async_store.create_and_claim(record, self.owner, self.lease)
        if claimed is None:  # the run existed: attach to it (resume it here if nobody runs it)
            return await self._attach(stored, module)
        assert self._host is not None  # noqa: S101
        self._host.admit_new(claimed, module)
        return RunHandle(self, claimed.run_id)

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
        stored, _created = await self.async_store.create_run(record)
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
        return new_run(
            run_id=run_id or uuid.uuid4().hex,
            workflow=name,
            ref=ref or self._ref_of(module),
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
        record = await self.async_store.requeue_run(run_id)
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
        records = await self.async_store.load_history(run_id)
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
        host = self._host
        assert host is not None  # noqa: S101
        handles = []
        suspects = []
        records = await self.async_store.list_runs(None, 100_000)
        for record in sorted(records, key=lambda r: (r.created_at, r.run_id)):
            if record.status.terminal or record.run_id in self._active:
                continue
            fault_point("during_recovery")
            if record.invalid is None and host.suspect(record, claimed=False):
                suspects.append(record)
                handles.append(RunHandle(self, record.run_id))
            else:
                handles.append(await self._attach(record, None))
        if suspects:  # one at a time, each once the previous one is cleared
            self._nursery.start_soon(host.quarantine, suspects, self._attach)
        return handles

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
        self, record: RunRecord, module: Module[..., Any] | None = None, *, strict: bool = False
    ) -> RunHandle:
        """Execute an unclaimed run here if the admission policy lets it (see ``Host.admit``)."""
        handle = RunHandle(self, record.run_id)
        if record.status.terminal or record.run_id in self._active:
            return handle
        assert self._host is not None  # noqa: S101
        found = module if module is not None else self._module_for(record)
        await self._host.admit(record, found, claimed=False, strict=strict)
        return handle

    def claimable(self, record: RunRecord) -> bool:
        """Whether a live run's owner is gone: none, its lease expired, or a dead local process."""
        if record.status.terminal:
            return False
        if record.owner is None or record.lease_until is None:
            return True
        return record.lease_until < self.store_clock() or _owner_dead(record.owner)

    # -- control -------------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> None:
        """Cancel a run: its running steps are cancelled and it is recorded CANCELLED.

        Raises:
            RunNotFoundError: When no such run exists.
        """
        record = await self.async_store.request_cancel(run_id)
        if record is None:
            raise RunNotFoundError.for_id(run_id)
        active = self._active.get(run_id)
        if active is not None:
            active.cancel(requested=True)
            await active.done.wait()

    async def send(self, run_id: str, topic: str, payload: Any = None) -> None:
        """Send ``payload`` to the run; a ``mai.wait_for(topic)`` inside it receives it.

        Raises:
            RunNotFoundError: When no such run exists.
            SerializationError: When the payload is not JSON-serialisable.
        """
        await self._read_run(run_id)
        data = _serde.dumps(payload, what=f"the payload sent to run {run_id!r}")
        await self.async_store.add_event(run_id, topic, data)
        active = self._active.get(run_id)
        if active is not None:
            active.wake(topic)

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
    if not spec.ready:
        spec.resolve()
    if not kwargs and not target._bound and len(args) == spec.fast_n:  # what bind would give
        positional = list(args)
        for i, pname, c in spec.pos_casters:
            if type(positional[i]) is not c.exact:
                positional[i] = c.cast(positional[i], target.name, pname)
        return positional, {}
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
