"""Durable runtime semantics: checkpoints, replay, resume, versioning, timers, events.

Every test that uses a store runs on the memory store and on a real SQLite file (the ``url``
fixture), and on virtual time: a runtime from :func:`mai.testing.virtual_runtime` under the
``autojump_clock``, so timers, deadlines, leases and ``mai.now()`` share one clock that jumps
whenever every task waits. Nothing here waits on the wall clock or bounds it; a test waits for
an event (a step reached, a row committed) instead.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import mai
import mai.testing

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from trio.testing import MockClock

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Fresh store URLs of this test's kind: a named memory store, or a new SQLite file."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path}/semantics-{next(_names)}.db"
    return lambda: f"memory://semantics-{next(_names)}"


def runtime(url: str, **options: Any) -> mai.Runtime:
    """A durable runtime on virtual time (the test's ``autojump_clock``) over ``url``."""
    return mai.testing.virtual_runtime(url, **options)


class Doc(BaseModel):
    """A typed output that must come back typed after replay."""

    title: str
    words: int


calls: list[str] = []
_reached: defaultdict[str, trio.Event] = defaultdict(trio.Event)


def note(entry: str) -> None:
    """Log a step body in ``calls`` and signal anyone waiting for it (see :func:`reached`)."""
    calls.append(entry)
    _reached[entry].set()


async def reached(entry: str) -> None:
    """Wait until a step body logged ``entry``."""
    await _reached[entry].wait()


@mai.module
async def add_one(x: int) -> int:
    """A trivial step that leaves a trace in ``calls``."""
    note(f"add_one({x})")
    return x + 1


@mai.module
async def to_doc(x: int) -> Doc:
    """A step with a pydantic output."""
    note(f"to_doc({x})")
    return Doc(title=f"doc {x}", words=x)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    """Each test starts with an empty call log and no step reached."""
    calls.clear()
    _reached.clear()


async def test_start_returns_typed_result(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """A durable run returns its result cast to the workflow's return type."""
    async with runtime(new_url()) as rt:
        handle = await rt.start((add_one >> to_doc).with_(name="typed"), 4, run_id="typed")
        result = await handle.result()
    assert result == Doc(title="doc 5", words=5)
    assert isinstance(result, Doc)


async def test_starting_an_existing_run_id_attaches(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """Starting the same run id twice gives the same run; the body runs once."""
    async with runtime(new_url()) as rt:
        first = await rt.start(add_one, 1, run_id="same")
        assert await first.result() == 2
        second = await rt.start(add_one, 1, run_id="same")
        assert await second.result() == 2
        assert len(await rt.list_runs()) == 1
    assert calls == ["add_one(1)"]


async def test_step_ids_are_deterministic_over_50_runs(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """The same Parallel/Map workflow run 50 times records identical step ids."""

    @mai.module
    async def jitter(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 2

    flow = mai.Sequential(
        mai.Parallel(jitter, jitter, add_one),
        mai.module(list),
        mai.Map(jitter, max_concurrency=3),
        name="det",
    )
    seen = set()
    async with runtime(new_url()) as rt:
        for i in range(50):
            await (await rt.start(flow, 3, run_id=f"det-{i}")).result()
            seen.add(tuple(s.step_id for s in await rt.steps(f"det-{i}")))
    assert len(seen) == 1
    (ids,) = seen
    assert ids == ("1.1.1", "1.1.2", "1.1.3", "1.2", "1.3.1", "1.3.2", "1.3.3")


async def test_step_committed_before_the_next_step_runs(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """When a step starts, the previous step's output is already in the store."""
    seen: list[list[str]] = []
    holder: dict[str, Any] = {}

    @mai.module
    def look(x: int) -> int:  # a sync body in a worker thread may read the store
        seen.append([s.step_id for s in holder["rt"].blocking.steps("commit-order")])
        return x

    async with runtime(new_url()) as rt:
        holder["rt"] = rt
        await (
            await rt.start(
                (add_one >> look >> add_one >> look).with_(name="look"), 1, run_id="commit-order"
            )
        ).result()
    assert seen == [["1.1"], ["1.1", "1.2", "1.3"]]


async def _interrupt_after(url: str, flow: mai.Module[..., Any], run_id: str, gate: str) -> None:
    """Start ``flow`` and shut the runtime down once a step body logged ``gate`` (it blocks)."""
    async with runtime(url, workflows=[flow]) as rt:
        await rt.start(flow, 1, run_id=run_id)
        await reached(gate)
        raise _Stop


class _Stop(Exception):
    """Used to leave the runtime block abruptly."""


async def test_resume_replays_committed_steps_without_running_them(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """After an interruption, committed steps return recorded outputs (typed) and never rerun."""
    release = trio.Event()

    @mai.module
    async def gate(d: Doc) -> Doc:
        note("gate")
        if not release.is_set():
            await trio.sleep_forever()
        return d

    flow = mai.Sequential(add_one, to_doc, gate, name="resumable")
    url = new_url()
    with pytest.raises(_Stop):
        await _interrupt_after(url, flow, "resume-1", "gate")
    assert calls == ["add_one(1)", "to_doc(2)", "gate"]
    release.set()
    async with runtime(url, workflows=[flow]) as rt:
        assert (await rt.get("resume-1")).status == mai.RunStatus.PENDING
        handles = await rt.recover()
        assert [h.run_id for h in handles] == ["resume-1"]
        result = await handles[0].result()
    assert result == Doc(title="doc 2", words=2)
    assert calls == ["add_one(1)", "to_doc(2)", "gate", "gate"]


async def test_changed_input_on_replay_is_a_nondeterminism_error(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """A replayed step called with a different input raises NonDeterminismError naming it."""
    flips = {"n": 0}

    @mai.module
    async def source() -> int:
        return 10

    @mai.module
    async def choose(x: int) -> int:
        return x

    @mai.module
    async def consume(x: int) -> int:
        note("consume")
        await trio.sleep_forever()
        return x

    @mai.module
    async def flow_body(x: int) -> int:
        flips["n"] += 1  # plain code that is not deterministic across a resume
        a = await source()
        b = await choose(a + flips["n"])
        return await consume(b)

    url = new_url()
    with pytest.raises(_Stop):
        await _interrupt_after(url, flow_body, "nondet", "consume")
    async with runtime(url, workflows=[flow_body]) as rt:
        (handle,) = await rt.recover()
        with pytest.raises(mai.NonDeterminismError) as info:
            await handle.result()
    assert info.value.step_id == "1.2"
    assert "1.2" in str(info.value)
    assert "choose" in str(info.value)


async def test_incompatible_plan_is_refused_before_any_step_and_compatible_resumes(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """Changed code: appended steps resume; a changed step is refused naming the first one."""
    release = trio.Event()

    @mai.module
    async def hold(x: int) -> int:
        note("hold")
        if not release.is_set():
            await trio.sleep_forever()
        return x

    @mai.module
    async def as_text(x: int) -> str:
        note("as_text")
        return str(x)

    original = mai.Sequential(add_one, hold, name="versioned")
    url = new_url()
    with pytest.raises(_Stop):
        await _interrupt_after(url, original, "v1", "hold")
    release.set()
    changed = mai.Sequential(as_text, hold, name="versioned")
    async with runtime(url) as rt:
        before = len(calls)
        with pytest.raises(mai.PlanMismatchError) as info:
            await rt.resume("v1", changed)
        assert info.value.step_id == "1.1"
        assert "first divergent step 1.1" in str(info.value)
        assert len(calls) == before  # nothing ran
        appended = mai.Sequential(add_one, hold, add_one, name="versioned")
        handle = await rt.resume("v1", appended)
        assert await handle.result() == 3


async def test_run_deadline_is_stored_as_wall_clock_and_enforced(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """A run's deadline is stored as epoch time and fails the run when it passes (not later)."""

    @mai.module
    async def slow(x: int) -> int:
        await trio.sleep(3600)
        return x

    async with runtime(new_url()) as rt:
        started = trio.current_time()
        handle = await rt.start(slow, 1, run_id="late", deadline=60)
        info = await rt.get("late")
        assert info.deadline == pytest.approx(info.created_at + 60)
        with pytest.raises(mai.DeadlineExceeded):
            await handle.result()
        failed_after = trio.current_time() - started  # virtual time: exact, whatever the load
        assert (await rt.get("late")).status == mai.RunStatus.FAILED
    assert 60 <= failed_after < 61  # at the deadline, not when the hour-long step would end


async def test_cancel_cancels_running_steps_and_records_cancelled(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """rt.cancel() cancels the running step (its cancel scope) and records CANCELLED."""
    cancelled = trio.Event()

    @mai.module
    async def forever(x: int) -> int:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        return x

    async with runtime(new_url()) as rt:
        handle = await rt.start((add_one >> forever).with_(name="forever"), 1, run_id="to-cancel")
        while not await rt.steps("to-cancel"):  # noqa: ASYNC110 - polls the store
            await trio.sleep(0.001)
        await rt.cancel("to-cancel")
        assert cancelled.is_set()
        assert (await rt.get("to-cancel")).status == mai.RunStatus.CANCELLED
        with pytest.raises(mai.RunCancelledError):
            await handle.result()


async def test_fan_out_commits_are_grouped(tmp_path: Path) -> None:
    """A Map of 1,000 branches on SQLite commits in far fewer than 1,000 transactions."""

    @mai.module
    async def numbers(n: int) -> list[int]:
        return list(range(n))

    async with mai.Runtime(f"sqlite:///{tmp_path}/group.db?synchronous=normal") as rt:
        before = rt.executor.commits
        handle = await rt.start((numbers >> mai.Map(add_one)).with_(name="fan"), 1000, run_id="fan")
        assert len(await handle.result()) == 1000
        commits = rt.executor.commits - before
        assert len(await rt.steps("fan")) == 1001
    assert commits < 100


async def test_durable_sleep_and_now_are_recorded_and_replayed(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """mai.sleep records its wake-up time, mai.now its reading; replay returns the same."""
    release = trio.Event()
    readings: list[float] = []

    @mai.module
    async def body(x: int) -> float:
        t = mai.now()
        readings.append(t)
        await mai.sleep(86400)  # a day, on virtual time
        note("slept")
        if not release.is_set():
            await trio.sleep_forever()
        return t

    url = new_url()
    with pytest.raises(_Stop):
        await _interrupt_after(url, body, "timers", "slept")
    release.set()
    async with runtime(url, workflows=[body]) as rt:
        (handle,) = await rt.recover()
        assert await handle.result() == readings[0]
        recorded = await rt.steps("timers")
    assert readings == [readings[0], readings[0]]
    assert [(s.step_id, s.kind) for s in recorded] == [
        ("1", "call"),
        ("1.1", "now"),
        ("1.2", "timer"),
    ]
    timer = recorded[2]
    assert timer.output - readings[0] == pytest.approx(86400, abs=1)  # mai.now and timers agree


async def test_random_is_deterministic_per_run_and_position(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """mai.random() gives the same numbers at the same place of the same run."""

    @mai.module
    async def draw() -> list[float]:
        return [mai.random().random(), mai.random().random()]

    async with runtime(new_url()) as rt:
        a = await (await rt.start(draw, run_id="rnd-a")).result()
        b = await (await rt.start(draw, run_id="rnd-b")).result()
    assert a[0] != a[1]
    assert a != b
    async with runtime(new_url()) as rt:
        again = await (await rt.start(draw, run_id="rnd-a")).result()
    assert again == a


async def test_wait_for_receives_send_and_times_out(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """mai.wait_for gets a payload sent with rt.send, even one sent before the wait started."""

    @mai.module
    async def approve(x: int) -> str:
        decision = await mai.wait_for("approval", timeout=3600)
        return f"{x}:{decision['by']}"

    @mai.module
    async def impatient(x: int) -> str:
        return await mai.wait_for("never", timeout=60)

    async with runtime(new_url()) as rt:
        handle = await rt.start(approve, 7, run_id="hitl")
        # The wait records its timeout timer just before it starts waiting: send after that.
        while not [s for s in await rt.steps("hitl") if s.kind == "timer"]:  # noqa: ASYNC110
            await trio.sleep(0.01)
        await rt.send("hitl", "approval", {"by": "ana"})
        assert await handle.result() == "7:ana"
        early = await rt.start(approve, 8, run_id="hitl-early")
        await rt.send("hitl-early", "approval", {"by": "bo"})
        assert await early.result() == "8:bo"
        late = await rt.start(impatient, 1, run_id="timeout")
        with pytest.raises(mai.WaitTimeoutError):
            await late.result()
        kinds = {s.kind: s for s in await rt.steps("timeout")}
        timer, event = kinds["timer"], kinds["event"]
        assert timer.output - timer.started_at == pytest.approx(60)  # virtual seconds
        assert event.finished_at >= timer.output  # it timed out at the recorded time, not before
        with pytest.raises(mai.RunNotFoundError):
            await rt.send("nope", "approval", {})


async def test_idempotency_key_is_stable_across_retries_and_resumes(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """Context.idempotency_key is the same for a step across retries and a resume."""
    keys: list[str | None] = []
    release = trio.Event()

    @mai.module(retries=2, backoff=0)
    async def charge(x: int) -> int:
        keys.append(mai.Context.get().idempotency_key)
        if len(keys) < 2:
            raise ConnectionError("flaky")
        if not release.is_set():
            note("charge-blocked")
            await trio.sleep_forever()
        return x

    url = new_url()
    with pytest.raises(_Stop):
        await _interrupt_after(url, charge, "idem", "charge-blocked")
    release.set()
    async with runtime(url, workflows=[charge]) as rt:
        (handle,) = await rt.recover()
        assert await handle.result() == 1
    assert len(keys) == 3
    assert set(keys) == {"idem/1"}


async def test_non_serialisable_output_fails_the_step_with_a_typed_error(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """A step returning something JSON cannot hold fails with SerializationError; no hang."""

    @mai.module
    async def leak(x: int) -> Any:
        return object()

    async with runtime(new_url()) as rt:
        handle = await rt.start(leak, 1, run_id="leak")
        with pytest.raises(mai.SerializationError) as info:
            await handle.result()
        assert "step 1" in str(info.value)
        assert (await rt.get("leak")).status == mai.RunStatus.FAILED
        assert await rt.steps("leak") == []


@mai.module
async def typed_entry(count: int, ratio: float) -> float:
    """A workflow with typed parameters for the bad-input property."""
    return count * ratio


def _not_an_int(value: object) -> bool:
    """True for values pydantic refuses as an ``int`` (so they must be rejected)."""
    try:
        TypeAdapter(int).validate_python(value)
    except ValidationError:
        return True
    return False


@settings(
    max_examples=40,
    deadline=None,
    # Each example opens a runtime on a real file; on a loaded 2-core machine that is slow.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bad=st.one_of(
        st.text(), st.lists(st.integers()), st.dictionaries(st.text(), st.integers())
    ).filter(_not_an_int)
)
def test_bad_input_is_rejected_before_any_row_is_written(tmp_path: Path, bad: object) -> None:
    """Inputs that do not fit the types are refused, naming the parameter; no row is written."""
    db = tmp_path / "bad-input.db"

    async def main() -> None:
        async with mai.Runtime(f"sqlite:///{db}") as rt:
            with pytest.raises(mai.CastError) as info:
                await rt.start(typed_entry, bad, 0.5)
            assert info.value.parameter == "count"
            assert "count" in str(info.value)

    trio.run(main)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM mai_runs").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM mai_steps").fetchone() == (0,)


async def test_reads_are_async_and_a_blocking_api_sits_beside_them(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """rt.get/list_runs/steps are awaited; rt.blocking offers them to threads, not to the loop."""
    async with runtime(new_url()) as rt:
        await (await rt.start(add_one, 1, run_id="reads")).result()
        assert (await rt.get("reads")).status == mai.RunStatus.SUCCEEDED
        assert (await rt.get("reads")).output == 2
        assert [r.run_id for r in await rt.list_runs(status="succeeded")] == ["reads"]
        (step,) = await rt.steps("reads")
        assert step.input == {"args": [1], "kwargs": {}}
        assert step.output == 2
        assert step.duration >= 0
        with pytest.raises(mai.RunNotFoundError):
            await rt.get("missing")
        blocking = rt.blocking
        info = await trio.to_thread.run_sync(blocking.get, "reads")
        assert info.output == 2
        assert [s.step_id for s in await trio.to_thread.run_sync(blocking.steps, "reads")] == ["1"]
        assert len(await trio.to_thread.run_sync(blocking.list_runs)) == 1
        with pytest.raises(RuntimeError, match=r"await rt\.get"):
            blocking.get("reads")


async def test_an_async_read_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """While the store thread is busy, awaiting a read lets other tasks run."""
    ticks: list[int] = []
    async with mai.Runtime(f"sqlite:///{tmp_path / 'reads.db'}") as rt:
        await (await rt.start(add_one, 1, run_id="r")).result()
        busy = trio.Event()

        def occupy_the_store_thread() -> None:
            trio.from_thread.run_sync(busy.set, trio_token=token)
            time.sleep(0.3)

        token = trio.lowlevel.current_trio_token()

        async def tick() -> None:
            while True:
                ticks.append(1)
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(rt.executor.read, occupy_the_store_thread)
            await busy.wait()
            nursery.start_soon(tick)
            ticks.clear()
            info = await rt.get("r")
            seen = len(ticks)
            nursery.cancel_scope.cancel()
    assert info.output == 2
    assert seen > 0


async def test_non_blocking_delay_uses_durable_timers(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """In a durable run, NonBlockingDelay's background call waits on a recorded timer."""
    done = trio.Event()

    @mai.module
    async def later(x: int) -> None:
        done.set()

    flow = mai.Sequential(mai.NonBlockingDelay(0.01, later), add_one, name="nbd")
    async with runtime(new_url()) as rt:
        assert await (await rt.start(flow, 1, run_id="nbd")).result() == 2
        kinds = {(s.name, s.kind) for s in await rt.steps("nbd")}
    assert done.is_set()
    assert ("mai.sleep", "timer") in kinds
    assert ("later", "call") in kinds


async def test_run_id_is_known_before_the_first_interceptor_runs(
    new_url: Callable[[], str], autojump_clock: MockClock
) -> None:
    """Interceptors outside the durable one (tracing, logging) see the run id from the top call."""
    from mai._seam import intercept

    seen: list[tuple[str, str | None]] = []

    async def spy(call: Any, proceed: Any) -> Any:
        seen.append((call.step_id, mai.Context.get().run_id))
        return await proceed()

    async with runtime(new_url()) as rt:
        with intercept(spy):
            handle = await rt.start((add_one >> add_one).with_(name="twice"), 1, run_id="known")
        assert await handle.result() == 3
    assert seen == [("1", "known"), ("1.1", "known"), ("1.2", "known")]


async def test_a_lone_sqlite_commit_runs_on_the_loop_thread_only_when_nothing_else_is_ready(
    tmp_path: Path,
) -> None:
    """A lone SQLite write skips the thread hop when no task is ready; otherwise it hops."""
    import threading

    from mai.core.durable._sqlite import SQLiteStore

    where: list[bool] = []  # per step commit: made on the event loop's thread?
    loop_thread = threading.get_ident()

    class Watched(SQLiteStore):
        """Records the thread of each step commit."""

        def put_step(self, record: Any, owner: str, epoch: int) -> bool:
            where.append(threading.get_ident() == loop_thread)
            return super().put_step(record, owner, epoch)

    @mai.module
    async def bump(x: int) -> int:
        return x + 1

    def probe() -> None:
        where.append(threading.get_ident() == loop_thread)

    flow = mai.Sequential(bump, bump, bump, name="bumps")
    async with mai.Runtime(Watched(f"sqlite:///{tmp_path / 'lone.db'}")) as rt:
        assert await (await rt.start(flow, 0, run_id="alone")).result() == 3
        # (the run's first commit may meet the runtime's own tasks starting, and hop)
        assert len(where) == 3
        assert where[1:] == [True, True]
        where.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)  # a task ready to run, not run yet
            await rt.executor.write(probe)
        assert where == [False]  # it went to the store thread: the loop stayed free


async def test_a_long_run_of_inline_commits_still_hands_the_loop_to_other_tasks() -> None:
    """Commits made on the loop's thread do not starve other tasks: they run mid-run."""
    committed = 0
    seen: list[int] = []  # the number of steps done each time the other task ran
    steps = 5000

    @mai.module
    async def count(x: int) -> int:
        nonlocal committed
        committed += 1
        return x + 1

    @mai.module
    async def many(n: int) -> int:
        x = 0
        for _ in range(n):
            x = await count(x)
        return x

    async def other(stop: trio.Event) -> None:
        while not stop.is_set():
            seen.append(committed)
            await trio.lowlevel.checkpoint()

    stop = trio.Event()
    async with mai.Runtime(f"memory://pacing-{next(_names)}") as rt, trio.open_nursery() as n:
        n.start_soon(other, stop)
        assert await (await rt.start(many, steps, run_id="long")).result() == steps
        stop.set()
    assert any(0 < done < steps for done in seen), "no other task ran while the run committed"
