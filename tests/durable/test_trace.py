"""The trace rebuilt from a durable run reports what the in-process trace of the same call does."""

from __future__ import annotations

import itertools

import mai

_names = itertools.count()


@mai.module
async def words(text: str) -> list[str]:
    """Split a text into words."""
    return text.split()


@mai.module
async def shout(word: str) -> str:
    """Upper-case one word."""
    return word.upper() + "!"


@mai.module
async def count(items: list[str]) -> int:
    """Count the items."""
    return len(items)


@mai.module
async def joined(items: list[str], sep: str = " ") -> str:
    """Join the items."""
    return sep.join(items)


def _sizes(trace: mai.TraceHandle) -> dict[str, tuple[str, int, int | None, bool]]:
    return {s.step_id: (s.name, s.input_bytes, s.output_bytes, s.sizes_exact) for s in trace.spans}


async def _compare(flow: mai.Module, *args: object, **kwargs: object) -> None:
    _, live = await mai.trace(flow, *args, **kwargs)
    async with mai.Runtime(f"memory://trace-{next(_names)}") as rt:
        handle = await rt.start(flow, *args, run_id="t", **kwargs)
        await handle.result()
        rebuilt = await rt.trace("t")
    assert _sizes(rebuilt) == _sizes(live)


async def test_leaf_sizes_match_the_in_process_trace() -> None:
    """A leaf's input size counts its arguments, not the stored envelope, as in-process."""
    await _compare(joined, ["a", "b"], sep="-")


async def test_composite_sizes_match_the_in_process_trace() -> None:
    """Sequential, Map and keyed Parallel report their own input and output sizes."""
    flow = mai.Sequential(words, mai.Map(shout), mai.Parallel(n=count, text=joined), name="flow")
    await _compare(flow, "durable traces tell the truth")


async def test_tuple_parallel_sizes_match_the_in_process_trace() -> None:
    """A positional Parallel's output is the array of its branches' outputs."""
    flow = mai.Sequential(words, mai.Parallel(count, joined), name="tuple-parallel")
    await _compare(flow, "two words")
