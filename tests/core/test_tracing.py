"""TraceHandle spans: one per module call, with the right parent, timing, sizes and status."""

from __future__ import annotations

import time

import anyio
import anyio.from_thread
import pytest
import trio

import mai
from mai import TraceHandle


@mai.module
async def double(x: int) -> int:
    """Double a number."""
    return 2 * x


@mai.module
async def nap(x: int) -> int:
    """Sleep one second, then pass the input on."""
    await trio.sleep(1)
    return x


@mai.module
def in_thread(x: int) -> int:
    """A sync body (worker thread) that calls another module back on the event loop."""
    return anyio.from_thread.run(double, x)


@mai.module
async def boom(x: int) -> int:
    """Always fail."""
    raise ValueError(f"bad {x}")


async def test_trace_returns_result_and_one_span_per_call():
    """mai.trace returns (result, TraceHandle) with one span per module call."""
    result, trace = await mai.trace(mai.Sequential(double, double), 3)
    assert result == 12
    assert isinstance(trace, TraceHandle)
    assert [(s.name, s.step_id, s.parent_step_id) for s in trace] == [
        ("Sequential", "1", None),
        ("double", "1.1", "1"),
        ("double", "1.2", "1"),
    ]
    assert trace.root.name == "Sequential"
    assert all(s.status == "ok" for s in trace)


async def test_parallel_branches_attach_to_the_parallel_span():
    """Spans of Parallel branches have the Parallel call as parent, in step-id order."""
    _, trace = await mai.trace(mai.Parallel(double, nap, double), 1)
    par = trace.root
    assert [s.name for s in trace.children(par)] == ["double", "nap", "double"]
    assert {s.parent_id for s in trace.children(par)} == {par.span_id}
    assert [s.step_id for s in trace.children(par)] == ["1.1", "1.2", "1.3"]


async def test_calls_made_from_a_thread_body_attach_to_the_sync_module():
    """A module called from a sync body's worker thread is a child of that sync module's span."""
    result, trace = await mai.trace(mai.Sequential(double, in_thread), 1)
    assert result == 4
    sync = trace["in_thread"]
    (child,) = trace.children(sync)
    assert (child.name, child.step_id, child.parent_step_id) == ("double", "1.2.1", "1.2")
    assert trace.parent(child) == sync


async def test_durations_are_exact_on_the_virtual_clock(autojump_clock):
    """Durations are event-loop-clock differences: exact virtual seconds under autojump_clock."""
    before = time.time()
    _, trace = await mai.trace(mai.Sequential(nap, nap, mai.BlockingDelay(0.5)), 1)
    assert [s.duration for s in trace] == [2.5, 1.0, 1.0, 0.5]
    root = trace.root
    assert root.start >= before - 1
    assert trace["BlockingDelay"].start - root.start == pytest.approx(2.0)
    assert all(s.end >= s.start for s in trace)
    assert trace.duration == pytest.approx(2.5)


async def test_payload_sizes_are_json_bytes():
    """input_bytes/output_bytes are JSON sizes; a non-JSON value falls back to repr, flagged."""

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    @mai.module
    async def echo(text: str, n: int = 0) -> str:
        return text

    @mai.module
    async def opaque(x: int) -> object:
        return Opaque()

    _, trace = await mai.trace(echo, "héllo", n=12)
    span = trace.root
    assert span.input_bytes == len('"héllo"'.encode()) + 2
    assert span.output_bytes == len('"héllo"'.encode())
    assert span.sizes_exact
    _, trace = await mai.trace(opaque, 1)
    assert trace.root.output_bytes == len("<opaque>")
    assert not trace.root.sizes_exact


async def test_retries_are_counted_and_each_attempts_children_are_distinct(autojump_clock):
    """retries = attempts - 1; calls from different attempts are separate spans under the parent."""
    seen = []

    @mai.module(retries=2, backoff=1)
    async def flaky(x: int) -> int:
        y = await double(x)
        seen.append(y)
        if len(seen) < 3:
            raise ConnectionError("down")
        return y

    result, trace = await mai.trace(flaky, 2)
    assert result == 4
    assert trace.root.retries == 2
    kids = trace.children(trace.root)
    assert [(k.name, k.step_id) for k in kids] == [("double", "1.1")] * 3
    assert len({k.span_id for k in kids}) == 3
    assert trace.find(step_id="1.1") == kids


async def test_an_error_is_recorded_with_type_and_message():
    """A failing call has status error and its exception's type and message; parents pass it on."""
    with pytest.raises(ValueError, match="bad 2") as info:
        await mai.trace(mai.Sequential(double, boom), 1)
    trace = TraceHandle.of(info.value)
    assert trace is not None
    failed = trace["boom"]
    assert (failed.status, failed.error_type, failed.error_message) == (
        "error",
        "ValueError",
        "bad 2",
    )
    assert failed.output_bytes is None
    assert trace["double"].ok
    assert [s.name for s in trace.errors] == ["Sequential", "boom"]


async def test_the_failed_runs_trace_is_attached_to_the_original_exception():
    """mai.trace re-raises the body's own exception, with the trace as err.__mai_trace__."""
    err = ValueError("mine")

    @mai.module
    async def raiser(x: int) -> int:
        raise err

    with pytest.raises(ValueError) as info:
        await mai.trace(raiser, 1)
    assert info.value is err
    assert err.__mai_trace__ is TraceHandle.of(err)  # type: ignore[attr-defined]
    assert TraceHandle.of(ValueError()) is None


async def test_timeouts_and_cancellations_are_told_apart(autojump_clock):
    """DeadlineExceeded is timed_out; a branch cancelled by a sibling's failure is cancelled."""
    slow = nap.with_(name="slow", timeout=0.5)

    @mai.module
    async def fail_later(x: int) -> int:
        await trio.sleep(2)
        raise KeyError(x)

    @mai.module
    async def waits(x: int) -> int:
        await trio.sleep(10)
        return x

    with pytest.raises(mai.DeadlineExceeded) as info:
        await mai.trace(mai.Parallel(slow, waits), 1)
    trace = TraceHandle.of(info.value)
    assert trace is not None
    assert trace["slow"].status == "timed_out"
    assert trace["slow"].error_type == "mai.DeadlineExceeded"
    assert trace["waits"].status == "cancelled"
    assert trace["waits"].error_type == "Cancelled"
    assert [s.name for s in trace.errors] == ["Parallel", "slow"]
    assert trace.find(status="cancelled") == [trace["waits"]]

    with pytest.raises(KeyError):
        await mai.trace(mai.Parallel(fail_later, waits), 1)


async def test_a_child_cut_off_by_its_parents_deadline_is_timed_out(autojump_clock):
    """A call cancelled because the deadline it inherited passed is timed_out, not cancelled."""
    outer = mai.Sequential(nap, nap, name="outer", timeout=1.5)
    with pytest.raises(mai.DeadlineExceeded) as info:
        await mai.trace(outer, 1)
    trace = TraceHandle.of(info.value)
    assert trace is not None
    assert [(s.name, s.status) for s in trace] == [
        ("outer", "timed_out"),
        ("nap", "ok"),
        ("nap", "timed_out"),
    ]
    assert trace.find(step_id="1.2")[0].error_type == "Cancelled"


async def test_the_deadline_in_force_is_recorded_as_wall_clock(autojump_clock):
    """Each span records the deadline in force (its own or inherited) as epoch seconds."""
    inner = nap.with_(name="inner", timeout=5)
    outer = mai.Sequential(inner, name="outer", timeout=3)
    _, trace = await mai.trace(outer, 1)
    assert trace["outer"].deadline == pytest.approx(trace["outer"].start + 3)
    assert trace["inner"].deadline == trace["outer"].deadline
    _, trace = await mai.trace(double, 1)
    assert trace.root.deadline is None


async def test_an_enclosing_trio_deadline_counts_as_a_deadline(autojump_clock):
    """A cancel scope around the run bounds the recorded deadline; its expiry is timed_out."""
    from mai.testing import capture_spans

    with capture_spans() as captured, trio.move_on_after(0.5):
        await nap(1)
    span = captured["nap"]
    assert span.status == "timed_out"
    assert span.deadline == pytest.approx(span.start + 0.5)

    with capture_spans() as captured, trio.CancelScope() as scope:
        scope.cancel()
        await nap(1)
    assert captured["nap"].status == "cancelled"


async def test_background_work_of_a_non_blocking_delay_is_traced(autojump_clock):
    """Calls a NonBlockingDelay runs later are in the trace, under the delay's span."""
    pipeline = mai.Sequential(double, mai.NonBlockingDelay(2, nap.with_(name="later")))
    result, trace = await mai.trace(pipeline, 1)
    assert result == 2
    later = trace["later"]
    assert trace.parent(later) == trace["NonBlockingDelay"]
    assert later.step_id == "1.2.1"
    assert later.start - trace.root.start == pytest.approx(2.0)


async def test_map_items_are_children_of_the_map():
    """Every item of a Map is a child span of the Map call, in item order."""
    _, trace = await mai.trace(mai.Map(double), [1, 2, 3])
    assert [(s.step_id, s.input_bytes) for s in trace.children(trace.root)] == [
        ("1.1", 1),
        ("1.2", 1),
        ("1.3", 1),
    ]


async def test_trace_inside_a_module_call_is_refused():
    """mai.trace inside a module body raises a MaiError that says what to do instead."""

    @mai.module
    async def nested(x: int) -> int:
        result, _ = await mai.trace(double, x)
        return result

    with pytest.raises(mai.MaiError, match="outside module bodies"):
        await nested(1)


def test_trace_works_on_asyncio():
    """mai.trace records the same tree under asyncio."""
    result, trace = anyio.run(mai.trace, mai.Sequential(double, in_thread), 1, backend="asyncio")
    assert result == 4
    assert [s.step_id for s in trace] == ["1", "1.1", "1.2", "1.2.1"]


def test_mai_trace_installs_only_for_its_own_run():
    """The recorder of mai.trace is gone once it returns: a later call is not recorded."""
    from mai._seam import _run_interceptors

    trio.run(mai.trace, double, 1)
    assert _run_interceptors.get() == ()
