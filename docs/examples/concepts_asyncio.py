"""Running on asyncio: the same modules, under ``asyncio.run`` and ``mai.run(backend=...)``.

Run: ``python docs/examples/concepts_asyncio.py``.
"""

from __future__ import annotations

import asyncio

import anyio

import mai


@mai.module
async def fetch(url: str) -> str:
    await anyio.sleep(0.01)  # anyio works under both Trio and asyncio
    return f"<html>{url}</html>"


@mai.module(inline=True)
def size(page: str) -> int:
    return len(page)


@mai.module(timeout=0.05)
async def too_slow(url: str) -> str:
    await anyio.sleep(10)
    return url


pipeline = mai.Map(fetch >> size) >> sum


async def main() -> None:
    # Inside an asyncio application (FastAPI, the openai SDK, ...): just await.
    assert await pipeline(["a.example", "bb.example"]) == 45
    try:
        await too_slow("a.example")
    except mai.DeadlineExceeded as err:  # deadlines work the same way
        print(err)
    else:
        raise AssertionError("expected DeadlineExceeded")


if __name__ == "__main__":
    asyncio.run(main())
    # From synchronous code: mai.run starts the event loop (Trio unless told otherwise).
    assert mai.run(pipeline, ["a.example"], backend="asyncio") == 22
    assert mai.run(pipeline, ["a.example"]) == 22
    print("asyncio: every claim holds")
