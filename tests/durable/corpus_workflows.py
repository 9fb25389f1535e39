"""Workflows whose recorded histories form the replay corpus (tests/durable/corpus/*.json).

Every body counts its executions in ``EXECUTED``: replaying a complete history must execute
nothing. ``changed`` is the deliberately changed workflow: its history was recorded with the
old version (``MAI_CORPUS_OLD=1`` at import), and the current code must refuse to resume it.
"""

from __future__ import annotations

import os
from collections import Counter

import trio
import trio.lowlevel

import mai

EXECUTED: Counter[str] = Counter()


@mai.module
async def double(x: int) -> int:
    """Twice x."""
    EXECUTED["double"] += 1
    return 2 * x


@mai.module
async def spread(x: int) -> list[int]:
    """A few numbers from x."""
    EXECUTED["spread"] += 1
    return [x, x + 1, x + 2, x + 3]


@mai.module
def label(x: int) -> str:
    """A sync step (runs in a thread)."""
    EXECUTED["label"] += 1
    return f"item-{x}"


@mai.module
async def is_big(x: int) -> bool:
    """A module predicate."""
    EXECUTED["is_big"] += 1
    return x > 10


@mai.module
async def jittery(x: int) -> int:
    """Yields to the scheduler so branches finish in random order."""
    EXECUTED["jittery"] += 1
    await trio.lowlevel.checkpoint()
    return x + 100


@mai.module
async def agentic(x: int) -> dict[str, object]:
    """Plain code between steps, with the recorded primitives."""
    EXECUTED["agentic"] += 1
    first = await double(x)
    t = mai.now()
    pick = mai.random().randint(0, 1000)
    await mai.sleep(0.001)
    both = await mai.Parallel(double, jittery)(first + pick % 3)
    return {"first": first, "both": list(both), "pick": pick, "t": t}


fanout = mai.Sequential(spread, mai.Map(mai.Sequential(double, jittery)), name="fanout")
routed = mai.Sequential(
    double,
    mai.Conditional(is_big, label, double),
    name="routed",
)
looped = mai.Loop(double, until=lambda x: x > 100, max_iterations=20, name="looped")
parallel = mai.Parallel(a=double, b=jittery, c=label, name="parallel")

if os.environ.get("MAI_CORPUS_OLD"):
    changed = mai.Sequential(double, jittery, name="changed")
else:
    changed = mai.Sequential(jittery, double, name="changed")  # steps swapped: incompatible

WORKFLOWS = {
    "fanout": (fanout, 3),
    "routed": (routed, 7),
    "looped": (looped, 3),
    "parallel": (parallel, 5),
    "agentic": (agentic, 4),
    "changed": (changed, 2),
}
