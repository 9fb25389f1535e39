"""Helpers for testing code built with pymai: span capture, a recording tracer, virtual time.

Nothing here is imported by ``import mai``; import ``mai.testing`` in tests.

* :func:`capture_spans` records a :class:`~mai.TraceHandle` for every run started in a block;
  :func:`capture_otel_spans` collects the OpenTelemetry spans instead.
* :class:`RecordingTracer` is an interceptor that records each call (arguments, result, error).
* :func:`run_virtual`, :func:`stopwatch`, :func:`assert_elapsed` and :func:`expect_deadline`
  make deadline and retry tests exact on Trio's virtual clock (pytest-trio's
  ``autojump_clock`` fixture, or :func:`run_virtual` outside pytest).
* :func:`virtual_runtime` is a durable runtime on virtual time (a week-long ``mai.sleep`` or a
  millisecond run deadline tested at once); :class:`VirtualClock` is its clock.
* :class:`ScriptedModel` answers agents from a script (canned replies or a function), records
  the requests it received and streams in chunks; :func:`tool_call` writes a tool call in a
  script; :func:`block_model_requests` makes any real model request fail inside a block.
* :class:`StoreConformance` / :func:`check_store`: the suite every durable store must pass
  (the memory and SQLite stores do; a store plugin runs it against itself).
* :func:`check_paged_store`: the check for a store that also pages runs (``page_runs``).
"""

from mai.core.agents._scripted import ScriptedModel as ScriptedModel
from mai.core.agents._scripted import ScriptedRequest as ScriptedRequest
from mai.core.agents._scripted import block_model_requests as block_model_requests
from mai.core.agents._scripted import tool_call as tool_call

from ._durable import VirtualClock as VirtualClock
from ._durable import virtual_runtime as virtual_runtime
from ._pages import check_paged_store as check_paged_store
from ._stores import StoreConformance as StoreConformance
from ._stores import check_store as check_store
from ._tracing import RecordedCall as RecordedCall
from ._tracing import RecordingTracer as RecordingTracer
from ._tracing import SpanCapture as SpanCapture
from ._tracing import Stopwatch as Stopwatch
from ._tracing import assert_elapsed as assert_elapsed
from ._tracing import capture_otel_spans as capture_otel_spans
from ._tracing import capture_spans as capture_spans
from ._tracing import expect_deadline as expect_deadline
from ._tracing import run_virtual as run_virtual
from ._tracing import stopwatch as stopwatch

__all__ = [
    "RecordedCall",
    "RecordingTracer",
    "ScriptedModel",
    "ScriptedRequest",
    "SpanCapture",
    "Stopwatch",
    "StoreConformance",
    "VirtualClock",
    "assert_elapsed",
    "block_model_requests",
    "capture_otel_spans",
    "capture_spans",
    "check_paged_store",
    "check_store",
    "expect_deadline",
    "run_virtual",
    "stopwatch",
    "tool_call",
    "virtual_runtime",
]
