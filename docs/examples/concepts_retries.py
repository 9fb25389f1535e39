"""Retries and backoff: the claims of the Concepts page, checked on Trio's virtual clock.

Run: ``python docs/examples/concepts_retries.py``.
"""

from __future__ import annotations

import trio
import trio.testing

import mai
from mai import Context

# [start record]
attempts: list[tuple[float, int]] = []


def record() -> None:
    attempts.append((trio.current_time(), Context.get().retry_count))


# [end record]


@mai.module(retries=3, backoff=mai.Backoff(initial=1, factor=2))
async def fetch(url: str) -> str:
    record()
    raise ConnectionError(f"{url} is down")


async def backoff_and_note() -> None:
    attempts.clear()
    start = trio.current_time()
    try:
        await fetch("https://example.invalid")
    except ConnectionError as err:  # the body's own exception, unchanged
        print(repr(err), err.__notes__)
        assert err.__notes__ == ["mai: module 'fetch' gave up after 4 attempts"]
    else:
        raise AssertionError("expected ConnectionError")
    # Four attempts, retry_count 0..3, separated by 1 s, 2 s and 4 s of backoff.
    assert [(t - start, n) for t, n in attempts] == [(0, 0), (1, 1), (3, 2), (7, 3)]


@mai.module(timeout=2.5, retries=5, backoff=mai.Backoff(initial=1, factor=2))
async def fetch_within(url: str) -> str:
    record()
    raise ConnectionError(f"{url} is down")


async def timeout_covers_all_attempts() -> None:
    attempts.clear()
    start = trio.current_time()
    try:
        await fetch_within("https://example.invalid")
    except mai.DeadlineExceeded as err:
        print(err)
    else:
        raise AssertionError("expected DeadlineExceeded")
    # Attempts at 0 s and 1 s; the 2 s backoff after the second is cut off at the 2.5 s deadline.
    assert [t - start for t, _ in attempts] == [0, 1]
    assert trio.current_time() - start == 2.5


# [start retry_on]
@mai.module(retries=3, retry_on=ConnectionError)
async def parse(text: str) -> int:
    record()
    raise KeyError(text)


async def retry_on() -> None:
    attempts.clear()
    try:
        await parse("x")
    except KeyError as err:
        assert not hasattr(err, "__notes__")  # one attempt: nothing was given up
    else:
        raise AssertionError("expected KeyError")
    assert len(attempts) == 1  # KeyError is not a ConnectionError: no retry


@mai.module(timeout=1)
async def slow_tool(x: int) -> int:
    await trio.sleep(10)
    return x


@mai.module(retries=2)
async def agent_step(x: int) -> int:
    record()
    return await slow_tool(x)


@mai.module(retries=2, retry_on=lambda exc: isinstance(exc, TimeoutError))
async def stubborn_step(x: int) -> int:
    record()
    return await slow_tool(x)


async def deadlines_are_not_retried() -> None:
    attempts.clear()
    try:
        await agent_step(1)
    except mai.DeadlineExceeded as err:
        assert err.module_name == "slow_tool"
    else:
        raise AssertionError("expected DeadlineExceeded")
    assert len(attempts) == 1  # by default a fired deadline is final

    attempts.clear()
    try:
        await stubborn_step(1)
    except mai.DeadlineExceeded as err:
        assert err.__notes__ == ["mai: module 'stubborn_step' gave up after 3 attempts"]
    else:
        raise AssertionError("expected DeadlineExceeded")
    assert len(attempts) == 3  # a predicate can opt in


# [end retry_on]


async def main() -> None:
    await backoff_and_note()
    await timeout_covers_all_attempts()
    await retry_on()
    await deadlines_are_not_retried()
    print("retries: every claim holds")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
