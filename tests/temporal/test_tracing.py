"""One trace per run across the workflow and its activities: OpenTelemetry and pymai's own."""

from __future__ import annotations

import json
from typing import Any

import temporal_flows as f
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mai


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_activity_spans_are_children_of_the_workflow_side_step_span(url: str) -> None:
    """Activity spans (the body, its child calls) hang under the step's workflow-side span."""
    provider, exporter = _provider()
    async with mai.Runtime(url, workflows=[f.traced], worker=True, tracer_provider=provider) as rt:
        assert await (await rt.start(f.traced, 3, run_id="otel-run")).result() == 13
    spans = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    by_id = {s.context.span_id: s for s in spans}
    side = {
        (s.attributes["mai.step_id"], "mai.temporal.activity_id" in s.attributes): s for s in spans
    }
    assert sorted(side) == [
        ("1", False),
        ("1.1", False),
        ("1.1", True),
        ("1.2", False),
        ("1.2", True),
        ("1.2.1", False),
        ("1.2.2", False),
    ]
    root = side["1", False]
    assert root.name == "traced"
    assert root.attributes["mai.run_id"] == "otel-run"
    for step in ("1.1", "1.2"):
        workflow_side, activity_side = side[step, False], side[step, True]
        assert workflow_side.parent.span_id == root.context.span_id
        assert activity_side.parent.span_id == workflow_side.context.span_id
        assert activity_side.attributes["mai.temporal.activity_id"] == step
        assert activity_side.attributes["mai.temporal.attempt"] == 1
    for child in ("1.2.1", "1.2.2"):
        assert side[child, False].parent.span_id == side["1.2", True].context.span_id
    assert root.parent is not None
    assert root.parent.span_id not in by_id  # the made-up parent


async def test_a_run_continues_the_trace_of_the_span_that_started_it(url: str) -> None:
    """Started inside a span, the run's root span is that span's child, in its trace."""
    provider, exporter = _provider()
    async with mai.Runtime(url, workflows=[f.traced], worker=True, tracer_provider=provider) as rt:
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            handle = await rt.start(f.traced, 1)
        assert await handle.result() == 5
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "traced")
    assert root.parent is not None
    assert root.parent.span_id == caller.get_span_context().span_id
    assert {s.context.trace_id for s in spans} == {caller.get_span_context().trace_id}


async def test_rt_trace_rebuilds_the_tree_from_the_history(rt: Any) -> None:
    """rt.trace(run_id) gives the run's TraceHandle: composites, activities, child calls."""
    handle = await rt.start(f.traced, 3, run_id="trace-run")
    assert await handle.result() == 13
    trace = await rt.trace("trace-run")
    assert isinstance(trace, mai.TraceHandle)
    assert trace.run_id == "trace-run"
    assert [(s.step_id, s.name, s.parent_step_id) for s in trace.spans] == [
        ("1", "traced", None),
        ("1.1", "double", "1"),
        ("1.2", "outer", "1"),
        ("1.2.1", "double", "1.2"),
        ("1.2.2", "inc", "1.2"),
    ]
    outer = trace["outer"]
    assert [s.name for s in trace.children(outer)] == ["double", "inc"]
    assert trace.root.start <= outer.start <= outer.end <= trace.root.end
    steps = await rt.steps("trace-run")
    assert [(s.step_id, s.output) for s in steps] == [
        ("1.1", 6),
        ("1.2", 13),
        ("1.2.1", 12),
        ("1.2.2", 13),
    ]


async def test_trace_of_an_unknown_run_raises(rt: Any) -> None:
    """rt.trace of a run Temporal does not know raises RunNotFoundError."""
    import pytest

    with pytest.raises(mai.RunNotFoundError):
        await rt.trace("no-such-run")


async def test_replayed_workflow_code_makes_each_span_once_with_stable_ids(url: str) -> None:
    """With no workflow cache (every task replays the run), spans are not duplicated or orphaned."""
    provider, exporter = _provider()
    async with mai.Runtime(
        url,
        workflows=[f.traced],
        worker=True,
        tracer_provider=provider,
        worker_options={"max_cached_workflows": 0},
    ) as rt:
        assert await (await rt.start(f.traced, 2)).result() == 9
    spans = exporter.get_finished_spans()
    keys = [
        (s.attributes["mai.step_id"], "mai.temporal.activity_id" in s.attributes) for s in spans
    ]
    assert sorted(keys) == [
        ("1", False),
        ("1.1", False),
        ("1.1", True),
        ("1.2", False),
        ("1.2", True),
        ("1.2.1", False),
        ("1.2.2", False),
    ]
    ids = {s.context.span_id for s in spans}
    orphans = [s.name for s in spans if s.name != "traced" and s.parent.span_id not in ids]
    assert orphans == []
    assert len({s.context.trace_id for s in spans}) == 1


async def test_mai_trace_command_on_a_temporal_url(rt: Any, url: str) -> None:
    """`mai trace RUN --store temporal://...` prints the run's trace rebuilt from its history."""
    from test_recovery import mai_cli

    assert await (await rt.start(f.traced, 1, run_id="cli-trace")).result() == 5
    data = json.loads(mai_cli("trace", "cli-trace", "--store", url, "--json"))
    assert [(s["step_id"], s["name"]) for s in data["spans"]] == [
        ("1", "traced"),
        ("1.1", "double"),
        ("1.2", "outer"),
        ("1.2.1", "double"),
        ("1.2.2", "inc"),
    ]
