"""Composites: the claims of the Concepts page, checked on Trio's virtual clock.

Run: ``python docs/examples/concepts_composites.py``.
"""

from __future__ import annotations

import trio
import trio.testing

import mai
from mai import Context

events: list[str] = []


@mai.module
async def double(x: int) -> int:
    return 2 * x


@mai.module
async def square(x: int) -> int:
    return x * x


async def sequential_and_parallel() -> None:
    assert await (double >> square)(3) == 36  # Sequential(double, square)
    assert await mai.Parallel(double, square)(3) == (6, 9)
    assert await mai.Parallel(d=double, s=square)(3) == {"d": 6, "s": 9}


# [start failures]
@mai.module
async def flaky_search(query: str) -> str:
    await trio.sleep(1)
    raise ConnectionError(f"search for {query!r} failed")


@mai.module
async def slow_search(query: str) -> str:
    try:
        await trio.sleep(10)
    except trio.Cancelled:
        events.append("slow_search cancelled")
        raise
    return query


async def first_failure_cancels_siblings() -> None:
    start = trio.current_time()
    try:
        await mai.Parallel(flaky_search, slow_search)("mai")
    except ConnectionError as err:  # the branch's own exception, not a group
        print(repr(err))
    else:
        raise AssertionError("expected ConnectionError")
    assert events == ["slow_search cancelled"]
    assert trio.current_time() - start == 1


@mai.module
async def parse_count(text: int) -> int:
    return text


@mai.module
async def parse_ratio(text: float) -> float:
    return text


async def several_fail_on_their_own() -> None:
    # Both branches reject the input by themselves: an ExceptionGroup holds both errors.
    try:
        await mai.Parallel(parse_count, parse_ratio)("many")
    except ExceptionGroup as group:
        print(group)
        assert sorted(type(e).__name__ for e in group.exceptions) == ["CastError", "CastError"]
    else:
        raise AssertionError("expected ExceptionGroup")


# [end failures]


@mai.module
async def fast_search(query: str) -> str:
    await trio.sleep(1)
    return f"fast: {query}"


async def race() -> None:
    events.clear()
    assert await mai.Race(slow_search, fast_search)("mai") == "fast: mai"
    assert events == ["slow_search cancelled"]


@mai.module
async def step_id_after(delay: float) -> str:
    await trio.sleep(delay)
    return Context.get().step_id


async def step_ids_from_structure() -> None:
    # The first item finishes last; ids (and result order) still follow the input.
    assert await mai.Map(step_id_after)([3, 2, 1]) == ["1.1", "1.2", "1.3"]
    pipeline = double >> mai.Parallel(step_id_after, step_id_after)
    assert await pipeline(1) == ("1.2.1", "1.2.2")


gauge = {"running": 0, "peak": 0}


@mai.module
async def tracked(x: int) -> int:
    gauge["running"] += 1
    gauge["peak"] = max(gauge["peak"], gauge["running"])
    await trio.sleep(1)
    gauge["running"] -= 1
    return x


async def map_concurrency() -> None:
    gauge["peak"] = 0
    start = trio.current_time()
    # Map's own max_concurrency bounds the items of one call that run at once.
    assert await mai.Map(tracked, max_concurrency=2)([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]
    assert gauge["peak"] == 2
    assert trio.current_time() - start == 3

    # with_(max_concurrency=) bounds how many calls of the Map itself run at once.
    gauge["peak"] = 0
    start = trio.current_time()
    one_at_a_time = mai.Map(tracked).with_(max_concurrency=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one_at_a_time, [1, 2, 3])
        nursery.start_soon(one_at_a_time, [4, 5, 6])
    assert gauge["peak"] == 3  # all items of one call, never both calls at once
    assert trio.current_time() - start == 2


async def conditional() -> None:
    def is_negative(x: int) -> bool:
        return x < 0

    absolute = mai.Conditional(is_negative, mai.module(lambda x: -x, name="negate"))
    assert await absolute(-4) == 4
    assert await absolute(4) == 4  # no ``otherwise``: the input passes through


@mai.module
async def refine(draft: str) -> str:
    return draft + "!"


async def loop() -> None:
    def good_enough(draft: str) -> bool:
        return draft.endswith("!!!")

    assert await mai.Loop(refine, until=good_enough)("hi") == "hi!!!"
    assert await mai.Loop(refine, max_iterations=2)("hi") == "hi!!"  # no until: exactly 2
    try:
        await mai.Loop(refine, until=good_enough, max_iterations=2)("hi")
    except mai.LoopLimitExceeded as err:
        print(err)
        assert err.max_iterations == 2
        assert err.last_value == "hi!!"
    else:
        raise AssertionError("expected LoopLimitExceeded")


notified: list[tuple[int, float]] = []


@mai.module
async def notify(x: int) -> None:
    notified.append((x, trio.current_time()))


async def delays() -> None:
    start = trio.current_time()
    # BlockingDelay pauses this branch; NonBlockingDelay passes its input on at once and
    # runs notify(input) two seconds later, in the background of the top-level call.
    pipeline = mai.BlockingDelay(1) >> double >> mai.NonBlockingDelay(2, notify) >> square
    assert await pipeline(3) == 36
    assert notified == [(6, start + 3)]  # notify ran 2 s after the delay passed 6 on ...
    assert trio.current_time() - start == 3  # ... and the top-level call waited for it


@mai.module
async def schedules(x: int) -> int:
    return await mai.NonBlockingDelay(1, notify)(x)


async def delay_limitation() -> None:
    # A plain function module nested in a composite cannot start a NonBlockingDelay.
    try:
        await (double >> schedules)(1)
    except mai.ConfigError as err:
        print(err)
    else:
        raise AssertionError("expected ConfigError")
    # Called at top level, the same module can (a leaf's top-level call always has a nursery).
    assert await schedules(1) == 1


async def main() -> None:
    await sequential_and_parallel()
    await first_failure_cancels_siblings()
    await several_fail_on_their_own()
    await race()
    await step_ids_from_structure()
    await map_concurrency()
    await conditional()
    await loop()
    await delays()
    await delay_limitation()
    print("composites: every claim holds")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
