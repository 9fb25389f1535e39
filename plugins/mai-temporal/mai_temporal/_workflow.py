"""The Temporal side of a run: one workflow type for every pymai workflow, one activity type.

The workflow ``mai.run`` imports the run's module (by its :func:`~mai.core.executor.module_ref`)
and calls it on Temporal's workflow event loop, where pymai's kernel runs on its anyio backend:
composites, graphs, conditions and loops are workflow code. An interceptor turns every leaf call
into the activity ``mai.step`` (activity id = step id) and hands the attempts to the kernel
(:meth:`mai._seam.Call.execute`), so the call's deadline, retries with backoff and concurrency
limit are enforced in the workflow with Temporal timers. ``mai.sleep``, ``mai.now``,
``mai.random`` and ``mai.wait_for`` map to Temporal timers, workflow time, seeded randomness and
the ``mai.send`` signal.

Three traps, handled here:

* **Cancellation livelock.** Awaiting an activity directly inside an anyio cancel scope hangs
  the workflow ("Potential deadlock detected"): the SDK's activity await holds the cancel back
  while anyio re-delivers it on every loop pass. The activity is started, awaited through
  ``asyncio.shield`` and, when the await is cancelled, its handle is cancelled.
* **Workflow task failures retried forever.** An exception that is not a Temporal failure fails
  the workflow *task*, which Temporal retries without end. Every error of the run leaves the
  workflow as a non-retryable ``ApplicationError`` carrying the original type and message.
* **Width.** Temporal refuses more than 2,000 pending activities per workflow and fails a
  workflow activation that runs longer than 2 s. Leaf calls wait for one of ``max_pending``
  slots before they do anything, and a ``Map`` wider than that runs ``max_pending`` items at a
  time (same step ids), so neither limit depends on the width of the fan-out.
* **Crashes are not retries.** A lost worker consumes a Temporal activity attempt; pymai's own
  retries are separate activities scheduled by the kernel, and each activity fails with a
  non-retryable error. Temporal's activity retry policy therefore only re-runs attempts whose
  worker died (heartbeat or start-to-close timeout), up to ``max_crashes`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import anyio
import anyio._backends._asyncio  # anyio loads it lazily; the sandbox could not later
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from mai import Context, Map, WaitTimeoutError
from mai._context import current_frame
from mai._seam import Call, durability, intercept
from mai.core.executor import (
    decode_error,
    dumps,
    encode_error,
    loads,
    module_at,
    module_ref,
    resolve_module_ref,
    run_step,
    tree_paths,
)

from ._tracing import (
    NestedSteps,
    configured_provider,
    replay_safe,
    with_current_span,
)

WORKFLOW = "mai.run"
ACTIVITY = "mai.step"
SIGNAL = "mai.send"
#: The Temporal error type of every failure pymai raises across Temporal (details: the codec).
FAILURE = "mai.Failure"
#: Extra seconds an activity's schedule-to-close gets past the run's deadline, so the kernel's own
#: deadline (a workflow timer) fires first and names the module.
_SLACK = 1.0


class WorkerSettings:
    """What a worker in this process adds to the runs and steps of its task queue.

    Attributes:
        tracer_provider: The OpenTelemetry tracer provider for spans made in this worker
            (``None``: the application's global one, if any).
        activity_runner: ``"asyncio"`` or ``"trio"``: the event loop leaf bodies run on.
        threads: Activities run at once (the Trio runner's thread pool size).
    """

    def __init__(
        self, tracer_provider: Any = None, activity_runner: str = "asyncio", threads: int = 100
    ) -> None:
        """Keep the settings."""
        self.tracer_provider = tracer_provider
        self.activity_runner = activity_runner
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        """The threads Trio runs activity bodies in (made on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mai-trio-activity")
        return self._pool

    def close(self) -> None:
        """Let the Trio runner's threads go (they finish the bodies they run)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


#: Settings of the workers of this process, by task queue (read by the workflow and activity).
WORKERS: dict[str, WorkerSettings] = {}
_NO_SETTINGS = WorkerSettings()


def _tracer_provider(task_queue: str) -> Any:
    """The replay-safe tracer provider for runs and steps on ``task_queue``, or ``None``."""
    provider = WORKERS.get(task_queue, _NO_SETTINGS).tracer_provider or configured_provider()
    return None if provider is None else replay_safe(provider)


def failure(exc: BaseException) -> ApplicationError:
    """The non-retryable Temporal failure carrying ``exc`` (type, message, attributes)."""
    data = encode_error(exc)
    short = data["type"].rpartition(":")[2]
    return ApplicationError(f"{short}: {exc}", data, type=FAILURE, non_retryable=True)


def error_of(err: BaseException) -> BaseException:
    """The original exception a Temporal failure carries, or ``err`` itself."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type == FAILURE and cause.details:
            return decode_error(cause.details[0])
        cause = cause.cause if hasattr(cause, "cause") else None
    return err


class _Steps:
    """The interceptor that turns each leaf call of a run into a ``mai.step`` activity."""

    def __init__(
        self, root: Any, ref: str, run_id: str, settings: dict[str, Any], *, traced: bool
    ) -> None:
        self.root = root
        self.traced = traced
        self.ref = ref
        self.run_id = run_id
        self.paths = tree_paths(root)
        self.heartbeat = timedelta(seconds=float(settings.get("heartbeat", 10.0)))
        self.attempt_timeout = float(settings.get("attempt_timeout", 600.0))
        self.retry = RetryPolicy(
            maximum_attempts=int(settings.get("max_crashes", 5)),
            initial_interval=timedelta(seconds=0.2),
            non_retryable_error_types=[FAILURE],
        )
        self.width = int(settings.get("max_pending", 200))
        self.pending = anyio.Semaphore(self.width)

    async def __call__(self, call: Call, proceed: Any) -> Any:
        if not call.leaf:
            module = call.module
            if isinstance(module, Map) and (module.max_items or math.inf) > self.width:
                # A wide Map runs `width` items at a time: the same step ids (item i is always
                # child i), and no workflow activation has to start thousands of tasks at once.
                narrowed = copy.copy(module)
                narrowed.max_items = self.width

                async def items(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return await narrowed.forward(*args, **kwargs)

                return await call.execute(items)
            return await proceed()

        async def body(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return await self._activity(call, args, kwargs)

        # Wait for a slot before anything else: a wide Map's waiting branches then cost next to
        # nothing, so one workflow activation stays well under Temporal's 2 s deadlock limit.
        async with self.pending:
            return await call.execute(body)

    async def _activity(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        frame = current_frame.get()  # the attempt's frame (Context.get costs more here)
        retry_count = frame.retry_count
        sid = call.step_id
        path = self.paths.get(id(call.module))
        metadata = dict(frame.metadata)
        if self.traced:  # the step's span becomes the parent of the activity's spans
            metadata = with_current_span(metadata)
        request: dict[str, Any] = {
            "workflow": self.ref,
            "path": None if path is None else list(path),
            "ref": None if path is not None else module_ref(call.module),
            "name": call.name,
            "run_id": self.run_id,
            "step_id": sid,
            "retry_count": retry_count,
            "input": dumps({"args": args, "kwargs": kwargs}, what=f"the input of step {sid}"),
            "metadata": metadata,
        }
        if request["path"] is None and request["ref"] is None:
            from mai import ConfigError  # noqa: PLC0415

            raise ConfigError(
                f"module {call.name!r} (step {sid}) cannot run as a Temporal activity: it is not "
                "in the workflow's tree of children and has no importable reference; define it "
                "at module level",
                module_name=call.name,
            )
        remaining = frame.deadline - asyncio.get_running_loop().time()
        schedule_to_close = None
        if remaining != math.inf:
            # The deadline is the workflow's to enforce (a timer, which names the module whose
            # deadline it is and cancels this activity); the body's own copy is a safety net
            # that fires only if that cancellation never reaches the activity.
            request["timeout"] = max(remaining, 0.001) + _SLACK / 2
            schedule_to_close = timedelta(seconds=max(remaining, 0.001) + _SLACK)
        aid = sid if retry_count == 0 else f"{sid}@{retry_count}"
        handle = workflow.start_activity(
            ACTIVITY,
            request,
            activity_id=aid,
            schedule_to_close_timeout=schedule_to_close,
            start_to_close_timeout=timedelta(seconds=self.attempt_timeout),
            heartbeat_timeout=self.heartbeat,
            retry_policy=self.retry,
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
        )
        try:
            result = await asyncio.shield(handle)
        except asyncio.CancelledError:
            handle.cancel()
            raise
        except ActivityError as err:
            raise error_of(err) from None
        return loads(result["output"] if isinstance(result, dict) else result)


class _Durable:
    """``mai.sleep/now/random/wait_for`` on Temporal: timers, workflow time, seeds, signals."""

    def __init__(self, run: MaiRun, run_id: str) -> None:
        self.run = run
        self.run_id = run_id

    @staticmethod
    def _child(frame: Any) -> str:
        index = frame.reserve(1) + 1
        return f"{frame.step_id}.{index}" if frame.step_id else str(index)

    async def sleep(self, frame: Any, seconds: float) -> None:
        """A Temporal timer."""
        self._child(frame)
        await asyncio.sleep(seconds)

    def now(self, frame: Any) -> float:
        """Workflow time (replays identically)."""
        self._child(frame)
        return workflow.now().timestamp()

    def seed(self, frame: Any) -> str:
        """A seed from the run id and the position in the run."""
        return f"{self.run_id}/{self._child(frame)}"

    async def wait_for(self, frame: Any, topic: str, timeout: float | None) -> Any:  # noqa: ASYNC109 - a durable timeout
        """Wait for a ``mai.send`` signal on ``topic`` (one sent earlier counts too)."""
        sid = self._child(frame)
        inbox = self.run.inbox
        try:
            await workflow.wait_condition(lambda: bool(inbox.get(topic)), timeout=timeout)
        except TimeoutError:
            raise WaitTimeoutError(
                f"mai.wait_for({topic!r}) at step {sid} timed out", step_id=sid
            ) from None
        return loads(inbox[topic].pop(0))


@workflow.defn(name=WORKFLOW)
class MaiRun:
    """Every pymai workflow, on Temporal: the request names the module and carries the input."""

    def __init__(self) -> None:
        """Start with an empty inbox."""
        self.inbox: dict[str, list[str]] = {}

    @workflow.signal(name=SIGNAL)
    def send(self, topic: str, payload: str) -> None:
        """A message for ``mai.wait_for(topic)``."""
        self.inbox.setdefault(topic, []).append(payload)

    @workflow.run
    async def run(self, request: dict[str, Any]) -> str:
        """Run the module; return its result as JSON, or fail with the codec's failure."""
        info = workflow.info()
        run_id = info.workflow_id
        try:
            module = resolve_module_ref(request["ref"])
            data = loads(request["input"])
            provider = _tracer_provider(info.task_queue)
            settings = request.get("settings", {})
            steps = _Steps(module, request["ref"], run_id, settings, traced=provider is not None)
            token = durability.set(_Durable(self, run_id))
            try:
                with contextlib.ExitStack() as stack:
                    if provider is not None:
                        from mai.core.tracing import instrument  # noqa: PLC0415

                        stack.enter_context(instrument(provider))
                    stack.enter_context(intercept(steps))
                    # The run continues the trace of whoever started it (or one made up then).
                    trace = request.get("trace_context")
                    if trace:
                        ctx = Context.set(metadata=trace)
                        stack.callback(Context.reset, ctx)
                    deadline_at = request.get("deadline")
                    if deadline_at is not None:
                        left = float(deadline_at) - workflow.now().timestamp()
                        loop_now = asyncio.get_running_loop().time()
                        ctx = Context.set(deadline=loop_now + max(left, 0.0))
                        stack.callback(Context.reset, ctx)
                    result = await module(*data["args"], **data["kwargs"])
            finally:
                durability.reset(token)
            return dumps(result, what=f"the result of run {run_id!r}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError | ApplicationError):
                raise
            raise failure(exc) from None


# -- the activity ---------------------------------------------------------------------------------

_resolved: dict[tuple[str, tuple[int, ...] | None, str | None], Any] = {}


def _module_for(request: dict[str, Any]) -> Any:
    path = request.get("path")
    key = (request["workflow"], None if path is None else tuple(path), request.get("ref"))
    found = _resolved.get(key)
    if found is None:
        if path is not None:
            found = module_at(resolve_module_ref(request["workflow"]), path)
        else:
            found = resolve_module_ref(request["ref"])
        _resolved[key] = found
    return found


@activity.defn(name=ACTIVITY)
async def mai_step(request: dict[str, Any]) -> str | dict[str, Any]:
    """Run one attempt of one leaf step (heartbeating, so a lost worker is noticed)."""
    info = activity.info()
    heartbeat = info.heartbeat_timeout
    beat = heartbeat.total_seconds() / 3 if heartbeat else None
    sid = request["step_id"]
    beating = asyncio.get_running_loop().create_task(_heartbeat(beat)) if beat else None
    settings = WORKERS.get(info.task_queue, _NO_SETTINGS)
    try:
        module = _module_for(request)
        data = loads(request["input"])
        nested = NestedSteps(sid)

        async def body() -> Any:
            return await run_step(
                module,
                data["args"],
                data["kwargs"],
                run_id=request["run_id"],
                step_id=sid,
                retry_count=int(request.get("retry_count", 0)),
                timeout=request.get("timeout"),
                metadata=request.get("metadata"),
            )

        with contextlib.ExitStack() as stack:
            _trace_activity(stack, request, info)
            stack.enter_context(intercept(nested))
            if settings.activity_runner == "trio":
                result = await _on_trio(body, settings.pool())
            else:
                result = await body()
        text = dumps(result, what=f"the output of step {sid} ({request.get('name')})")
    except Exception as exc:
        raise failure(exc) from None
    finally:
        if beating is not None:
            beating.cancel()
    # The body's own module calls travel back with the output: they are steps of the run too.
    return {"output": text, "steps": nested.records} if nested.records else text


async def _on_trio(body: Any, pool: ThreadPoolExecutor) -> Any:
    """Run ``body()`` under ``trio.run`` in a thread of ``pool``; a cancel here cancels it there.

    The activity's context (tracing, interceptors) goes along; heartbeats stay on the worker's
    loop. When Temporal cancels the activity, the Trio body's cancel scope is cancelled through
    its Trio token and the activity waits for the body to unwind before it reports the cancel.
    """
    import trio  # noqa: PLC0415 - only this runner needs it

    lock = threading.Lock()
    state: dict[str, Any] = {}

    async def main() -> Any:
        with trio.CancelScope() as scope:
            with lock:
                state["scope"] = (trio.lowlevel.current_trio_token(), scope)
                if state.get("cancelled"):
                    scope.cancel()
            return ("ok", await body())
        return ("cancelled", None)

    context = contextvars.copy_context()

    def in_thread() -> Any:
        return context.run(trio.run, main)

    future = asyncio.get_running_loop().run_in_executor(pool, in_thread)
    try:
        outcome, value = await asyncio.shield(future)
    except asyncio.CancelledError:
        with lock:
            state["cancelled"] = True
            found = state.get("scope")
        if found is not None:
            token, scope = found
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        with contextlib.suppress(BaseException):  # the cancel is what we report
            await future
        raise
    if outcome == "cancelled":  # cancelled from inside (a deadline the body did not catch)
        raise asyncio.CancelledError
    return value


def _trace_activity(stack: contextlib.ExitStack, request: dict[str, Any], info: Any) -> None:
    """Make the step's workflow-side span the parent of this attempt's spans (when traced)."""
    provider = _tracer_provider(info.task_queue)
    if provider is None:
        return
    from opentelemetry import context  # noqa: PLC0415

    from mai.core.tracing import extract_trace_context, instrument  # noqa: PLC0415
    from mai.core.tracing._otel import span_hint  # noqa: PLC0415

    stack.enter_context(instrument(provider))
    metadata = request.get("metadata") or {}
    if "traceparent" in metadata:
        token = context.attach(extract_trace_context(metadata))
        stack.callback(context.detach, token)
    attributes = {
        "mai.temporal.activity_id": info.activity_id,
        "mai.temporal.attempt": info.attempt,
    }
    hint = span_hint.set((str(request.get("name") or ""), attributes, "internal"))
    stack.callback(span_hint.reset, hint)


async def _heartbeat(every: float) -> None:
    while True:  # the first beat after a third of the timeout: short steps never send one
        await asyncio.sleep(every)
        activity.heartbeat()
