"""Workers in this process on a real PostgreSQL: submit, claim, limits, wake-ups, tracing."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trio

import mai
from mai.core.durable import RunStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

# -- workflows (module level: workers find them by name) -----------------------------------------


@mai.module
async def double(x: int) -> int:
    """One step."""
    return 2 * x


@mai.module
async def twice(x: int) -> int:
    """Two steps."""
    return await double(await double(x))


@mai.module
async def await_go(x: int) -> int:
    """Waits durably for a message on ``go``."""
    return x + await mai.wait_for("go", timeout=60)


@mai.module
async def nap_then_double(x: int) -> int:
    """A durable sleep of 1.5 s, then a step."""
    await mai.sleep(1.5)
    return await double(x)


@mai.module
async def long_nap_then_double(x: int) -> int:
    """A durable sleep of an hour, then a step."""
    await mai.sleep(3600)
    return await double(x)


class Gauge:
    """Counts bodies running at once, overall and per worker, and keeps the peaks."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.entered = 0

    def enter(self, *keys: str) -> None:
        """A body started."""
        self.entered += 1
        for key in keys:
            self.now[key] = self.now.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.now[key])

    def leave(self, *keys: str) -> None:
        """A body ended."""
        for key in keys:
            self.now[key] -= 1


GAUGE = Gauge()


@mai.module
async def busy(x: int) -> int:
    """Holds a concurrency slot for 50 ms, recording who runs it."""
    owner = mai.Context.get().metadata.get("mai.test.owner", "?")
    queue = _queue_of_current_run()
    keys = ("all", queue, f"all:{owner}", f"{queue}:{owner}")
    GAUGE.enter(*keys)
    try:
        await trio.sleep(0.05)
    finally:
        GAUGE.leave(*keys)
    return x


@mai.module
async def limited(x: int) -> int:
    """One busy step (the workflow of the queue-limit tests)."""
    return await busy(x)


FLOWS = [double, twice, await_go, nap_then_double, long_nap_then_double, busy, limited]


async def eventually(predicate: Callable[[], Awaitable[object]], interval: float = 0.02) -> None:
    """Poll ``await predicate()`` (a store read) until it is true; fail after 30 s."""
    with trio.fail_after(30):
        while not await predicate():  # noqa: ASYNC110 - polling a store other processes write
            await trio.sleep(interval)


@asynccontextmanager
async def worker(url: str, **options: Any) -> AsyncIterator[mai.Worker]:
    """A worker running in this process for the duration of the block."""
    options.setdefault("lease", 10.0)
    options.setdefault("poll_interval", 0.5)
    async with trio.open_nursery() as nursery:
        w = mai.Worker(url, workflows=FLOWS, **options)
        await nursery.start(w.run)
        try:
            yield w
        finally:
            nursery.cancel_scope.cancel()


async def test_submitted_runs_are_executed_by_a_worker(pg_url):
    """Runs submitted by a client are claimed and executed by a worker; results come back."""
    async with mai.Runtime(pg_url) as client:
        handles = [await client.submit(twice, i, run_id=f"t{i}") for i in range(20)]
        assert (await client.get("t0")).status == RunStatus.PENDING
        async with worker(pg_url, concurrency=5):
            results = [await h.result() for h in handles]
        assert results == [4 * i for i in range(20)]
        assert [s.name for s in await client.steps("t3")] == ["twice", "double", "double"]
        assert (await client.get("t3")).attempts == 1


async def test_submit_validates_input_before_writing(pg_url):
    """submit rejects input that does not fit the module's types, and writes nothing."""
    async with mai.Runtime(pg_url) as client:
        with pytest.raises(mai.CastError, match="x"):
            await client.submit(twice, "not a number", run_id="bad")
        assert await client.list_runs() == []


async def test_submitting_an_existing_id_attaches(pg_url):
    """Submitting a run id twice records one run."""
    async with mai.Runtime(pg_url) as client:
        a = await client.submit(twice, 1, run_id="same")
        b = await client.submit(twice, 2, run_id="same")
        assert a.run_id == b.run_id
        assert len(await client.list_runs()) == 1
        assert (await client.get("same")).input == {"args": [1], "kwargs": {}}


async def test_wait_for_wakes_through_notify(pg_url):
    """A message sent from another process wakes mai.wait_for (LISTEN/NOTIFY, not polling)."""
    # The store polls of the wait come every poll_interval * 5 = 50 minutes, past the wait's
    # 60 s timeout: only the notification can deliver the message before ``eventually`` gives up.
    async with mai.Runtime(pg_url) as client, worker(pg_url, poll_interval=600.0) as w:
        handle = await client.submit(await_go, 1, run_id="waiter")

        async def timer_committed() -> bool:
            return any(s.name.endswith("timer") for s in await client.steps("waiter"))

        async def succeeded() -> bool:
            return (await client.get("waiter")).status == RunStatus.SUCCEEDED

        await eventually(timer_committed)
        assert w.runtime is not None
        assert "waiter" in w.runtime._active
        await client.send("waiter", "go", 41)
        await eventually(succeeded, 0.005)
        assert await handle.result() == 42


async def test_a_durable_timer_survives_a_handover(pg_url):
    """A sleeping run handed to another worker wakes at its recorded time, not a new nap later."""
    async with mai.Runtime(pg_url) as client:
        started = client.clock()
        handle = await client.submit(long_nap_then_double, 4, run_id="nap")
        async with worker(pg_url, name="first"):
            await eventually(lambda: client.steps("nap"))
        assert (await client.get("nap")).status == RunStatus.PENDING, "drained: handed back at once"
        (timer,) = await client.steps("nap")
        assert timer.name == "mai.sleep"
        assert timer.output == pytest.approx(started + 3600, abs=5.0)
        # Most of the hour passes while no worker runs (the recorded wake time moves to 1 s from
        # now): the second worker wakes then; restarting the hour would outlast the test's limit.
        wake_at = client.clock() + 1.0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE mai_steps SET output = %s WHERE run_id = 'nap' AND step_id = %s",
                (json.dumps(wake_at), timer.step_id),
            )
        async with worker(pg_url, name="second"):
            with trio.fail_after(60):
                assert await handle.result() == 8
        finished = (await client.get("nap")).record.updated_at
        assert finished >= wake_at, "the timer fired before its recorded time"


@pytest.mark.parametrize("workers", [3])
async def test_queue_limits_hold_under_contention(pg_url, workers):
    """Global and per-worker queue limits hold with several workers claiming at once."""
    GAUGE.__init__()  # type: ignore[misc]
    async with mai.Runtime(pg_url) as client:
        handles = [
            await client.submit(limited, i, run_id=f"l{i:02d}", queue="llm") for i in range(30)
        ]
        handles += [
            await client.submit(limited, i, run_id=f"o{i:02d}", queue="other") for i in range(30)
        ]
        async with trio.open_nursery() as nursery:
            for k in range(workers):
                w = mai.Worker(
                    pg_url,
                    workflows=FLOWS,
                    queues=["llm", "other"],
                    concurrency=6,
                    name=f"w{k}",
                    queue_limits={"llm": 4},
                    worker_queue_limits={"other": 2},
                    poll_interval=0.05,
                )
                nursery.start_soon(_run_tagged, w, f"w{k}")
            for h in handles:
                await h.result()
            nursery.cancel_scope.cancel()
    assert GAUGE.entered == 60
    assert 1 <= GAUGE.peak["llm"] <= 4, GAUGE.peak
    assert GAUGE.peak["llm"] >= 2, "the global limit was never under pressure"
    for k in range(workers):
        assert GAUGE.peak.get(f"other:w{k}", 0) <= 2, GAUGE.peak
    assert max(GAUGE.peak.get(f"all:w{k}", 0) for k in range(workers)) <= 6


async def _run_tagged(w: mai.Worker, tag: str) -> None:
    """Run ``w`` with its name in the Context metadata, so the gauge knows who runs a body."""
    token = mai.Context.set(metadata={"mai.test.owner": tag})
    try:
        await w.run()
    finally:
        mai.Context.reset(token)


def _queue_of_current_run() -> str:
    from mai.core.durable._primitives import current_durable

    durable = current_durable()
    return durable.record.queue if durable is not None else "?"


async def test_unknown_workflow_is_left_alone_without_blocking(pg_url):
    """A run this worker does not know is handed back untouched; the queue keeps flowing."""

    @mai.module
    async def stranger(x: int) -> int:
        return x

    async with mai.Runtime(pg_url) as client:
        await client.submit(stranger, 1, run_id="stranger")
        ok = await client.submit(twice, 1, run_id="ok")
        async with worker(pg_url):
            assert await ok.result() == 4
        left = await client.get("stranger")
        assert (left.status, left.owner) == (RunStatus.PENDING, None)
        async with mai.Runtime(pg_url, workflows=[stranger]) as app:  # the app that knows it
            assert await (await app.resume("stranger")).result() == 1


async def test_incompatible_code_fails_the_run_fast(pg_url):
    """A run recorded under an incompatible plan fails with PlanMismatchError, running nothing."""
    async with mai.Runtime(pg_url) as client:
        await client.submit(mai.Sequential(double, double, name="pair"), 1, run_id="pm")
        async with trio.open_nursery() as nursery:
            changed = mai.Sequential(double, name="pair")
            w = mai.Worker(pg_url, workflows=[changed], poll_interval=0.1)
            await nursery.start(w.run)
            with pytest.raises(mai.RunFailedError, match="PlanMismatchError"):
                await mai.RunHandle(client, "pm").result()
            nursery.cancel_scope.cancel()
        assert await client.steps("pm") == []


async def test_trace_context_travels_with_the_run(pg_url):
    """The submitter's trace continues in the workers: one tree across a handover."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mai.core.tracing import instrument

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with instrument(provider):
        async with mai.Runtime(pg_url) as client:
            with tracer.start_as_current_span("request") as request:
                handle = await client.submit(nap_then_double, 3, run_id="traced")
            async with worker(pg_url, name="first"):
                await eventually(lambda: client.steps("traced"))
            async with worker(pg_url, name="second"):
                assert await handle.result() == 6
    spans = exporter.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    ids = {s.context.span_id for s in spans}
    mine = [s for s in spans if s.name != "request"]
    assert {s.context.trace_id for s in mine} == {trace_id}, "every span is in the caller's trace"
    tops = [s for s in mine if s.attributes.get("mai.step_id") == "1"]
    assert len(tops) == 2, "one top-level span per worker attempt"
    assert {s.parent.span_id for s in tops} == {request.get_span_context().span_id}
    for s in mine:
        assert s.parent is not None
        assert s.parent.span_id in ids, f"{s.name} has a parent outside the tree"
