"""The kernel's promises hold on every backend it claims: Trio and asyncio.

Each test is a sync function that runs its async body with ``anyio.run(..., backend=...)``, so
no pytest plugin other than pytest-trio is involved. Bodies use ``anyio`` primitives only, and
timed checks use the real clock with small values and loose upper bounds.
"""

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import mai

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(params=["trio", "asyncio"])
def run_on(request: pytest.FixtureRequest) -> Runner:
    """Run an async function to completion on each backend in turn."""

    def run(fn: Callable[[], Awaitable[Any]]) -> Any:
        return anyio.run(fn, backend=request.param)

    run.backend = request.param  # type: ignore[attr-defined]
    return run


@mai.module
async def as_text(x: int) -> str:
    return str(x)


@mai.module
def plus_one(x: int) -> int:
    return x + 1


@mai.module
async def twice(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


def _sleeper(name: str, seconds: float, value: object, log: list) -> mai.Module:
    @mai.module(name=name)
    async def body(_: object) -> object:
        await anyio.sleep(seconds)
        log.append(name)
        return value

    return body


def _failer(name: str, seconds: float, exc: Exception) -> mai.Module:
    @mai.module(name=name)
    async def body(_: object) -> None:
        await anyio.sleep(seconds)
        raise exc

    return body


def test_sequential(run_on):
    """Sequential and >> chain outputs to inputs, casting on the way, on every backend."""

    async def main():
        return await mai.Sequential(as_text, plus_one, twice)(3), await (as_text >> plus_one)(4)

    assert run_on(main) == (8, 5)


def test_parallel(run_on):
    """Parallel returns a tuple or a dict on every backend."""

    async def main():
        return (
            await mai.Parallel(plus_one, twice)(5),
            await mai.Parallel(a=plus_one, b=twice)(5),
        )

    assert run_on(main) == ((6, 10), {"a": 6, "b": 10})


def test_parallel_first_failure_cancels_siblings(run_on):
    """The first failing branch cancels its siblings and surfaces unchanged, on every backend."""
    log = []

    async def main():
        par = mai.Parallel(_sleeper("slow", 10, "done", log), _failer("bad", 0.01, KeyError("k")))
        t0 = time.monotonic()
        with pytest.raises(KeyError):
            await par(None)
        return time.monotonic() - t0

    assert run_on(main) < 1
    assert log == []


def test_map(run_on):
    """Map keeps input order and honours max_concurrency on every backend."""
    state = {"now": 0, "peak": 0}

    @mai.module
    async def work(x: int) -> int:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await anyio.sleep(0.01 * (5 - x))
        state["now"] -= 1
        return x * 10

    async def main():
        return await mai.Map(work, max_concurrency=2)([1, 2, 3, 4])

    assert run_on(main) == [10, 20, 30, 40]
    assert state["peak"] == 2


def test_race(run_on):
    """Race returns the first success and cancels the rest on every backend."""
    log = []

    async def main():
        return await mai.Race(_sleeper("slow", 10, "slow", log), _sleeper("fast", 0, "fast", log))(
            None
        )

    assert run_on(main) == "fast"
    assert log == ["fast"]


def test_race_all_fail(run_on):
    """A Race whose branches all fail raises an ExceptionGroup of them on every backend."""

    async def main():
        await mai.Race(_failer("a", 0, ValueError("a")), _failer("b", 0.01, KeyError("b")))(None)

    with pytest.raises(ExceptionGroup) as info:
        run_on(main)
    assert sorted(type(e).__name__ for e in info.value.exceptions) == ["KeyError", "ValueError"]


def test_conditional(run_on):
    """Conditional routes by a plain function or a module predicate on every backend."""
    is_big = mai.module(lambda x: x > 10)

    async def main():
        by_fn = mai.Conditional(lambda x: x > 0, plus_one, twice)
        by_module = mai.Conditional(is_big, twice, plus_one)
        return await by_fn(1), await by_fn(-1), await by_module(20), await by_module(1)

    assert run_on(main) == (2, -2, 40, 2)


def test_loop(run_on):
    """Loop stops when until holds and raises LoopLimitExceeded past max_iterations."""

    async def main():
        done = await mai.Loop(twice, until=lambda x: x >= 8, max_iterations=10)(1)
        with pytest.raises(mai.LoopLimitExceeded):
            await mai.Loop(twice, until=lambda x: x < 0, max_iterations=3)(1)
        return done

    assert run_on(main) == 8


def test_parallel_branch_context_isolation(run_on):
    """A Parallel branch's Context.set leaks to neither siblings nor parent on every backend."""

    @mai.module
    async def setter() -> str:
        mai.Context.set(metadata={"who": "setter"})
        await anyio.sleep(0.02)
        return mai.Context.get().metadata["who"]

    @mai.module
    async def sibling() -> object:
        await anyio.sleep(0.01)
        return mai.Context.get().metadata.get("who")

    @mai.module
    async def parent() -> tuple:
        mai.Context.set(metadata={"who": "parent"})
        branches = await mai.Parallel(setter, sibling)()
        return branches, mai.Context.get().metadata["who"]

    async def main():
        result = await parent()
        return result, mai.Context.get().metadata.get("who")

    assert run_on(main) == ((("setter", "parent"), "parent"), None)


def test_metadata_flows_down(run_on):
    """Metadata set by the caller reaches async and sync modules nested below on every backend."""

    @mai.module
    def leaf() -> str:
        return mai.Context.get().metadata["user"]

    @mai.module
    async def top() -> tuple:
        return await mai.Parallel(leaf, mai.Sequential(leaf))()

    async def main():
        token = mai.Context.set(metadata={"user": "ada"})
        try:
            return await top()
        finally:
            mai.Context.reset(token)

    assert run_on(main) == ("ada", "ada")


def test_timeout_fires(run_on):
    """A module's timeout raises DeadlineExceeded naming it, promptly, on every backend."""

    @mai.module(timeout=0.05)
    async def nap() -> None:
        await anyio.sleep(10)

    async def main():
        t0 = time.monotonic()
        with pytest.raises(mai.DeadlineExceeded) as info:
            await nap()
        return info.value, time.monotonic() - t0

    err, elapsed = run_on(main)
    assert isinstance(err, TimeoutError)
    assert err.module_name == "nap"
    assert elapsed < 1


def test_inherited_timeout_names_the_outer_module(run_on):
    """An outer deadline tighter than the inner timeout fires naming the outer module."""

    @mai.module(timeout=5)
    async def inner() -> None:
        await anyio.sleep(10)

    @mai.module(timeout=0.05)
    async def outer() -> None:
        await inner()

    async def main():
        t0 = time.monotonic()
        with pytest.raises(mai.DeadlineExceeded) as info:
            await outer()
        return info.value, time.monotonic() - t0

    err, elapsed = run_on(main)
    assert err.module_name == "outer"
    assert elapsed < 1


def test_retry_count_visible(run_on):
    """retry_count is 0, 1, 2 on successive attempts on every backend."""
    counts = []

    @mai.module(retries=2, backoff=0.001)
    async def flaky() -> None:
        counts.append(mai.Context.get().retry_count)
        raise ValueError

    async def main():
        with pytest.raises(ValueError):
            await flaky()

    run_on(main)
    assert counts == [0, 1, 2]


def test_delays(run_on):
    """BlockingDelay pauses its branch and NonBlockingDelay's work finishes before the call ends."""
    log = []

    @mai.module
    async def later(x: int) -> None:
        log.append(("later", x))

    async def main():
        seq = mai.Sequential(mai.BlockingDelay(0.01), mai.NonBlockingDelay(0.02, later), twice)
        result = await seq(4)
        log.append(("returned", result))

    run_on(main)
    assert log == [("later", 4), ("returned", 8)]


def test_sync_body_released_at_deadline(run_on):
    """A sync body past its deadline releases the caller and sees is_cancelled() (both backends)."""
    saw_cancel = threading.Event()

    @mai.module(timeout=0.05)
    def grind() -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            if mai.is_cancelled():
                saw_cancel.set()
                return "stopped"
            time.sleep(0.01)
        return "finished"

    async def main():
        t0 = time.monotonic()
        with pytest.raises(mai.DeadlineExceeded) as info:
            await grind()
        return info.value, time.monotonic() - t0

    err, elapsed = run_on(main)
    assert err.module_name == "grind"
    assert elapsed < 1
    assert saw_cancel.wait(2)


def test_parallel_timeout(run_on):
    """A timeout on a Parallel raises one DeadlineExceeded naming it (no group), both backends."""
    log = []

    async def main():
        par = mai.Parallel(_sleeper("a", 10, 1, log), _sleeper("b", 10, 2, log))
        with pytest.raises(mai.DeadlineExceeded) as info:
            await par.with_(timeout=0.05, name="par")(None)
        return info.value

    assert run_on(main).module_name == "par"
    assert log == []
