"""One trace per run across the workflow and its activities (OpenTelemetry and pymai's own).

OpenTelemetry: the run's W3C trace context is taken where the run is started (the caller's
current span, or a made-up trace id when there is none) and travels in the workflow's request;
the workflow's top-level call continues it. Each leaf call's workflow-side span (the step, all
attempts) is injected into the activity's request, and the activity attaches it before running
the body, so the body's span (one attempt) and its child module calls are its children.

Workflow code is replayed (a worker took over, or the run left the worker's cache): spans made
in the workflow therefore use span ids drawn from a generator seeded by the Temporal run (the
same ids on every replay, so an activity's recorded parent stays valid), start at workflow
time while replaying, and are not ended (exported) while replaying. :class:`ReplaySafeProvider`
wraps any OpenTelemetry SDK tracer provider to do that; outside workflow code it changes
nothing.

pymai's own trace (:meth:`TemporalRuntime.trace`) is rebuilt from the run's history: each
completed ``mai.step`` activity is a step, and an activity whose body made module calls returns
them with its output (:class:`NestedSteps`), as the durable runtime records them.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span
from temporalio import workflow

from mai.core.executor import dumps
from mai.core.tracing import inject_trace_context

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mai._seam import Call

_RANDOM = "_mai_otel_ids"
_wrapped: dict[int, tuple[Any, ReplaySafeProvider]] = {}


def configured_provider() -> Any:
    """The application's global OpenTelemetry tracer provider, or ``None`` (none configured)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    provider = api.get_tracer_provider()
    if isinstance(provider, (api.ProxyTracerProvider, api.NoOpTracerProvider)):
        return None
    return provider


def replay_safe(provider: Any) -> ReplaySafeProvider:
    """``provider`` wrapped for workflow code (one wrapper per provider, so tracers are cached)."""
    if isinstance(provider, ReplaySafeProvider):
        return provider
    found = _wrapped.get(id(provider))
    if found is None or found[0] is not provider:
        found = (provider, ReplaySafeProvider(provider))
        _wrapped[id(provider)] = found
    return found[1]


def trace_context() -> dict[str, str]:
    """The caller's W3C trace context, or a new trace id when there is no current span."""
    carrier: dict[str, str] = {}
    if sys.modules.get("opentelemetry.trace") is not None:
        carrier = {k: v for k, v in inject_trace_context({}).items() if isinstance(v, str)}
    if "traceparent" not in carrier:  # every span of the run still lands in one trace
        carrier = {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"}
    return carrier


def with_current_span(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with the current OpenTelemetry span (the step's) as its ``traceparent``."""
    if sys.modules.get("opentelemetry.trace") is None:
        return metadata
    return inject_trace_context(metadata)


def _in_workflow_code() -> bool:
    return workflow.in_workflow() and not workflow.unsafe.is_read_only()


def _replaying() -> bool:
    return workflow.in_workflow() and workflow.unsafe.is_replaying_history_events()


class _WorkflowIds:
    """Span and trace ids from a generator seeded by the Temporal run, in workflow code."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @staticmethod
    def _random() -> random.Random | None:
        if not _in_workflow_code():
            return None
        instance = workflow.instance()
        rng: random.Random | None = getattr(instance, _RANDOM, None)
        if rng is None:
            rng = random.Random(f"{workflow.info().run_id}/otel")  # noqa: S311 - ids, not secrets
            setattr(instance, _RANDOM, rng)
        return rng

    def generate_span_id(self) -> int:
        """A 64-bit span id (replays identically in workflow code)."""
        rng = self._random()
        return self.inner.generate_span_id() if rng is None else rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        """A 128-bit trace id (replays identically in workflow code)."""
        rng = self._random()
        return self.inner.generate_trace_id() if rng is None else rng.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        """Whether trace ids are random (W3C flag)."""
        return bool(getattr(self.inner, "is_trace_id_random", lambda: True)())


class _Span(Span):
    """A span that is not ended (not exported) while its workflow code is being replayed."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)

    def end(self, end_time: int | None = None) -> None:
        """End the span, unless this is a replay of workflow code that already ended it."""
        if _replaying():
            return
        self._span.end(end_time=end_time)

    def get_span_context(self) -> Any:
        """The wrapped span's context."""
        return self._span.get_span_context()

    def set_attributes(self, attributes: Any) -> None:
        """Set attributes on the wrapped span."""
        self._span.set_attributes(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        """Set an attribute on the wrapped span."""
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        """Add an event to the wrapped span."""
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: Any, attributes: Any = None) -> None:
        """Add a link to the wrapped span."""
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        """Rename the wrapped span."""
        self._span.update_name(name)

    def is_recording(self) -> bool:
        """Whether the wrapped span records."""
        return bool(self._span.is_recording())

    def set_status(self, status: Any, description: str | None = None) -> None:
        """Set the wrapped span's status."""
        self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record an exception on the wrapped span."""
        self._span.record_exception(exception, attributes, timestamp, escaped)


class _Tracer:
    """A tracer whose spans in workflow code replay identically."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._workflow_tracer = tracer
        if hasattr(tracer, "id_generator"):  # the OpenTelemetry SDK's tracer
            self._workflow_tracer = copy.copy(tracer)
            self._workflow_tracer.id_generator = _WorkflowIds(tracer.id_generator)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracer, name)

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Start a span; in workflow code with replay-stable ids and workflow time on replay."""
        if not workflow.in_workflow():
            return self._tracer.start_span(name, context, *args, **kwargs)
        if _replaying() and kwargs.get("start_time") is None and len(args) < 3:
            kwargs["start_time"] = workflow.time_ns()
        return _Span(self._workflow_tracer.start_span(name, context, *args, **kwargs))


class ReplaySafeProvider:
    """An OpenTelemetry tracer provider whose spans in workflow code survive replays.

    In workflow code, span ids come from a generator seeded by the Temporal run (so a replay
    makes the same ids and an activity's parent stays valid), a span started while replaying
    starts at workflow time, and spans are not ended while replaying (they were exported when
    the code first ran). Elsewhere (activities, clients) the wrapped provider works unchanged.

    Args:
        provider: An OpenTelemetry tracer provider (the SDK's, for replay-stable ids).
    """

    def __init__(self, provider: Any) -> None:
        """Wrap ``provider``."""
        self.provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    def get_tracer(self, name: str, *args: Any, **kwargs: Any) -> _Tracer:
        """A tracer of the wrapped provider, replay-safe in workflow code."""
        return _Tracer(self.provider.get_tracer(name, *args, **kwargs))


class NestedSteps:
    """An interceptor recording the module calls a leaf body makes (its child steps).

    The durable runtime records them as steps of the run; on Temporal they happen inside one
    activity, which returns them with its output so the run's steps and trace include them.
    """

    def __init__(self, step_id: str) -> None:
        """Record the calls below ``step_id``."""
        self.step_id = step_id
        self.records: list[dict[str, Any]] = []

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Run the call; record it when it is a child step that finished."""
        sid = call.step_id
        if sid == self.step_id or not call.leaf:
            return await proceed()
        started = time.time()
        result = await proceed()
        self.records.append(
            {
                "step_id": sid,
                "name": call.name,
                "input": _text({"args": call.args, "kwargs": call.kwargs}),
                "output": _text(result) or "null",
                "started_at": started,
                "finished_at": time.time(),
                "attempts": call.frame.attempts,
            }
        )
        return result


def _text(value: Any) -> str | None:
    try:
        return dumps(value, what="a recorded value")
    except Exception:
        return None
