"""The front desk on Temporal: start, inspect, cancel and message runs; serve them as a worker.

``mai.Runtime("temporal://...")`` returns a :class:`TemporalRuntime` (the ``temporal`` entry
point of the ``mai.stores`` group is a remote executor). The Temporal SDK is asyncio-only while
pymai callers often run under Trio, so the client and any in-process worker live on one asyncio
event loop in a thread of their own; calls hop onto it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread

from mai import ConfigError, Module, RunCancelledError, RunInfo, RunStatus, StepInfo
from mai.core.durable import RunNotFoundError, RunRecord, StepRecord
from mai.core.executor import dumps, encode_input, loads, module_ref, resolve_module_ref

from ._options import TemporalOptions, parse_options
from ._tracing import trace_context
from ._workflow import (
    ACTIVITY,
    SIGNAL,
    WORKERS,
    WORKFLOW,
    MaiRun,
    WorkerSettings,
    error_of,
    mai_step,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable

_STATUS = {
    1: RunStatus.RUNNING,  # RUNNING
    2: RunStatus.SUCCEEDED,  # COMPLETED
    3: RunStatus.FAILED,  # FAILED
    4: RunStatus.CANCELLED,  # CANCELED
    5: RunStatus.FAILED,  # TERMINATED
    6: RunStatus.RUNNING,  # CONTINUED_AS_NEW
    7: RunStatus.FAILED,  # TIMED_OUT
}
#: Modules the workflow sandbox shares with the worker instead of importing again.
PASSTHROUGH = (
    "mai",
    "mai_temporal",
    "anyio",
    "sniffio",
    "trio",
    "outcome",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "structlog",
    "opentelemetry",
)


_MEMO_INPUT = 1500


class _Loop:
    """An asyncio event loop in a thread of its own, for the Temporal client and workers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="mai-temporal", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def blocking(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and wait for it here (synchronous callers)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop; the awaiting task (any backend) is released on cancel."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def connect(options: TemporalOptions) -> Any:
    """A ``temporalio`` client for ``options`` (TLS and API key applied, never shown)."""
    from temporalio.client import Client  # noqa: PLC0415

    return await Client.connect(
        options.address,
        namespace=options.namespace,
        api_key=options.api_key,
        tls=options.tls_config(),
        identity=f"mai@{socket.gethostname()}:{os.getpid()}",
    )


def _restrictions(modules: Iterable[str]) -> Any:
    from temporalio.worker.workflow_sandbox import SandboxRestrictions  # noqa: PLC0415

    roots = {m.partition(".")[0] for m in modules}
    return SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH, *roots)


def make_replayer(modules: Iterable[str] = ()) -> Any:
    """A ``temporalio`` Replayer for pymai runs (the worker's sandbox; ``modules`` passed through).

    ``await make_replayer(["pkg.mod"]).replay_workflow(history)`` raises when the current code
    no longer produces the recorded history (a non-determinism error).
    """
    from temporalio.worker import Replayer  # noqa: PLC0415
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner  # noqa: PLC0415

    return Replayer(
        workflows=[MaiRun],
        workflow_runner=SandboxedWorkflowRunner(restrictions=_restrictions(modules)),
    )


def make_worker(
    client: Any,
    options: TemporalOptions,
    *,
    task_queue: str | None = None,
    modules: Iterable[str] = (),
    concurrency: int = 100,
    tracer_provider: Any = None,
    **worker_options: Any,
) -> Any:
    """A ``temporalio`` worker serving pymai runs and steps on ``task_queue``.

    ``modules`` are the user's modules (packages) that define workflows: the workflow sandbox
    shares them, with pymai, anyio, pydantic and structlog, instead of importing them again.
    ``tracer_provider`` is the OpenTelemetry provider for the spans of the runs and steps this
    worker executes (default: the application's global one, when configured); the settings
    apply to every worker of this process on the same task queue. ``worker_options`` go to
    ``temporalio.worker.Worker`` as they are (for example ``max_cached_workflows``).
    """
    from temporalio.worker import Worker  # noqa: PLC0415
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner  # noqa: PLC0415

    import mai  # noqa: PLC0415

    mai.plugins("mai.tracers")  # discovered now: the sandbox cannot read package metadata
    restrictions = _restrictions(modules)
    queue = task_queue or options.task_queue
    old = WORKERS.get(queue)
    if old is not None:
        old.close()
    WORKERS[queue] = WorkerSettings(tracer_provider, options.activity_runner, concurrency)
    return Worker(
        client,
        task_queue=queue,
        workflows=[MaiRun],
        activities=[mai_step],
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        max_concurrent_activities=concurrency,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=options.sticky_timeout),
        graceful_shutdown_timeout=worker_options.pop(
            "graceful_shutdown_timeout", timedelta(seconds=1)
        ),
        **worker_options,
    )


def run_request(
    module: Module[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: TemporalOptions,
    deadline: float | dt.datetime | None = None,
    ref: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], timedelta | None]:
    """The ``mai.run`` workflow argument, memo and execution timeout for a run of ``module``.

    Raises:
        CastError: When the input does not fit the module's types.
        ConfigError: When the module has no importable reference (workers must import it).
    """
    ref = ref or module_ref(module)
    if ref is None:
        raise ConfigError(
            f"module {module.name!r} has no importable reference: Temporal workers import "
            "the workflow by name, so define it at module level (not in __main__ or inside "
            "a function), or pass ref='pkg.mod:attr'",
            module_name=module.name,
        )
    text = encode_input(module, args, kwargs)
    deadline_at: float | None = None
    if isinstance(deadline, dt.datetime):
        deadline_at = deadline.timestamp()
    elif deadline is not None:
        deadline_at = time.time() + float(deadline)
    request = {
        "ref": ref,
        "input": text,
        "deadline": deadline_at,
        "trace_context": trace_context(),
        "settings": {
            "heartbeat": options.heartbeat,
            "attempt_timeout": options.attempt_timeout,
            "max_pending": options.max_pending,
        },
    }
    # Temporal warns past 2 KB of memo: a large input is left out of it (`mai runs show`).
    shown = text if len(text) <= _MEMO_INPUT else None
    memo = {"workflow": module.name, "ref": ref, "input": shown, "deadline": deadline_at}
    timeout = None
    if deadline_at is not None:  # a backstop: the run's own deadline fires first, in mai
        timeout = timedelta(seconds=max(deadline_at - time.time(), 0.0) + 30.0)
    return request, memo, timeout


class TemporalRunHandle:
    """A handle on one run on Temporal (what :meth:`TemporalRuntime.start` returns)."""

    def __init__(
        self, runtime: TemporalRuntime, run_id: str, module: Module[..., Any] | None
    ) -> None:
        """Bind the handle to its runtime."""
        self.runtime = runtime
        self.run_id = run_id
        self._module = module

    def __repr__(self) -> str:
        """Return a short description."""
        return f"<TemporalRunHandle {self.run_id!r}>"

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.runtime._info(self.run_id, outcome=False)).status

    async def cancel(self) -> None:
        """Request the run's cancellation."""
        await self.runtime.cancel(self.run_id)

    async def result(self) -> Any:
        """Wait for the run; return its typed result or raise the error it failed with.

        Raises:
            RunCancelledError: When the run was cancelled.
            Exception: The run's own error type and message (rebuilt), or
                :class:`~mai.core.executor.RemoteError` when the type cannot be imported here.
        """
        text = await self.runtime._result(self.run_id)
        value = loads(text)
        module = self._module or self.runtime._workflows.get(self.run_id)
        return module.cast_output(value) if module is not None else value


class TemporalRuntime:
    """pymai's runtime interface over a Temporal service; ``mai.Runtime("temporal://...")``.

    Runs are Temporal workflow executions of the workflow type ``mai.run`` (run id = workflow
    id); starting an id that exists attaches to it. Runs execute on workers
    (``mai worker --executor temporal --app pkg.mod``, or this process with ``worker=True``).

    Args:
        url: ``temporal://HOST:PORT/NAMESPACE?task_queue=Q`` (see :mod:`mai_temporal._options`).
        workflows: Modules this process may run (with ``worker=True``) and cast results for.
        worker: Also run a worker in this process while the runtime is open.
        tracer_provider: The OpenTelemetry tracer provider of that worker's spans (default:
            the application's global one, when configured).
        worker_options: Further ``temporalio.worker.Worker`` options for that worker.
        **options: :class:`TemporalOptions` fields (``api_key``, ``tls_cert``, ...).
    """

    remote_executor = True

    def __init__(
        self,
        url: str | None = None,
        *,
        workflows: Iterable[Module[..., Any]] = (),
        worker: bool = False,
        tracer_provider: Any = None,
        worker_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Configure; nothing connects before ``async with``."""
        self.options = parse_options(url, **options)
        self._tracer_provider = tracer_provider
        self._worker_options = dict(worker_options or {})
        self.url = self.options.url
        self._registered = list(workflows)
        self._in_process = worker
        self._loop: _Loop | None = None
        self._client: Any = None
        self._worker_task: Any = None
        self._workflows: dict[str, Module[..., Any]] = {}
        #: Runs executing in this process: none (workers execute them); ``mai run`` looks here.
        self._active: dict[str, Any] = {}

    def __repr__(self) -> str:
        """Where it connects (no secrets)."""
        return f"<TemporalRuntime {self.options!r}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def _open(self) -> None:
        loop = _Loop()
        try:
            self._client = loop.blocking(connect(self.options))
        except BaseException:
            loop.close()
            raise
        self._loop = loop

    async def __aenter__(self) -> Self:
        """Connect (and start the in-process worker when asked)."""
        await anyio.to_thread.run_sync(self._open)
        if self._in_process:
            refs = [module_ref(m) for m in self._registered]
            modules = [r.partition(":")[0] for r in refs if r is not None]
            await self._call(self._start_worker(modules))
        return self

    async def _start_worker(self, modules: list[str]) -> None:
        worker = make_worker(
            self._client,
            self.options,
            modules=modules,
            tracer_provider=self._tracer_provider,
            **self._worker_options,
        )
        self._worker_task = asyncio.get_running_loop().create_task(worker.run())
        self._worker = worker

    async def _stop_worker(self) -> None:
        if self._worker_task is not None:
            await self._worker.shutdown()
            self._worker_task = None
            _release(self.options.task_queue)

    async def __aexit__(self, *exc: object) -> None:
        """Stop the in-process worker and disconnect."""
        loop = self._loop
        if loop is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._call(self._stop_worker())
            finally:
                self._loop = None
                await anyio.to_thread.run_sync(loop.close)

    @property
    def client(self) -> Any:
        """The ``temporalio`` client (for Temporal features pymai does not wrap)."""
        if self._client is None or self._loop is None:
            raise RuntimeError(
                "the Temporal runtime is not open; use `async with mai.Runtime(url) as rt:`"
            )
        return self._client

    async def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None  # noqa: S101 - checked by `client`
        return await self._loop.call(coro)

    def _blocking(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None  # noqa: S101
        return self._loop.blocking(coro)

    def register(self, module: Module[..., Any], name: str | None = None) -> None:  # noqa: ARG002 - Runtime's signature
        """Remember ``module`` (results of its runs are cast to its output type)."""
        self._registered.append(module)

    # -- starting --------------------------------------------------------------------------------

    async def start(
        self,
        module: Module[..., Any],
        *args: Any,
        run_id: str | None = None,
        deadline: float | dt.datetime | None = None,
        ref: str | None = None,
        queue: str | None = None,
        **kwargs: Any,
    ) -> TemporalRunHandle:
        """Start ``module(*args, **kwargs)`` as a Temporal workflow; return its handle.

        Starting a ``run_id`` that exists (running or finished) attaches to that run.

        Raises:
            CastError: When the input does not fit the module's types (nothing is started).
            ConfigError: When the module has no importable reference (workers must import it).
        """
        self.client  # noqa: B018 - raises when not open
        run_id = run_id or uuid.uuid4().hex
        request, memo, timeout = run_request(module, args, kwargs, self.options, deadline, ref)
        o = self.options
        await self._call(
            self._start(request, run_id, queue or o.task_queue, memo, timeout),
        )
        self._workflows[run_id] = module
        return TemporalRunHandle(self, run_id, module)

    submit = start

    async def _start(
        self,
        request: dict[str, Any],
        run_id: str,
        queue: str,
        memo: dict[str, Any],
        timeout: timedelta | None,  # noqa: ASYNC109 - Temporal's execution timeout
    ) -> None:
        from temporalio.common import (  # noqa: PLC0415
            WorkflowIDConflictPolicy,
            WorkflowIDReusePolicy,
        )
        from temporalio.exceptions import WorkflowAlreadyStartedError  # noqa: PLC0415

        with contextlib.suppress(WorkflowAlreadyStartedError):  # a finished run: attach to it
            await self.client.start_workflow(
                WORKFLOW,
                request,
                id=run_id,
                task_queue=queue,
                execution_timeout=timeout,
                task_timeout=timedelta(seconds=self.options.task_timeout),
                memo=memo,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )

    async def resume(
        self, run_id: str, module: Module[..., Any] | None = None
    ) -> TemporalRunHandle:
        """A handle on ``run_id``: Temporal resumes runs by itself, whichever worker is up."""
        await self._info(run_id, outcome=False)
        return TemporalRunHandle(self, run_id, module)

    # -- results ---------------------------------------------------------------------------------

    async def _result(self, run_id: str) -> str:
        return await self._call(self._result_on_loop(run_id))  # type: ignore[no-any-return]

    async def _result_on_loop(self, run_id: str) -> str:
        from temporalio.client import WorkflowFailureError  # noqa: PLC0415
        from temporalio.exceptions import CancelledError  # noqa: PLC0415
        from temporalio.service import RPCError  # noqa: PLC0415

        handle = self.client.get_workflow_handle(run_id)
        try:
            return await handle.result()  # type: ignore[no-any-return]
        except WorkflowFailureError as err:
            if isinstance(err.cause, CancelledError):
                raise RunCancelledError(f"run {run_id!r} was cancelled", run_id=run_id) from None
            raise error_of(err.cause) from None
        except RPCError as err:
            if "not found" in str(err).lower():
                raise RunNotFoundError.for_id(run_id) from None
            raise

    # -- reads -----------------------------------------------------------------------------------

    async def _describe(self, run_id: str, outcome: bool) -> RunRecord:
        from temporalio.service import RPCError  # noqa: PLC0415

        handle = self.client.get_workflow_handle(run_id)
        try:
            desc = await handle.describe()
        except RPCError as err:
            if "not found" in str(err).lower():
                raise RunNotFoundError.for_id(run_id) from None
            raise
        memo = await desc.memo()
        status = _STATUS.get(int(desc.status or 1), RunStatus.RUNNING)
        output = error = None
        if outcome and status == RunStatus.SUCCEEDED:
            output = await handle.result()
        elif outcome and status == RunStatus.FAILED:
            try:
                await handle.result()
            except Exception as err:  # the failure is what we report
                cause = error_of(getattr(err, "cause", err) or err)
                kind = getattr(cause, "error_type", None) or type(cause).__qualname__
                error = json.dumps({"type": kind, "message": str(cause)})
        return _record(run_id, desc, memo, status, output, error)

    async def _info(self, run_id: str, *, outcome: bool = True) -> RunInfo:
        return RunInfo(await self._call(self._describe(run_id, outcome)))

    async def get(self, run_id: str) -> RunInfo:
        """The run ``run_id``, its output or error included.

        Raises:
            RunNotFoundError: When Temporal has no such workflow.
        """
        return await self._info(run_id)

    async def list_runs(
        self, status: RunStatus | str | None = None, *, limit: int = 1000
    ) -> list[RunInfo]:
        """The pymai runs known to Temporal's visibility store, newest first."""
        st = RunStatus(status.upper()) if isinstance(status, str) else status
        return await self._call(self._list(st, limit))  # type: ignore[no-any-return]

    async def _list(self, status: RunStatus | None, limit: int) -> list[RunInfo]:
        query = f"WorkflowType = '{WORKFLOW}'"
        found: list[RunInfo] = []
        async for wf in self.client.list_workflows(query, limit=None if status else limit):
            st = _STATUS.get(int(wf.status or 1), RunStatus.RUNNING)
            if status is not None and st != status:
                continue
            found.append(RunInfo(_record(wf.id, wf, await wf.memo(), st, None, None)))
            if len(found) >= limit:
                break
        return found

    async def steps(self, run_id: str) -> list[StepInfo]:
        """The run's completed steps, in step order, with inputs, outputs and timings.

        The steps are the run's completed activities and the module calls their bodies made
        (``1.2.1``, ...), as the durable runtime records them.
        """
        records = await self._call(self._steps(run_id))
        return [StepInfo(r) for r in records]

    async def trace(self, run_id: str) -> Any:
        """The run's trace (a :class:`~mai.TraceHandle`) rebuilt from its Temporal history.

        As on the durable runtime: each completed step is a span (the activities, and the
        module calls their bodies made, as children); composites, which run as workflow code,
        are spans named from the workflow's plan (when this process can import the workflow)
        that span their children.

        Raises:
            RunNotFoundError: When Temporal has no such workflow.
        """
        from mai.core.durable import plan_for, trace_of_run  # noqa: PLC0415

        record = await self._call(self._describe(run_id, True))
        steps = await self._call(self._steps(run_id))
        module = self._workflows.get(run_id)
        if module is None and record.ref:
            with contextlib.suppress(Exception):  # not importable here: composites go unnamed
                module = resolve_module_ref(record.ref)
        if module is not None:
            record = dataclasses.replace(record, plan=plan_for(module)[1])
        return trace_of_run(record, steps)

    async def _steps(self, run_id: str) -> list[StepRecord]:
        handle = self.client.get_workflow_handle(run_id)
        history = await handle.fetch_history()
        convert = self.client.data_converter
        scheduled: dict[int, Any] = {}
        started: dict[int, Any] = {}
        out: list[StepRecord] = []
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == ACTIVITY:
                    (request,) = await convert.decode(attrs.input.payloads)
                    scheduled[event.event_id] = (attrs.activity_id, request, event.event_time)
            elif event.HasField("activity_task_started_event_attributes"):
                attrs = event.activity_task_started_event_attributes
                started[attrs.scheduled_event_id] = attrs
            elif event.HasField("activity_task_completed_event_attributes"):
                attrs = event.activity_task_completed_event_attributes
                info = scheduled.get(attrs.scheduled_event_id)
                if info is None:
                    continue
                _aid, request, at = info
                (result,) = await convert.decode(attrs.result.payloads)
                start = started.get(attrs.scheduled_event_id)
                worker = start.identity if start is not None else None
                nested = result.get("steps", []) if isinstance(result, dict) else []
                out.append(
                    StepRecord(
                        run_id=run_id,
                        step_id=request["step_id"],
                        name=request.get("name", ""),
                        kind="call",
                        input=request["input"],
                        output=result["output"] if isinstance(result, dict) else result,
                        started_at=at.ToDatetime(dt.UTC).timestamp(),
                        finished_at=event.event_time.ToDatetime(dt.UTC).timestamp(),
                        attempts=int(request.get("retry_count", 0)) + 1,
                        worker=worker,
                    )
                )
                out.extend(
                    StepRecord(run_id=run_id, kind="call", worker=worker, **n) for n in nested
                )
        return sorted(out, key=lambda s: tuple(int(p) for p in s.step_id.split(".")))

    async def event_history(self, run_id: str) -> Any:
        """The run's Temporal event history (a ``temporalio.client.WorkflowHistory``).

        What :meth:`replay` and Temporal's own tools take; :meth:`history` means what it means
        on the durable runtime (the outcomes of earlier attempts).
        """
        return await self._call(self.client.get_workflow_handle(run_id).fetch_history())

    async def history(self, run_id: str) -> list[dict[str, Any]]:
        """The outcomes of the run's earlier attempts (before each :meth:`retry`), oldest first.

        As on the durable runtime (:meth:`mai.Runtime.history`): each item has ``status``,
        ``output``, ``error`` (decoded) and ``finished_at``. On Temporal the earlier attempts
        are the earlier executions of the run's workflow id (a :meth:`retry`, or a
        ``temporal workflow reset``, starts a new execution of the same id).

        Raises:
            RunNotFoundError: When Temporal has no such workflow.
        """
        return await self._call(self._history(run_id))  # type: ignore[no-any-return]

    async def _history(self, run_id: str) -> list[dict[str, Any]]:
        from temporalio.client import WorkflowFailureError  # noqa: PLC0415
        from temporalio.exceptions import CancelledError  # noqa: PLC0415

        await self._describe(run_id, False)  # raises when there is no such run
        runs = [wf async for wf in self.client.list_workflows(f"WorkflowId = '{_quoted(run_id)}'")]
        runs.sort(key=lambda wf: wf.start_time)
        out: list[dict[str, Any]] = []
        for wf in runs[:-1]:  # every execution before the current one
            status = _STATUS.get(int(wf.status or 1), RunStatus.RUNNING)
            output: Any = None
            error: Any = None
            handle = self.client.get_workflow_handle(run_id, run_id=wf.run_id)
            try:
                output = loads(await handle.result(follow_runs=False))
            except WorkflowFailureError as err:
                cause = err.cause if isinstance(err.cause, CancelledError) else error_of(err.cause)
                kind = getattr(cause, "error_type", None) or type(cause).__qualname__
                error = {"type": kind, "message": str(cause)}
            out.append(
                {
                    "status": status.value,
                    "output": output,
                    "error": error,
                    "finished_at": wf.close_time.timestamp() if wf.close_time else None,
                }
            )
        return out

    async def retry(self, run_id: str) -> TemporalRunHandle:
        """Run a FAILED run again under its id, keeping its completed steps (they replay).

        As :meth:`mai.Runtime.retry`: the failed outcome is kept in :meth:`history`. On
        Temporal this resets the workflow to the workflow task that scheduled its first failed
        step: a new execution of the same workflow id that keeps (replays) every step completed
        before that task, and runs that step and the later ones again. A run that failed
        without a failed step (in its composites' own code) runs again from the start.

        Raises:
            RunNotFoundError: When Temporal has no such workflow.
            RunNotRetryableError: When the run is not FAILED.
        """
        await self._call(self._retry(run_id))
        return TemporalRunHandle(self, run_id, self._workflows.get(run_id))

    async def _retry(self, run_id: str) -> None:
        from temporalio.api.common.v1 import WorkflowExecution  # noqa: PLC0415
        from temporalio.api.enums.v1 import EventType  # noqa: PLC0415
        from temporalio.api.workflowservice.v1 import (  # noqa: PLC0415
            ResetWorkflowExecutionRequest,
        )

        from mai.core.durable import RunNotRetryableError  # noqa: PLC0415

        record = await self._describe(run_id, False)
        if record.status != RunStatus.FAILED:
            raise RunNotRetryableError(
                f"run {run_id!r} is {record.status.value}; only a FAILED run can be retried",
                run_id=run_id,
                status=record.status.value,
            )
        handle = self.client.get_workflow_handle(run_id)
        history = await handle.fetch_history()
        completed: list[int] = []  # workflow tasks completed, in order
        failed_step: int | None = None  # the event scheduling the first failed activity
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                completed.append(e.event_id)
            elif failed_step is None and e.HasField("activity_task_failed_event_attributes"):
                failed_step = e.activity_task_failed_event_attributes.scheduled_event_id
            elif failed_step is None and e.HasField("activity_task_timed_out_event_attributes"):
                failed_step = e.activity_task_timed_out_event_attributes.scheduled_event_id
        # Back to the workflow task that scheduled the first failed step: what completed before
        # it is kept and replays; that step and what came after run again. A failure of the
        # workflow code itself (no failed step) runs again from the start.
        before = [c for c in completed if failed_step is not None and c < failed_step]
        point = before[-1] if before else completed[0]
        await self.client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=self.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=run_id, run_id=history.run_id),
                reason="mai retry",
                workflow_task_finish_event_id=point,
                request_id=uuid.uuid4().hex,
            )
        )

    async def replay(self, history: Any, modules: Iterable[str] = ()) -> None:
        """Replay a recorded history with the current code; raise when it diverges.

        Raises:
            Exception: Temporal's non-determinism error when the code no longer produces the
                recorded commands.
        """
        await self._call(make_replayer(modules).replay_workflow(history))

    # -- control ---------------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> None:
        """Request the run's cancellation (Temporal workflow cancellation)."""
        await self._call(self.client.get_workflow_handle(run_id).cancel())

    async def send(self, run_id: str, topic: str, payload: Any = None) -> None:
        """Send a message to the run (the ``mai.send`` signal) for ``mai.wait_for(topic)``."""
        text = dumps(payload, what=f"the payload sent to run {run_id!r}")
        await self._call(self.client.get_workflow_handle(run_id).signal(SIGNAL, args=[topic, text]))

    # -- serving ---------------------------------------------------------------------------------

    def serve(
        self,
        app: str,
        queues: Iterable[str] = (),
        concurrency: int = 100,
        name: str | None = None,  # noqa: ARG002 - the CLI's signature
    ) -> int:
        """Serve runs and steps on the task queues until SIGINT/SIGTERM (``mai worker``).

        Args:
            app: The module (``pkg.mod``) that defines the workflows; it is imported first.
            queues: Task queues (default: the URL's).
            concurrency: Activities (leaf steps) run at once by this worker.
            name: Unused (Temporal names workers by host and process).

        Returns:
            The exit code (0 after a signal).
        """
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        importlib.import_module(app)
        wanted = [q for q in queues if q != "default"] or [self.options.task_queue]

        async def main() -> int:
            client = await connect(self.options)
            workers = [
                make_worker(
                    client, self.options, task_queue=q, modules=[app], concurrency=concurrency
                )
                for q in wanted
            ]
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            tasks = [loop.create_task(w.run()) for w in workers]
            print(f"mai worker: serving {', '.join(wanted)} on {self.options!r}", flush=True)  # noqa: T201
            waiter = loop.create_task(stop.wait())
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for w in workers:
                await w.shutdown()
            for q in wanted:
                _release(q)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            return 0

        return asyncio.run(main())


def _quoted(text: str) -> str:
    """``text`` for a single-quoted string in a Temporal visibility query."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _release(task_queue: str) -> None:
    """Forget the settings of this process's worker on ``task_queue`` (its threads go)."""
    settings = WORKERS.pop(task_queue, None)
    if settings is not None:
        settings.close()


def _record(
    run_id: str, wf: Any, memo: dict[str, Any], status: RunStatus, output: Any, error: Any
) -> RunRecord:
    start = getattr(wf, "start_time", None)
    last = getattr(wf, "close_time", None) or start
    return RunRecord(
        run_id=run_id,
        workflow=str(memo.get("workflow", WORKFLOW)),
        ref=memo.get("ref"),
        plan_hash="",
        plan="",
        input=str(memo.get("input") or "null"),
        status=status,
        output=output,
        error=error,
        deadline=memo.get("deadline"),
        created_at=start.timestamp() if start else 0.0,
        updated_at=last.timestamp() if last is not None else 0.0,
        attempts=1,
        owner=None,
        queue=str(getattr(wf, "task_queue", "") or ""),
    )


def open_runtime(url: str | None = None, **options: Any) -> TemporalRuntime:
    """The ``mai.stores`` entry point: ``mai.Runtime("temporal://...")`` returns this."""
    return TemporalRuntime(url, **options)


open_runtime.remote_executor = True  # type: ignore[attr-defined]
