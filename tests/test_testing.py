"""mai.testing: what users get to test their own modules (spans, recording tracer, virtual time)."""

from __future__ import annotations

import pytest
import trio

import mai
from mai import testing


@mai.module
async def fetch(url: str) -> str:
    """Pretend to download a page in one second."""
    await trio.sleep(1)
    return f"<{url}>"


@mai.module(timeout=2.5)
async def slow_search(query: str) -> str:
    """Take longer than its timeout."""
    await trio.sleep(10)
    return query


@mai.module
async def boom(x: str) -> str:
    """Fail."""
    raise ValueError(x)


async def test_capture_spans_collects_one_trace_per_run(autojump_clock):
    """capture_spans records every run started in the block, each as its own TraceHandle."""
    with testing.capture_spans() as captured:
        await (fetch >> fetch)("a")
        with pytest.raises(ValueError):
            await boom("b")
    assert len(captured.traces) == 2
    assert captured.names() == ["Sequential", "fetch", "fetch", "boom"]
    assert captured["fetch"].duration == 1.0
    assert [s.name for s in captured.find(status="error")] == ["boom"]
    assert len(captured.spans) == 4
    with pytest.raises(AssertionError, match="exactly one traced run, found 2"):
        _ = captured.trace
    with pytest.raises(KeyError, match="no span named 'nope'"):
        captured["nope"]
    await fetch("after")  # outside the block: not captured
    assert len(captured.traces) == 2


async def test_capture_spans_single_run(autojump_clock):
    """captured.trace is the trace of the only run."""
    with testing.capture_spans() as captured:
        await fetch("a")
    assert captured.trace.root.name == "fetch"


async def test_capture_otel_spans_uses_a_private_sdk_provider(autojump_clock):
    """capture_otel_spans collects the OpenTelemetry spans of the block's runs."""
    with testing.capture_otel_spans() as spans, pytest.raises(ValueError):
        await (fetch.with_(timeout=5) >> boom)("x")
    assert [s.name for s in spans] == ["fetch", "boom", "Sequential"]  # in the order they ended
    assert spans[1].attributes["mai.status"] == "error"
    assert spans[0].attributes["mai.deadline.remaining_s"] == 5.0


async def test_recording_tracer_records_calls_results_and_order():
    """RecordingTracer sees every call with its cast arguments, result or error, in order."""

    @mai.module
    async def double(x: int) -> int:
        return 2 * x

    tracer = testing.RecordingTracer()
    with tracer.installed():
        assert await (double >> double)("3") == 12
        with pytest.raises(ValueError):
            await boom("no")
    assert tracer.names() == ["Sequential", "double", "double", "boom"]
    first = tracer.calls_to("double")[0]
    assert (first.step_id, first.parent_step_id, first.args, first.result) == ("1.1", "1", (3,), 6)
    assert all(c.done for c in tracer.calls)
    assert isinstance(tracer.calls_to("boom")[0].error, ValueError)
    assert tracer.events[:3] == [("start", "1"), ("start", "1.1"), ("end", "1.1")]
    tracer.clear()
    assert tracer.calls == []
    assert tracer.events == []


async def test_recording_tracer_can_be_registered_process_wide():
    """A RecordingTracer is an ordinary tracer: mai.register_tracer installs it for every run."""
    tracer = testing.RecordingTracer()
    mai.register_tracer("recording", tracer)
    try:
        with pytest.raises(ValueError):
            await boom("y")
    finally:
        mai.unregister_tracer("recording")
    assert tracer.names() == ["boom"]


def test_run_virtual_runs_on_a_jumping_clock():
    """run_virtual runs a coroutine function under Trio with an autojumping MockClock."""

    async def main() -> float:
        start = trio.current_time()
        await fetch("a")
        await trio.sleep(3600)
        return trio.current_time() - start

    assert testing.run_virtual(main) == 3601.0


async def test_stopwatch_and_assert_elapsed(autojump_clock):
    """stopwatch measures on the loop clock; assert_elapsed checks an exact virtual duration."""
    with testing.stopwatch() as watch:
        await fetch("a")
    assert watch.elapsed == 1.0
    with testing.assert_elapsed(2.0) as running:
        await (fetch >> fetch)("a")
        assert running.elapsed == 2.0
    with (
        pytest.raises(AssertionError, match="expected the block to take 1 s, it took 2 s"),
        testing.assert_elapsed(1.0),
    ):
        await (fetch >> fetch)("a")
    with testing.assert_elapsed(0.9, tolerance=0.2):
        await fetch("a")


async def test_expect_deadline(autojump_clock):
    """expect_deadline returns the DeadlineExceeded after checking module and virtual time."""
    agent = mai.Sequential(fetch, slow_search)
    err = await testing.expect_deadline(agent("q"), module="slow_search", after=3.5)
    assert err.step_id == "1.2"
    with pytest.raises(AssertionError, match="deadline of 'fetch' to fire, it was 'slow_search'"):
        await testing.expect_deadline(agent("q"), module="fetch")
    with pytest.raises(AssertionError, match=r"after 1 s, it fired after 3\.5 s"):
        await testing.expect_deadline(agent("q"), after=1)
    with pytest.raises(AssertionError, match="the call returned '<q>'"):
        await testing.expect_deadline(fetch("q"))
    with pytest.raises(ValueError):
        await testing.expect_deadline(boom("q"))


def test_testing_exports_are_documented():
    """mai.testing exports exactly its __all__, each with a docstring."""
    public = {n for n in dir(testing) if not n.startswith("_")}
    assert set(testing.__all__) <= public
    assert list(testing.__all__) == sorted(testing.__all__)
    for name in testing.__all__:
        assert (getattr(testing, name).__doc__ or "").strip(), name
