"""Deadlines and retries, on the virtual clock (threads on the real clock with short bounds)."""

import threading
import time

import pytest
import trio

import mai


def _nested(outer_timeout: float, inner_timeout: float, seen: dict) -> mai.Module:
    """An ``outer`` module (with its timeout) that calls a never-ending ``inner`` one."""

    @mai.module(timeout=inner_timeout)
    async def inner() -> None:
        seen["inner_deadline"] = mai.Context.get().deadline
        await trio.sleep(100)

    @mai.module(timeout=outer_timeout)
    async def outer() -> None:
        seen["outer_deadline"] = mai.Context.get().deadline
        await inner()

    return outer


# ---------------------------------------------------------------------------------------------
# 5. deadlines
# ---------------------------------------------------------------------------------------------


async def test_outer_deadline_bounds_a_looser_inner_timeout(autojump_clock):
    """An inner timeout=5 under an outer timeout=3 fails at exactly t=3 with DeadlineExceeded."""
    seen = {}
    outer = _nested(3, 5, seen)
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await outer()
    assert trio.current_time() - start == 3
    err = info.value
    assert isinstance(err, mai.MaiError)
    assert isinstance(err, TimeoutError)


async def test_deadline_error_names_the_module_whose_deadline_fired(autojump_clock):
    """The DeadlineExceeded from an inherited deadline names the outer module that set it."""
    outer = _nested(3, 5, {})
    with pytest.raises(mai.DeadlineExceeded) as info:
        await outer()
    assert info.value.module_name == "outer"
    assert "'outer'" in str(info.value)


async def test_deadline_error_names_the_innermost_running_module(autojump_clock):
    """DeadlineExceeded.running names the innermost module that was running when it fired."""
    outer = _nested(3, 5, {})
    with pytest.raises(mai.DeadlineExceeded) as info:
        await outer()
    assert info.value.running == "inner"


async def test_context_deadline_shows_the_effective_deadline(autojump_clock):
    """Context.get().deadline inside shows the tightest deadline on the Trio clock (start + 3)."""
    seen = {}
    outer = _nested(3, 5, seen)
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded):
        await outer()
    assert seen["outer_deadline"] == start + 3
    assert seen["inner_deadline"] == start + 3


async def test_own_tightest_timeout_fires_naming_itself(autojump_clock):
    """A module whose own timeout is tightest fails at that timeout, naming itself."""
    seen = {}
    outer = _nested(5, 2, seen)
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await outer()
    assert trio.current_time() - start == 2
    assert info.value.module_name == "inner"
    assert "'inner'" in str(info.value)
    assert info.value.timeout == 2
    assert seen["inner_deadline"] == start + 2
    assert seen["outer_deadline"] == start + 5


async def test_single_module_timeout(autojump_clock):
    """A lone module with timeout=4 fails at exactly t=4 naming itself; a quick one succeeds."""

    @mai.module(timeout=4)
    async def slow(x: int) -> int:
        await trio.sleep(x)
        return x

    start = trio.current_time()
    assert await slow(3) == 3
    assert trio.current_time() - start == 3
    with pytest.raises(mai.DeadlineExceeded) as info:
        await slow(10)
    assert trio.current_time() - start == 7
    assert info.value.module_name == "slow"


async def test_timeout_from_with_applies(autojump_clock):
    """A timeout given with with_() is enforced, the original stays unbounded."""

    @mai.module
    async def nap() -> str:
        await trio.sleep(10)
        return "rested"

    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded):
        await nap.with_(timeout=1)()
    assert trio.current_time() - start == 1
    assert await nap() == "rested"
    assert trio.current_time() - start == 11


async def test_context_set_deadline_bounds_calls(autojump_clock):
    """A deadline set with Context.set bounds module calls made under it."""

    @mai.module(timeout=10)
    async def nap() -> None:
        await trio.sleep(100)

    start = trio.current_time()
    token = mai.Context.set(deadline=start + 1.5)
    try:
        with pytest.raises(mai.DeadlineExceeded):
            await nap()
    finally:
        mai.Context.reset(token)
    assert trio.current_time() - start == 1.5


@mai.module
async def _nap(x: object) -> object:
    await trio.sleep(100)
    return x


@pytest.mark.parametrize(
    ("composite", "arg"),
    [
        (mai.Parallel(_nap, _nap), 1),
        (mai.Map(_nap), [1, 2, 3]),
        (mai.Map(_nap, max_concurrency=2), [1, 2, 3]),
        (mai.Race(_nap, _nap), 1),
        (mai.Sequential(_nap, _nap), 1),
        (mai.Loop(_nap, max_iterations=3), 1),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_composite_timeout_is_a_deadline_not_a_group(composite, arg, autojump_clock):
    """A timeout on a composite cancels its children and raises one DeadlineExceeded then."""
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await composite.with_(timeout=3, name="bounded")(arg)
    assert trio.current_time() - start == 3
    assert info.value.module_name == "bounded"


async def test_outside_cancel_scope_is_not_turned_into_deadline_exceeded(autojump_clock):
    """A caller's own trio cancel scope cancels a module without a DeadlineExceeded."""

    @mai.module(timeout=10)
    async def nap() -> None:
        await trio.sleep(100)

    start = trio.current_time()
    with trio.move_on_after(2) as scope:
        await nap()
    assert scope.cancelled_caught
    assert trio.current_time() - start == 2


async def test_sync_body_releases_caller_at_deadline_and_sees_cancellation():
    """A sync body past its deadline releases the caller at once and observes is_cancelled()."""
    saw_cancel = threading.Event()
    record = {}

    @mai.module(timeout=0.2)
    def grind() -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            if mai.is_cancelled():
                record["seen_at"] = time.monotonic()
                saw_cancel.set()
                return "stopped"
            time.sleep(0.01)
        return "finished"

    t0 = time.monotonic()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await grind()
    released_after = time.monotonic() - t0
    assert info.value.module_name == "grind"
    assert 0.19 <= released_after < 1.5
    observed = await trio.to_thread.run_sync(saw_cancel.wait, 3)
    assert observed
    assert 0.19 <= record["seen_at"] - t0 < 1.5


async def test_is_cancelled_is_false_in_a_healthy_sync_body():
    """is_cancelled() is False in a sync body that is within its deadline."""

    @mai.module(timeout=5)
    def check() -> bool:
        return mai.is_cancelled()

    assert await check() is False


# ---------------------------------------------------------------------------------------------
# 7. retries
# ---------------------------------------------------------------------------------------------


async def test_retries_back_off_exponentially(autojump_clock):
    """retries=3, backoff=1 tries at t=0, 1, 3, 7 (delays 1, 2, 4) and then raises."""
    times = []

    @mai.module(retries=3, backoff=1)
    async def flaky() -> None:
        times.append(trio.current_time())
        raise ValueError("nope")

    start = trio.current_time()
    with pytest.raises(ValueError, match="nope"):
        await flaky()
    assert [t - start for t in times] == [0, 1, 3, 7]


async def test_retry_succeeds_after_failures(autojump_clock):
    """A call that fails twice then succeeds returns the success after the backoff delays."""
    attempts = []

    @mai.module(retries=3, backoff=1)
    async def flaky() -> int:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ConnectionError
        return len(attempts)

    start = trio.current_time()
    assert await flaky() == 3
    assert trio.current_time() - start == 3


async def test_retry_count_is_visible_inside(autojump_clock):
    """Context.get().retry_count is 0 on the first attempt, then 1, 2, 3."""
    counts = []

    @mai.module(retries=3, backoff=1)
    async def flaky() -> None:
        counts.append(mai.Context.get().retry_count)
        raise ValueError

    with pytest.raises(ValueError):
        await flaky()
    assert counts == [0, 1, 2, 3]


async def test_retry_count_is_visible_in_a_sync_body():
    """A sync body in a worker thread sees retry_count 0, 1, 2."""
    counts = []

    @mai.module(retries=2, backoff=0)
    def flaky() -> None:
        counts.append(mai.Context.get().retry_count)
        raise ValueError

    with pytest.raises(ValueError):
        await flaky()
    assert counts == [0, 1, 2]


async def test_retry_on_limits_which_exceptions_are_retried(autojump_clock):
    """retry_on limits retries: a non-matching exception is raised after one attempt."""
    attempts = []

    @mai.module(retries=3, backoff=1, retry_on=ConnectionError)
    async def picky(exc: type) -> None:
        attempts.append(trio.current_time())
        raise exc

    with pytest.raises(KeyError):
        await picky(KeyError)
    assert len(attempts) == 1
    attempts.clear()
    with pytest.raises(ConnectionError):
        await picky(ConnectionError)
    assert len(attempts) == 4


async def test_retry_on_predicate(autojump_clock):
    """retry_on may be a predicate on the exception."""
    attempts = []

    @mai.module(retries=2, backoff=0, retry_on=lambda e: "again" in str(e))
    async def picky(msg: str) -> None:
        attempts.append(msg)
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError):
        await picky("stop")
    assert attempts == ["stop"]
    with pytest.raises(RuntimeError):
        await picky("again")
    assert attempts == ["stop", "again", "again", "again"]


async def test_backoff_never_sleeps_past_the_deadline(autojump_clock):
    """timeout=2.5, retries=5, backoff=1 fails with DeadlineExceeded at exactly t=2.5."""
    times = []

    @mai.module(timeout=2.5, retries=5, backoff=1)
    async def flaky() -> None:
        times.append(trio.current_time())
        raise ValueError

    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await flaky()
    assert trio.current_time() - start == 2.5
    assert [t - start for t in times] == [0, 1]
    assert info.value.module_name == "flaky"


async def test_backoff_never_sleeps_past_an_inherited_deadline(autojump_clock):
    """Retries under an outer timeout=2.5 stop at exactly t=2.5, naming the outer module."""
    times = []

    @mai.module(retries=5, backoff=1)
    async def flaky() -> None:
        times.append(trio.current_time())
        raise ValueError

    @mai.module(timeout=2.5)
    async def outer() -> None:
        await flaky()

    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await outer()
    assert trio.current_time() - start == 2.5
    assert [t - start for t in times] == [0, 1]
    assert info.value.module_name == "outer"


async def test_deadline_exceeded_is_not_retried(autojump_clock):
    """An inner DeadlineExceeded is not retried by default: the outer module gives up at once."""
    attempts = []

    @mai.module(timeout=1)
    async def inner() -> None:
        await trio.sleep(10)

    @mai.module(retries=3, backoff=1)
    async def outer() -> None:
        attempts.append(trio.current_time())
        await inner()

    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded):
        await outer()
    assert attempts == [start]
    assert trio.current_time() - start == 1


# ---------------------------------------------------------------------------------------------
# issue 10: a deadline on a composite names the innermost calls still running, on both backends
# ---------------------------------------------------------------------------------------------


def _napper(name: str, seconds: float) -> mai.Module:
    """A module named ``name`` that sleeps ``seconds`` (anyio, so it runs on every backend)."""
    import anyio

    @mai.module(name=name)
    async def body(x: object) -> object:
        await anyio.sleep(seconds)
        return x

    return body


def test_sequential_deadline_names_the_slow_step(autojump_run_on):
    """A Sequential's timeout names the slow step still running, at exactly t=1, both backends."""
    import anyio

    async def main():
        seq = mai.Sequential(_napper("fast", 0.5), _napper("slow", 10)).with_(timeout=1)
        start = anyio.current_time()
        with pytest.raises(mai.DeadlineExceeded) as info:
            await seq(0)
        return info.value, anyio.current_time() - start

    err, took = autojump_run_on(main)
    assert took == 1
    assert err.module_name == "Sequential"
    assert err.running == "slow"
    assert err.running_calls == (("1.2", "slow"),)
    assert "still running: 'slow' (step 1.2)" in str(err)


def test_parallel_deadline_names_every_slow_branch(autojump_run_on):
    """A Parallel's timeout names every branch still running (not the composite), both backends."""

    async def main():
        par = mai.Parallel(_napper("a", 10), _napper("b", 0.5), _napper("c", 20), name="par")
        with pytest.raises(mai.DeadlineExceeded) as info:
            await par.with_(timeout=1)(0)
        return info.value

    err = autojump_run_on(main)
    assert err.module_name == "par"
    assert err.running == "a"
    assert err.running_calls == (("1.1", "a"), ("1.3", "c"))
    assert "'a' (step 1.1)" in str(err)
    assert "'c' (step 1.3)" in str(err)


def test_map_deadline_in_nested_composites_names_the_leaves(autojump_run_on):
    """A deadline on an outer Sequential names each Map item still running, both backends."""

    @mai.module
    async def items(n: int) -> list[int]:
        return list(range(n))

    async def main():
        import anyio

        @mai.module
        async def work(i: int) -> int:
            await anyio.sleep(0.5 if i == 1 else 5)
            return i

        flow = mai.Sequential(items, mai.Map(work)).with_(timeout=2, name="flow")
        with pytest.raises(mai.DeadlineExceeded) as info:
            await flow(3)
        return info.value

    err = autojump_run_on(main)
    assert err.module_name == "flow"
    assert err.running_calls == (("1.2.1", "work"), ("1.2.3", "work"))


def test_failed_trace_shows_no_exception_group(autojump_run_on):
    """The trace of a run cut by a deadline shows no raw exception group, the same on both."""

    async def main():
        par = mai.Parallel(_napper("a", 10), _napper("b", 10), name="par")
        flow = mai.Sequential(par, _napper("after", 0)).with_(timeout=1)
        with pytest.raises(mai.DeadlineExceeded) as info:
            await mai.trace(flow, 0)
        return mai.TraceHandle.of(info.value)

    trace = autojump_run_on(main)
    rows = [(s.step_id, s.name, s.status, s.error_type) for s in trace.spans]
    assert all("Group" not in (s.error_type or "") for s in trace.spans), rows
    by_name = {s.name: s for s in trace.spans}
    assert by_name["par"].status == "timed_out"
    assert by_name["par"].error_type == "Cancelled"
    assert by_name["a"].status == "timed_out"
    assert by_name["b"].status == "timed_out"
    assert by_name["a"].error_type == by_name["b"].error_type == "Cancelled"
    assert by_name["Sequential"].error_type == "mai.DeadlineExceeded"
    assert "Group" not in trace.render()
