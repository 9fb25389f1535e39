"""OpenTelemetry: one span per module call through the API, proven with the SDK's exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import anyio.from_thread
import pytest
import trio
from opentelemetry import trace as otel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import mai
from mai.core.tracing import instrument


@pytest.fixture
def exporter():
    """An SDK provider with an in-memory exporter, used for the test (the global is untouched)."""
    provider = TracerProvider()
    exp = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    exp.provider = provider  # for tests that start spans of their own
    with instrument(provider):
        yield exp
    provider.shutdown()


def _by_name(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


@mai.module
async def double(x: int) -> int:
    """Double a number."""
    return 2 * x


async def test_every_call_emits_a_span_mirroring_the_call_tree(exporter):
    """One span per module call, named after the module, parents mirroring the call tree."""
    assert await mai.Sequential(double, mai.Parallel(double, double.with_(name="twice")))(1) == (
        4,
        4,
    )
    spans = _by_name(exporter)
    assert set(spans) == {"Sequential", "double", "Parallel", "twice"}
    root = spans["Sequential"]
    assert root.parent is None
    assert spans["Parallel"].parent.span_id == root.context.span_id
    assert spans["twice"].parent.span_id == spans["Parallel"].context.span_id
    assert len({s.context.trace_id for s in exporter.get_finished_spans()}) == 1
    doubles = [s for s in exporter.get_finished_spans() if s.name == "double"]
    assert sorted(s.attributes["mai.step_id"] for s in doubles) == ["1.1", "1.2.1"]


async def test_attributes_are_under_mai(exporter, autojump_clock):
    """Step ids, retry count, payload sizes, remaining deadline and status are mai.* attributes."""
    attempts = []

    @mai.module(timeout=3, retries=1, backoff=0.5)
    async def flaky(text: str) -> str:
        attempts.append(text)
        if len(attempts) == 1:
            raise ConnectionError
        return text.upper()

    await mai.Sequential(flaky)("abc")
    attrs = dict(_by_name(exporter)["flaky"].attributes)
    assert attrs == {
        "mai.module": "flaky",
        "mai.step_id": "1.1",
        "mai.parent_step_id": "1",
        "mai.deadline.remaining_s": 3.0,
        "mai.payload.input_bytes": 5,
        "mai.payload.output_bytes": 5,
        "mai.status": "ok",
        "mai.retry_count": 1,
    }
    assert "mai.parent_step_id" not in _by_name(exporter)["Sequential"].attributes


async def test_a_failure_sets_error_status_and_records_the_exception(exporter):
    """A failing call's span has status ERROR and an exception event with the type."""

    @mai.module
    async def boom(x: int) -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await boom(1)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no"
    assert span.attributes["mai.status"] == "error"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"


async def test_timeouts_are_errors_and_cancellations_are_not(exporter, autojump_clock):
    """A timed-out call is an ERROR span; a sibling cancelled by it gets mai.status=cancelled."""

    @mai.module(timeout=1)
    async def slow(x: int) -> int:
        await trio.sleep(5)
        return x

    @mai.module
    async def waits(x: int) -> int:
        await trio.sleep(10)
        return x

    with pytest.raises(mai.DeadlineExceeded):
        await mai.Parallel(slow, waits)(1)
    spans = _by_name(exporter)
    assert spans["slow"].attributes["mai.status"] == "timed_out"
    assert spans["slow"].status.status_code is StatusCode.ERROR
    assert spans["slow"].events[0].attributes["exception.type"].endswith("DeadlineExceeded")
    assert spans["waits"].attributes["mai.status"] == "cancelled"
    assert spans["waits"].status.status_code is StatusCode.UNSET
    assert spans["waits"].events == ()


async def test_threads_see_the_calls_span_as_current(exporter):
    """Spans started in a sync body's thread, and modules it calls, are children of its span."""
    tracer = exporter.provider.get_tracer("user")

    @mai.module
    def user_span(x: int) -> int:
        with tracer.start_as_current_span("inside-thread"):
            return anyio.from_thread.run(double, x)

    assert await user_span(2) == 4
    spans = _by_name(exporter)
    module_span = spans["user_span"]
    assert spans["inside-thread"].parent.span_id == module_span.context.span_id
    assert spans["double"].parent.span_id == spans["inside-thread"].context.span_id
    assert spans["double"].attributes["mai.parent_step_id"] == "1"


class _RunId:
    """Give the run an id from inside the chain, the way the durable runtime does."""

    async def __call__(self, call, proceed):
        call.frame.run.run_id = "run-7"
        return await proceed()


async def test_the_run_id_is_an_attribute_of_every_span(exporter):
    """mai.run_id is on every span, the top-level one too (where an inner interceptor sets it)."""
    from mai._seam import intercept

    with intercept(_RunId()):
        await mai.Sequential(double)(1)
    assert {s.attributes["mai.run_id"] for s in exporter.get_finished_spans()} == {"run-7"}
    assert len(exporter.get_finished_spans()) == 2


async def test_context_span_is_the_otel_span(exporter):
    """Context.get().span is the OpenTelemetry span of the running call."""
    seen = []

    @mai.module
    async def look(x: int) -> int:
        seen.append(mai.Context.get().span)
        return x

    await look(1)
    (span,) = exporter.get_finished_spans()
    assert seen[0].get_span_context().span_id == span.context.span_id


async def test_an_application_span_is_the_parent_of_the_run(exporter):
    """A span the application has open when the run starts becomes its parent."""
    tracer = exporter.provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        await double(1)
    spans = _by_name(exporter)
    assert spans["double"].parent.span_id == request.get_span_context().span_id


async def test_inject_and_extract_carry_the_trace_in_metadata(exporter):
    """inject_trace_context puts the current call's traceparent in metadata; a run continues it."""
    carried = {}

    @mai.module
    async def origin(x: int) -> int:
        carried.update(mai.inject_trace_context({"tenant": "t1"}))
        return x

    await origin(1)
    (first,) = exporter.get_finished_spans()
    ctx = first.context
    assert carried["tenant"] == "t1"
    flags = f"{ctx.trace_flags:02x}"
    assert carried["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"

    extracted = mai.extract_trace_context(carried)
    assert otel.get_current_span(extracted).get_span_context().span_id == ctx.span_id

    exporter.clear()
    token = mai.Context.set(metadata=carried)
    try:
        await double(1)
    finally:
        mai.Context.reset(token)
    (second,) = exporter.get_finished_spans()
    assert second.context.trace_id == ctx.trace_id
    assert second.parent.span_id == ctx.span_id
    assert second.parent.is_remote


async def test_without_a_current_span_inject_adds_nothing_and_bad_traceparents_are_ignored(
    exporter,
):
    """Outside a span inject copies the metadata; an invalid traceparent starts a fresh trace."""
    meta = {"a": 1}
    out = mai.inject_trace_context(meta)
    assert out == meta
    assert out is not meta
    assert mai.inject_trace_context() == {}
    assert not otel.get_current_span(mai.extract_trace_context({})).get_span_context().is_valid

    token = mai.Context.set(metadata={"traceparent": "garbage"})
    try:
        assert mai.extract_trace_context() is not None
        await double(1)
    finally:
        mai.Context.reset(token)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_no_sdk_means_no_interceptor():
    """With only the API's default provider, the OpenTelemetry run hook installs nothing."""
    from mai.core.tracing._otel import _hook

    assert isinstance(otel.get_tracer_provider(), otel.ProxyTracerProvider)
    assert _hook() is None


def test_switching_providers_switches_interceptors():
    """Each provider gets its own interceptor (and tracer); the same provider reuses it."""
    from mai.core.tracing._otel import _hook

    a, b = TracerProvider(), TracerProvider()
    with instrument(a):
        first = _hook()
        assert _hook() is first
    with instrument(b):
        assert _hook() is not first


def _run(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_without_opentelemetry_configured_nothing_is_imported():
    """A run in a fresh process imports no OpenTelemetry module (and so emits no span)."""
    out = _run(
        """
        import sys, mai
        @mai.module
        async def f(x: int) -> int:
            return x
        assert mai.run(mai.Sequential(f, f), 1) == 1
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


_PROCESS = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import mai

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the application's choice, made once per process
carried = {}

@mai.module
async def step(x: int) -> int:
    carried.update(mai.inject_trace_context())
    return x

async def main():
    token = mai.Context.set(metadata=json.loads(sys.argv[1]))
    try:
        await mai.Sequential(step)(1)
    finally:
        mai.Context.reset(token)

mai.run(main)
spans = [
    {"name": s.name, "trace": s.context.trace_id, "span": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None}
    for s in exporter.get_finished_spans()
]
print(json.dumps({"spans": spans, "carried": carried}))
"""


def test_a_trace_continues_in_another_process():
    """With a global SDK provider, process B's run continues the trace process A put in metadata."""
    first = json.loads(_run(_PROCESS, "{}"))
    by_name = {s["name"]: s for s in first["spans"]}
    assert set(by_name) == {"Sequential", "step"}
    assert by_name["Sequential"]["parent"] is None

    second = json.loads(_run(_PROCESS, json.dumps(first["carried"])))
    again = {s["name"]: s for s in second["spans"]}
    assert again["Sequential"]["trace"] == by_name["step"]["trace"]
    assert again["Sequential"]["parent"] == by_name["step"]["span"]
    assert again["step"]["parent"] == again["Sequential"]["span"]
