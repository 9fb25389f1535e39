"""Streaming an agent run: event order, partial output, backpressure, early exit."""

from __future__ import annotations

import pydantic
import trio
import trio.testing

import mai
from mai.agents import (
    FinalOutput,
    OutputDelta,
    ResponseDone,
    TextDelta,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from mai.testing import ScriptedModel, tool_call


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Answer(pydantic.BaseModel):
    title: str
    score: int


async def test_events_of_a_run_with_a_tool_call(autojump_clock):
    """Deltas, tool started/finished, each response, then the final output, in order."""
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), "The sum is 3."], chunk_size=5)
    async with mai.Agent(model, tools=[add]).stream("go") as events:
        kinds = [type(e).__name__ async for e in events]
    assert kinds == [
        "ToolCallDelta",
        "ToolCallDelta",
        "ToolCallDelta",
        "ToolCallDelta",
        "ResponseDone",
        "ToolCallStarted",
        "ToolCallFinished",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "ResponseDone",
        "FinalOutput",
    ]
    assert events.result is not None
    assert events.result.output == "The sum is 3."
    assert model.requests[0].streamed is True


async def test_tool_events_carry_the_call(autojump_clock):
    """Tool started/finished events name the tool and carry the arguments and the result."""
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), "ok"])
    async with mai.Agent(model, tools=[add]).stream("go") as events:
        seen = [e async for e in events if isinstance(e, ToolCallStarted | ToolCallFinished)]
    started, finished = seen
    assert (started.tool_name, started.tool_call_id, started.args) == (
        "add",
        "call_1",
        {"a": 1, "b": 2},
    )
    assert finished.result.content == 3


async def test_structured_output_streams_partially(autojump_clock):
    """The final-result tool's arguments stream as partially validated output."""
    model = ScriptedModel(
        [tool_call("final_result", {"title": "A long title here", "score": 7})], chunk_size=6
    )
    async with mai.Agent(model, output_type=Answer).stream("go") as events:
        partials = [e.partial async for e in events if isinstance(e, OutputDelta)]
        final = events.result
    assert partials[-1] == Answer(title="A long title here", score=7)
    assert any(isinstance(p, dict) and "score" not in p for p in partials[:-1])
    assert final is not None
    assert final.output == Answer(title="A long title here", score=7)


async def test_the_channel_is_bounded(autojump_clock):
    """With a buffer of 1 the run waits for the reader instead of queueing every delta."""
    model = ScriptedModel(["x" * 100], chunk_size=1)
    async with mai.Agent(model).stream("go", buffer=1) as events:
        iterator = aiter(events)
        first = await anext(iterator)
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(first, TextDelta)
        assert events.result is None  # the run is parked on the full channel
        rest = [e async for e in iterator]
    assert sum(isinstance(e, TextDelta) for e in rest) == 99
    assert isinstance(rest[-1], FinalOutput)


async def test_leaving_early_cancels_the_run(autojump_clock):
    """Breaking out of the stream cancels the run: later tools never start, no error."""
    ran: list[str] = []

    @mai.module
    async def later() -> str:
        ran.append("later")
        return "x"

    model = ScriptedModel(["a long first answer " * 5, "unused"], chunk_size=2, chunk_delay=1)
    agent = mai.Agent(model, tools=[later])
    start = trio.current_time()
    async with agent.stream("go") as events:
        async for event in events:
            assert isinstance(event, TextDelta | ToolCallDelta | ResponseDone)
            break
    assert trio.current_time() - start == 1
    assert ran == []


async def test_a_deadline_cuts_a_scripted_stream(autojump_clock):
    """The agent's timeout ends a slow stream at exactly that time with DeadlineExceeded."""
    model = ScriptedModel(["y" * 100], chunk_size=1, chunk_delay=0.5)
    agent = mai.Agent(model).with_(timeout=3)
    got: list[str] = []
    start = trio.current_time()

    async def consume() -> None:
        async with agent.stream("go") as events:
            got.extend([e.content async for e in events if isinstance(e, TextDelta)])

    try:
        await consume()
    except mai.DeadlineExceeded:
        pass
    else:
        raise AssertionError("the deadline did not fire")
    assert trio.current_time() - start == 3
    assert 0 < len(got) <= 6


async def test_get_output_consumes_the_rest(autojump_clock):
    """get_output() returns the final output after reading the remaining events."""
    async with mai.Agent(ScriptedModel(["done"])).stream("go") as events:
        assert await events.get_output() == "done"
