"""Deadlines: the claims of the Concepts page about timeouts and cancellation, checked.

Run: ``python docs/examples/concepts_deadlines.py``. The async part runs on Trio's
``MockClock`` (virtual time, so the exact times below are exact); the sync part uses real time.
"""

from __future__ import annotations

import threading
import time

import trio
import trio.testing

import mai
from mai import Context


# [start effective]
@mai.module
async def remaining() -> float:
    return Context.get().deadline - trio.current_time()


@mai.module(timeout=1)
async def one_second() -> float:
    return await remaining()


@mai.module(timeout=60)
async def sixty_seconds() -> float:
    return await remaining()


@mai.module(timeout=3)
async def three_seconds(inner: mai.Module) -> float:
    return await inner()


async def effective_deadline() -> None:
    # A timeout becomes min(parent deadline, now + timeout).
    assert await one_second() == 1
    assert await sixty_seconds() == 60
    assert await three_seconds(one_second) == 1  # its own 1 s is tighter
    assert await three_seconds(sixty_seconds) == 3  # the parent's 3 s is tighter


# [end effective]


# [start named]
@mai.module
async def search(query: str) -> str:
    await trio.sleep(10)  # a slow tool call
    return query


@mai.module(timeout=2)
async def quick_search(query: str) -> str:
    return await search(query)


@mai.module(timeout=5)
async def answer(query: str, tool: mai.Module) -> str:
    return await tool(query)


async def who_is_named() -> None:
    # quick_search's own 2 s deadline fires first: quick_search's scope raises, naming it.
    start = trio.current_time()
    try:
        await answer("mai", quick_search)
    except mai.DeadlineExceeded as err:
        print(err)
        assert str(err) == (
            "module 'quick_search' (step 1.1) exceeded its timeout of 2s; "
            "still running: 'search' (step 1.1.1)"
        )
        assert err.module_name == "quick_search"
        assert err.step_id == "1.1"
        assert err.running == "search"  # the innermost module that was running
        assert err.running_calls == (("1.1.1", "search"),)
        assert trio.current_time() - start == 2
    else:
        raise AssertionError("expected DeadlineExceeded")

    # search has no timeout of its own: answer's 5 s deadline fires, and answer's own scope
    # raises the error. search only sees the cancellation.
    start = trio.current_time()
    try:
        await answer("mai", search)
    except mai.DeadlineExceeded as err:
        print(err)
        assert str(err) == (
            "module 'answer' (step 1) exceeded its timeout of 5s; "
            "still running: 'search' (step 1.1)"
        )
        assert err.module_name == "answer"
        assert err.running == "search"
        assert isinstance(err, TimeoutError)
        assert trio.current_time() - start == 5
    else:
        raise AssertionError("expected DeadlineExceeded")


# [end named]


@mai.module
async def budgeted(query: str) -> str:
    # Context.set(deadline=) bounds the module calls made under it ...
    Context.set(deadline=trio.current_time() + 1)
    await trio.sleep(2)  # ... not the body's own awaits: this sleep runs to its end,
    return await search(query)  # but this call starts past the deadline and fails at once


async def context_deadline() -> None:
    start = trio.current_time()
    try:
        await budgeted("mai")
    except mai.DeadlineExceeded as err:
        print(err)
        assert str(err) == "module 'search' (step 1.1) ran past the deadline set by 'budgeted'"
        assert err.module_name == "budgeted"
        assert trio.current_time() - start == 2
    else:
        raise AssertionError("expected DeadlineExceeded")

    # A deadline only ever gets tighter.
    now = trio.current_time()
    outer = Context.set(deadline=now + 10)
    inner = Context.set(deadline=now + 100)
    assert Context.get().deadline == now + 10
    Context.reset(inner)
    Context.reset(outer)

    # A cancel scope of your own is honoured, and stays yours: its expiry is a plain
    # cancellation, never turned into DeadlineExceeded.
    with trio.move_on_after(1) as scope:
        await search("mai")
    assert scope.cancelled_caught


stopped_at = threading.Event()


@mai.module(timeout=0.05)
def crunch(n: int) -> int:
    # A sync body runs in a worker thread, which cannot be interrupted: poll is_cancelled().
    total = 0
    for i in range(n):
        if mai.is_cancelled():
            stopped_at.set()
            return total
        time.sleep(0.005)
        total += i
    return total


async def sync_bodies() -> None:
    start = time.monotonic()
    try:
        await crunch(10_000)  # would take 50 s
    except mai.DeadlineExceeded as err:
        print(err)
        released_after = time.monotonic() - start
        assert released_after < 1  # the caller is released at the deadline
    else:
        raise AssertionError("expected DeadlineExceeded")
    # The thread notices on its next poll and returns early.
    assert await trio.to_thread.run_sync(stopped_at.wait, 5)


async def main() -> None:
    await effective_deadline()
    await who_is_named()
    await context_deadline()


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(sync_bodies)
    print("deadlines: every claim holds")
