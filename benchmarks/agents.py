"""Agent overhead, measured side by side in one run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/agents.py [--quick]``.

1. Per-turn overhead: a ``mai.Agent`` run of two model turns and one tool call against an
   in-process model, against a hand-written loop calling the same model and tool functions
   (target: at most 100 us added per turn; no tracing configured).
2. The same run against Pydantic AI's ``Agent`` with its ``FunctionModel`` on asyncio (installed
   for the benchmark only: ``pip install pydantic-ai-slim``; skipped when absent). Target: pymai
   at least 10x less time per run.
3. 1,000 concurrent agent runs (``mai.Map``) of two turns each, against the same loops
   hand-written in Trio (a nursery of 1,000 tasks). Targets: at most 3x the time, and at most
   50 KB of peak memory per concurrent agent (tracemalloc, separate pass).
4. A durable agent turn on SQLite (``synchronous=normal``): an agent of 10 turns (9 tool calls)
   run durably, against the same agent run plainly and against the raw commit floor of SQLite
   (one-row commits in WAL mode, same synchronous mode, same file system). Target: per turn, at
   most the non-durable turn plus 2x the floor per recorded step (a turn records 2 steps, its
   model request and its tool call; the last turn records 1).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import mai
from mai.agents import (
    ModelRequest,
    ModelResponse,
    ModelSettings,
    RequestParameters,
    TextPart,
    ToolCall,
    ToolReturn,
    Usage,
    UserPrompt,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

CONCURRENT = 1_000


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


ADD = mai.module(add, inline=True)

_CALL = ModelResponse(
    parts=(ToolCall(tool_name="add", args='{"a": 1, "b": 2}', tool_call_id="c1"),),
    usage=Usage(requests=1, input_tokens=10, output_tokens=5),
    model_name="bench",
    provider="bench",
    finish_reason="tool_calls",
)
_TEXT = ModelResponse(
    parts=(TextPart(content="3"),),
    usage=Usage(requests=1, input_tokens=20, output_tokens=1),
    model_name="bench",
    provider="bench",
    finish_reason="stop",
)


class BenchModel:
    """An in-process model: a tool call first, then text once a tool result is present."""

    model_name = "bench"
    provider = "bench"

    def __init__(self, *, yield_: bool = False) -> None:
        self.yield_ = yield_

    async def request(self, messages, settings, params):  # noqa: ARG002 - the protocol
        if self.yield_:
            await trio.lowlevel.checkpoint()
        last = messages[-1]
        return _TEXT if isinstance(last.parts[-1], ToolReturn) else _CALL

    def stream(self, messages, settings, params):  # pragma: no cover - not benchmarked
        raise NotImplementedError


_SETTINGS = ModelSettings()
_PARAMS = RequestParameters()


async def hand_loop(model: BenchModel, prompt: str) -> str:
    """The same run written by hand: request, run the tool, request again."""
    messages: list = [ModelRequest(parts=(UserPrompt(content=prompt),))]
    while True:
        response = await model.request(messages, _SETTINGS, _PARAMS)
        messages.append(response)
        calls = response.tool_calls
        if not calls:
            return response.text
        returns = []
        for c in calls:
            args = json.loads(c.args) if isinstance(c.args, str) else c.args
            returns.append(
                ToolReturn(tool_name=c.tool_name, tool_call_id=c.tool_call_id, content=add(**args))
            )
        messages.append(ModelRequest(parts=tuple(returns)))


def _check(ok: bool) -> None:
    if not ok:
        raise RuntimeError("the benchmark's runs did not produce the expected output")


def _best(samples: list[float]) -> float:
    samples = sorted(samples)
    return statistics.fmean(samples[: max(1, len(samples) // 4)])


async def _time_runs(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn("1+2?")
    return (time.perf_counter() - start) / n


async def per_turn(rounds: int, n: int) -> tuple[float, float]:
    model = BenchModel()
    agent = mai.Agent(model, tools=[ADD])

    async def hand(prompt: str) -> str:
        return await hand_loop(model, prompt)

    _check(await agent("1+2?") == "3")
    _check(await hand("1+2?") == "3")
    a, h = [], []
    for _ in range(rounds):
        h.append(await _time_runs(hand, n))
        a.append(await _time_runs(agent, n))
    return _best(a), _best(h)


def pydantic_ai_run_time(rounds: int, n: int) -> float | None:
    try:
        from pydantic_ai import Agent
        from pydantic_ai.messages import ModelResponse as PResponse
        from pydantic_ai.messages import TextPart as PText
        from pydantic_ai.messages import ToolCallPart, ToolReturnPart
        from pydantic_ai.models.function import FunctionModel
    except ImportError:
        return None

    def fn(messages, info):  # noqa: ARG001 - FunctionModel's signature
        last = messages[-1]
        if any(isinstance(p, ToolReturnPart) for p in last.parts):
            return PResponse(parts=[PText(content="3")])
        return PResponse(parts=[ToolCallPart(tool_name="add", args={"a": 1, "b": 2})])

    agent = Agent(FunctionModel(fn))
    agent.tool_plain(add)

    async def main() -> float:
        result = await agent.run("1+2?")
        _check(result.output == "3")
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(n):
                await agent.run("1+2?")
            samples.append((time.perf_counter() - start) / n)
        return _best(samples)

    return asyncio.run(main())


async def concurrent_hand(n: int) -> None:
    model = BenchModel(yield_=True)
    results = [None] * n

    async def one(i: int) -> None:
        results[i] = await hand_loop(model, "1+2?")

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    _check(results == ["3"] * n)


async def concurrent_agents(n: int) -> None:
    agent = mai.Agent(BenchModel(yield_=True), tools=[ADD])
    out = await mai.Map(agent)(["1+2?"] * n)
    _check(out == ["3"] * n)


def _one_run(fn, n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    trio.run(fn, n)
    return time.perf_counter() - start


def _side_by_side(rounds: int) -> tuple[float, float, float]:
    """Interleaved rounds (hand, agent, hand, agent, ...): best times and the median ratio."""
    hand, agent, ratios = [], [], []
    for _ in range(rounds):
        h = _one_run(concurrent_hand, CONCURRENT)
        a = _one_run(concurrent_agents, CONCURRENT)
        hand.append(h)
        agent.append(a)
        ratios.append(a / h)
    return _best(hand), _best(agent), statistics.median(ratios)


def _peak(fn, n: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        trio.run(fn, n)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


DURABLE_TURNS = 10


class LongModel:
    """An in-process model: tool calls until ``turns - 1`` results are present, then text."""

    model_name = "bench"
    provider = "bench"

    def __init__(self, turns: int = DURABLE_TURNS) -> None:
        self.turns = turns

    async def request(self, messages, settings, params):  # noqa: ARG002 - the protocol
        returns = sum(
            isinstance(p, ToolReturn)
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
        )
        return _TEXT if returns >= self.turns - 1 else _CALL

    def stream(self, messages, settings, params):  # pragma: no cover - not benchmarked
        raise NotImplementedError


def commit_floor(path: Path, n: int) -> float:
    """Seconds per raw one-row commit (WAL, synchronous=NORMAL), ~ the size of a step record."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (run TEXT, step TEXT, v TEXT, PRIMARY KEY (run, step))")
    t = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", ("r", str(i), "x" * 300))
        conn.execute("COMMIT")
    elapsed = (time.perf_counter() - t) / n
    conn.close()
    return elapsed


@mai.module
async def _one(x: int) -> int:
    return x + 1


@mai.module
async def _steps19(x: int) -> int:
    """As many trivial recorded steps as the 10-turn agent run records (19)."""
    for _ in range(2 * DURABLE_TURNS - 1):
        x = await _one(x)
    return x


async def durable_turns(rounds: int, n: int, directory: Path) -> dict[str, float]:
    """Seconds per run of durable and plain agents of 10 and 20 turns; a 19-step workflow."""
    agents = {
        turns: mai.Agent(LongModel(turns), tools=[ADD], name=f"bench_agent{turns}")
        for turns in (DURABLE_TURNS, 2 * DURABLE_TURNS)
    }
    for agent in agents.values():
        _check(await agent("1+2?") == "3")
    url = f"sqlite:///{directory}/agents.db?synchronous=normal"
    times: dict[str, list[float]] = {}

    async def timed(key: str, fn: Callable[[int], Awaitable[object]]) -> None:
        t = time.perf_counter()
        for i in range(n):
            await fn(i)
        times.setdefault(key, []).append((time.perf_counter() - t) / n)

    async with mai.Runtime(url, workflows=[*agents.values(), _steps19]) as rt:
        for turns, agent in agents.items():
            run = await rt.start(agent, "1+2?", run_id=f"warm{turns}")
            _check(await run.result() == "3")
        recorded = len(await rt.steps(f"warm{DURABLE_TURNS}"))
        for r in range(rounds):

            async def trivial(i: int, r: int = r) -> None:
                await (await rt.start(_steps19, 0, run_id=f"s{r}-{i}")).result()

            await timed("trivial", trivial)
            for turns, agent in agents.items():

                async def plain(_: int, agent: mai.Agent = agent) -> None:
                    await agent("1+2?")

                async def durable(
                    i: int, r: int = r, agent: mai.Agent = agent, t: int = turns
                ) -> None:
                    await (await rt.start(agent, "1+2?", run_id=f"r{t}-{r}-{i}")).result()

                await timed(f"plain{turns}", plain)
                await timed(f"durable{turns}", durable)
    medians = {key: statistics.median(values) for key, values in times.items()}
    medians["recorded"] = recorded
    return medians


def durable_turn() -> str:
    """Item 4 of the docstring, as lines of the report.

    Two figures: the all-in cost per turn of a 10-turn run (the run's start and outcome records
    shared among its turns), and the cost of one more turn (the difference between 20-turn and
    10-turn runs, divided by 10), each against its budget.
    """
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        m = trio.run(durable_turns, 5, 20, d)
        floor = statistics.median(commit_floor(d / f"floor{i}.db", 1000) for i in range(3))
    short, long = DURABLE_TURNS, 2 * DURABLE_TURNS
    steps = int(m["recorded"])
    per_turn_d, per_turn_p = m[f"durable{short}"] / short, m[f"plain{short}"] / short
    budget = per_turn_p + 2 * floor * steps / short
    added_d = (m[f"durable{long}"] - m[f"durable{short}"]) / (long - short)
    added_p = (m[f"plain{long}"] - m[f"plain{short}"]) / (long - short)
    added_budget = added_p + 2 * floor * 2  # one more turn records two steps
    trivial = m["trivial"]

    def verdict(cost: float, limit: float) -> str:
        return "met" if cost <= limit else "NOT met"

    return (
        f"4. durable agent turn on SQLite (synchronous=normal), raw commit floor "
        f"{floor * 1e6:.0f} us:\n"
        f"   all-in, a {short}-turn run ({steps} recorded steps, plus the run's start and "
        f"outcome): {per_turn_d * 1e6:.0f} us per turn; plain turn {per_turn_p * 1e6:.0f} us "
        f"-> budget {budget * 1e6:.0f} us (plain + 2x floor per recorded step): "
        f"{verdict(per_turn_d, budget)}\n"
        f"   one more turn ({long}-turn minus {short}-turn runs, 2 recorded steps): "
        f"{added_d * 1e6:.0f} us; plain {added_p * 1e6:.0f} us -> budget "
        f"{added_budget * 1e6:.0f} us: {verdict(added_d, added_budget)}\n"
        f"   for scale, a durable workflow of {steps} trivial steps costs "
        f"{trivial / short * 1e6:.0f} us per 2 steps ({trivial / steps * 1e6:.0f} us per step)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--durable-only", action="store_true", help="item 4 only")
    ns = parser.parse_args()
    if ns.durable_only:
        print(durable_turn())
        return
    rounds, n, crounds = (3, 200, 3) if ns.quick else (15, 1000, 15)
    print(
        f"pymai agents benchmark: CPython {platform.python_version()} ({platform.machine()}), "
        f"trio {trio.__version__}, {sys.platform}"
    )
    agent_run, hand_run = trio.run(per_turn, rounds, n)
    added = (agent_run - hand_run) / 2
    print(
        f"1. run of 2 turns + 1 tool call: hand-written {hand_run * 1e6:.1f} us, "
        f"mai.Agent {agent_run * 1e6:.1f} us -> +{added * 1e6:.1f} us per turn "
        f"(target <= 100 us)"
    )
    pai = pydantic_ai_run_time(rounds, max(n // 5, 50))
    if pai is None:
        print("2. Pydantic AI not installed (pip install pydantic-ai-slim): skipped")
    else:
        print(
            f"2. Pydantic AI Agent + FunctionModel on asyncio: {pai * 1e6:.1f} us per run; "
            f"mai.Agent {agent_run * 1e6:.1f} us -> {pai / agent_run:.1f}x less time "
            f"(target >= 10x)"
        )
    hand_t, agent_t, ratio = _side_by_side(crounds)
    hand_m = _peak(concurrent_hand, CONCURRENT)
    agent_m = _peak(concurrent_agents, CONCURRENT)
    print(
        f"3. {CONCURRENT:,} concurrent runs: hand-written Trio {hand_t * 1e3:.1f} ms, "
        f"Map(agent) {agent_t * 1e3:.1f} ms (best quartiles) -> {agent_t / hand_t:.2f}x; "
        f"median of per-round ratios {ratio:.2f}x (target <= 3x); "
        f"peak memory {agent_m / CONCURRENT / 1e3:.1f} KB per agent "
        f"(hand-written {hand_m / CONCURRENT / 1e3:.1f} KB; target <= 50 KB)"
    )
    print(durable_turn())


if __name__ == "__main__":
    main()
