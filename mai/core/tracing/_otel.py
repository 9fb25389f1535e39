"""OpenTelemetry: one span per module call, through the OpenTelemetry API only.

The library never configures a tracer provider. A run hook checks, once per top-level call,
whether the application configured one (or :func:`instrument` names one for the block); when
none is configured the hook returns ``None`` without importing anything, and the kernel's hot
path is untouched.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from mai._context import current_frame
from mai._seam import add_run_hook

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping

    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Tracer, TracerProvider

    from mai._seam import Call, Interceptor

#: W3C Trace Context keys carried in :attr:`mai.Context.metadata`.
TRACE_KEYS = ("traceparent", "tracestate")
_SCOPE = "mai"

_provider: ContextVar[TracerProvider | None] = ContextVar("mai.otel.provider", default=None)

#: A name, attributes and kind (``"internal"`` or ``"client"``) for the span of the next module
#: call in this task, set by a caller that knows more about the call than the module does (an
#: agent names a tool call ``execute_tool {name}`` and a model request ``chat {model}``, a
#: client span). The interceptor consumes it: nested calls never see it.
span_hint: ContextVar[tuple[str, Mapping[str, Any], str] | None] = ContextVar(
    "mai.otel.span_hint", default=None
)
_cache: tuple[Any, OtelInterceptor] | None = None


class OtelInterceptor:
    """Emits one OpenTelemetry span per module call.

    Span name: the module name. Attributes: ``mai.module``, ``mai.step_id``,
    ``mai.parent_step_id`` (nested calls), ``mai.run_id`` (when the run has one),
    ``mai.retry_count``, ``mai.payload.input_bytes``, ``mai.payload.output_bytes`` (on success),
    ``mai.payload.estimated`` (when a size came from ``repr``), ``mai.deadline.remaining_s``
    (when a deadline is in force) and ``mai.status`` (``ok``, ``error``, ``cancelled``,
    ``timed_out``). Errors and timeouts set the span status to ERROR and record the exception;
    a cancellation only sets ``mai.status``.

    The span is made current in OpenTelemetry's context around the call, so spans the body
    starts (in its task, in a worker thread, in Parallel branches) are its children, and it is
    also exposed as :attr:`mai.Context.span`. A top-level call whose Context metadata carries a
    W3C ``traceparent`` continues that trace.
    """

    __slots__ = ("_context", "_s", "_trace", "_tracer")

    def __init__(self, tracer: Tracer) -> None:
        """Emit spans through ``tracer``."""
        from opentelemetry import context, trace  # noqa: PLC0415 - only once an SDK is on

        from . import _span  # noqa: PLC0415 - span helpers load with the first interceptor

        self._tracer = tracer
        self._context = context
        self._trace = trace
        self._s = _span

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` inside its span."""
        trace, s = self._trace, self._s
        frame = call.frame
        run = frame.run
        backend = run.backend  # type: ignore[union-attr]
        now = backend.current_time()
        deadline = s.effective_deadline(frame.deadline, backend)
        attributes: dict[str, Any] = {"mai.module": call.name, "mai.step_id": call.step_id}
        parent_step = call.parent_step_id
        parent: OtelContext | None = None
        if parent_step is not None:
            attributes["mai.parent_step_id"] = parent_step
        elif "traceparent" in frame.metadata:
            remote = extract_trace_context(frame.metadata)
            if trace.get_current_span(remote).get_span_context().is_valid:
                parent = remote
        if run.run_id is not None:  # type: ignore[union-attr]
            attributes["mai.run_id"] = run.run_id  # type: ignore[union-attr]
        if deadline != math.inf:
            attributes["mai.deadline.remaining_s"] = max(deadline - now, 0.0)
        in_bytes, exact = s.arguments_size(call.args, call.kwargs)
        attributes["mai.payload.input_bytes"] = in_bytes
        span_name = call.name
        kind = trace.SpanKind.INTERNAL
        hint = span_hint.get()
        hint_token = None
        if hint is not None:
            span_name = hint[0]
            attributes.update(hint[1])
            if hint[2] == "client":
                kind = trace.SpanKind.CLIENT
            hint_token = span_hint.set(None)
        span = self._tracer.start_span(
            span_name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        token = self._context.attach(trace.set_span_in_context(span))
        frame.span = span
        end: dict[str, Any] = {}
        try:
            result = await proceed()
        except BaseException as exc:
            status = s.classify(exc, backend, deadline, backend.current_time())
            end["mai.status"] = status
            if status != "cancelled":
                kind, message = s.error_of(exc, status)
                if kind == "Cancelled":  # cut by a deadline: never record a nursery's raw group
                    text = f"Cancelled: {message}"
                else:
                    span.record_exception(exc)
                    text = f"{type(exc).__name__}: {exc}"
                span.set_status(trace.Status(trace.StatusCode.ERROR, text))
            raise
        else:
            out_bytes, out_exact = s.size_of(result)
            exact = exact and out_exact
            end["mai.payload.output_bytes"] = out_bytes
            end["mai.status"] = "ok"
            extra = s.result_attributes(result)
            if extra and not _replayed(span):  # a replayed step spent nothing now
                end.update(extra)
            return result
        finally:
            if not exact:
                end["mai.payload.estimated"] = True
            end["mai.retry_count"] = frame.attempts - 1
            run_id = run.run_id  # type: ignore[union-attr]
            if run_id is not None and "mai.run_id" not in attributes:
                end["mai.run_id"] = run_id  # an inner interceptor (a durable run) gave the id
            span.set_attributes(end)
            self._context.detach(token)
            if hint_token is not None:
                span_hint.reset(hint_token)
            span.end()


def _replayed(span: Any) -> bool:
    attributes = getattr(span, "attributes", None)
    return bool(attributes and attributes.get("mai.replayed"))


def _configured_provider() -> TracerProvider | None:
    """The application's tracer provider, or ``None`` when only the API's default is there."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:  # nobody imported OpenTelemetry: no provider can be configured
        return None
    provider: TracerProvider = api.get_tracer_provider()
    if isinstance(provider, (api.ProxyTracerProvider, api.NoOpTracerProvider)):
        return None
    return provider


def _for(provider: TracerProvider) -> OtelInterceptor:
    global _cache  # noqa: PLW0603 - one interceptor per provider, rebuilt when it changes
    cached = _cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    from mai import __version__  # noqa: PLC0415 - the package imports this module

    interceptor = OtelInterceptor(provider.get_tracer(_SCOPE, __version__))
    _cache = (provider, interceptor)
    return interceptor


def _hook() -> Interceptor | None:
    """Run hook: the OpenTelemetry interceptor when a tracer provider is configured."""
    provider = _provider.get()
    if provider is None:
        provider = _configured_provider()
        if provider is None:
            return None
    return _for(provider)


@contextmanager
def instrument(tracer_provider: TracerProvider) -> Iterator[None]:
    """Emit the spans of runs started inside the block through ``tracer_provider``.

    Without this, pymai uses the provider the application installed globally with
    ``opentelemetry.trace.set_tracer_provider`` (and emits nothing when there is none). Use it
    when several providers coexist, or in tests, where the global provider can be set only
    once per process::

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with mai.core.tracing.instrument(provider):
            await pipeline(x)

    Args:
        tracer_provider: An OpenTelemetry ``TracerProvider`` (normally the SDK's).
    """
    token = _provider.set(tracer_provider)
    try:
        yield
    finally:
        _provider.reset(token)


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    return TraceContextTextMapPropagator()


def inject_trace_context(metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return ``metadata`` plus the W3C ``traceparent`` (and ``tracestate``) of the current span.

    Inside a module call with OpenTelemetry on, the current span is that call's span. Put the
    result in :class:`mai.Context` metadata, or in a message to another process, so the trace
    continues there (a top-level call whose metadata carries a ``traceparent`` becomes a child
    of that span). Without a current span the metadata is returned unchanged (as a new dict).

    Args:
        metadata: The mapping to extend (default: the current :attr:`mai.Context.metadata`).

    Returns:
        A new dict; the input is not changed.
    """
    base = dict(current_frame.get().metadata if metadata is None else metadata)
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    base.update(carrier)
    return base


def extract_trace_context(metadata: Mapping[str, Any] | None = None) -> OtelContext:
    """Return the OpenTelemetry context described by W3C keys in ``metadata``.

    Pass it as ``context=`` when starting a span, or ``opentelemetry.context.attach`` it, to
    continue a trace that :func:`inject_trace_context` recorded. pymai does this by itself for
    a top-level call whose :attr:`mai.Context.metadata` has a ``traceparent``.

    Args:
        metadata: A mapping with ``traceparent`` (and optionally ``tracestate``); default: the
            current :attr:`mai.Context.metadata`.

    Returns:
        An OpenTelemetry context (an empty one when there is no valid ``traceparent``).
    """
    source = current_frame.get().metadata if metadata is None else metadata
    carrier = {k: v for k in TRACE_KEYS if isinstance(v := source.get(k), str)}
    ctx: OtelContext = _propagator().extract(carrier)
    return ctx


add_run_hook(_hook)
