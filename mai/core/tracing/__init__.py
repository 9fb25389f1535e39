"""Tracing: :class:`TraceHandle` trees of spans, and OpenTelemetry spans.

* :func:`trace` runs a top-level call and returns ``(result, TraceHandle)``.
* The OpenTelemetry interceptor is installed by a run hook whenever the application configured
  a tracer provider (or :func:`instrument` names one); otherwise it costs one check per run.
* :func:`inject_trace_context` / :func:`extract_trace_context` carry the W3C trace context in
  :class:`mai.Context` metadata, so a span tree can continue in another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mai.core._lazy import lazy_exports

if TYPE_CHECKING:
    from ._handle import TraceHandle as TraceHandle
    from ._otel import OtelInterceptor as OtelInterceptor
    from ._otel import extract_trace_context as extract_trace_context
    from ._otel import inject_trace_context as inject_trace_context
    from ._otel import instrument as instrument
    from ._recorder import Recorder as Recorder
    from ._recorder import trace as trace
    from ._span import Span as Span
    from ._span import SpanStatus as SpanStatus

# Loaded on first use: ``import mai`` needs only the OpenTelemetry run hook (``_otel``), not the
# trace handles and their renderer.
_LAZY: dict[str, str] = {
    "TraceHandle": "._handle",
    "OtelInterceptor": "._otel",
    "extract_trace_context": "._otel",
    "inject_trace_context": "._otel",
    "instrument": "._otel",
    "Recorder": "._recorder",
    "trace": "._recorder",
    "Span": "._span",
    "SpanStatus": "._span",
}

__all__ = [
    "OtelInterceptor",
    "Recorder",
    "Span",
    "SpanStatus",
    "TraceHandle",
    "extract_trace_context",
    "inject_trace_context",
    "instrument",
    "trace",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
