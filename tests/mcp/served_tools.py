"""Modules the MCP server tests serve (``mai mcp serve tests/mcp/served_tools.py:TOOLS``)."""

from __future__ import annotations

import os

import trio
from pydantic import BaseModel

import mai


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    days: int
    summary: str


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@mai.module
async def forecast(city: str, days: int = 3) -> Forecast:
    """Forecast the weather of a city.

    Args:
        city: The city's name.
        days: How many days ahead.
    """
    return Forecast(city=city, days=days, summary=f"sunny in {city} for {days} days")


@mai.module
async def refuse(reason: str) -> str:
    """Always ask the caller to try again."""
    raise mai.ModelRetry(f"try again: {reason}")


ATTEMPTS: dict[str, int] = {}


@mai.module(retries=2, backoff=0)
async def flaky(key: str) -> str:
    """Fail twice per key, then succeed (the module's retries make it succeed)."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} failed")
    return f"{key} after {ATTEMPTS[key]} attempts"


@mai.module(timeout=0.2)
async def too_slow() -> str:
    """Never finishes within its timeout."""
    await trio.sleep_forever()
    return "unreachable"


STARTED = trio.Event()
CANCELLED = trio.Event()


@mai.module
async def wait_forever() -> str:
    """Wait until cancelled (records start and cancellation for the tests)."""
    STARTED.set()
    fifo = os.environ.get("SERVED_FIFO")
    if fifo:  # a test in another process waits for this line
        async with await trio.open_file(fifo, "w") as f:
            await f.write(f"{os.getpid()}\n")
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        CANCELLED.set()
        raise
    return "unreachable"


TOOLS = [add, forecast, refuse, flaky, too_slow, wait_forever]
