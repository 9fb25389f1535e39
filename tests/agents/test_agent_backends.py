"""Agents beyond the basics: asyncio, history round trips, linear durable records."""

from __future__ import annotations

import asyncio
import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

import mai
from mai.agents import (
    ModelRequest,
    ModelResponse,
    RetryPrompt,
    SystemPrompt,
    TextDelta,
    TextPart,
    ToolCall,
    ToolReturn,
    Usage,
    UserPrompt,
    dump_messages,
    load_messages,
)
from mai.testing import ScriptedModel, tool_call

_names = itertools.count()


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_an_agent_runs_under_asyncio_too():
    """The same agent (parallel tools, streaming) runs under asyncio through anyio."""

    async def main() -> tuple[str, list[str]]:
        model = ScriptedModel(
            [[tool_call("add", {"a": 1, "b": 2}), tool_call("add", {"a": 3, "b": 4})], "3 and 7"]
        )
        agent = mai.Agent(model, tools=[add])
        out = await agent("go")
        streamed = ScriptedModel(["abc def"], chunk_size=3)
        async with mai.Agent(streamed).stream("x") as events:
            deltas = [e.content async for e in events if isinstance(e, TextDelta)]
        return out, deltas

    out, deltas = asyncio.run(main())
    assert out == "3 and 7"
    assert deltas == ["abc", " de", "f"]


_text = st.text(max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_request_part = st.one_of(
    st.builds(SystemPrompt, content=_text),
    st.builds(UserPrompt, content=_text),
    st.builds(ToolReturn, tool_name=_text, tool_call_id=_text, content=_json, error=st.booleans()),
    st.builds(RetryPrompt, content=_text, tool_name=st.none() | _text),
)
_response_part = st.one_of(
    st.builds(TextPart, content=_text),
    st.builds(
        ToolCall,
        tool_name=_text,
        tool_call_id=_text,
        args=_text | st.dictionaries(_text, _json, max_size=3),
    ),
)
_message = st.one_of(
    st.builds(ModelRequest, parts=st.lists(_request_part, max_size=3).map(tuple)),
    st.builds(
        ModelResponse,
        parts=st.lists(_response_part, max_size=3).map(tuple),
        usage=st.builds(Usage, input_tokens=st.integers(0, 10**6)),
        model_name=st.none() | _text,
        finish_reason=st.sampled_from([None, "stop", "length", "tool_calls"]),
    ),
)


@given(st.lists(_message, max_size=5))
def test_any_history_round_trips_through_json(history):
    """dump_messages / load_messages give back an equal history, whatever it holds."""
    assert load_messages(dump_messages(history)) == history


async def test_durable_records_grow_linearly_with_the_conversation():
    """The model-request steps record the turn's new messages, not the whole history."""

    async def recorded_bytes(turns: int) -> int:
        script = [tool_call("add", {"a": i, "b": 1}) for i in range(turns - 1)] + ["done"]
        agent = mai.Agent(ScriptedModel(script), tools=[add], tool_retries=0, name="chat")
        url = f"memory://agents-linear-{next(_names)}"
        async with mai.Runtime(url, workflows=[agent]) as rt:
            handle = await rt.start(agent, "count", run_id="r")
            assert await handle.result() == "done"
            steps = [s for s in await rt.steps("r") if s.name == "model_request"]
        assert len(steps) == turns
        return sum(len(json.dumps(s.input)) for s in steps)

    ten, forty = await recorded_bytes(10), await recorded_bytes(40)
    assert forty / ten <= 5  # 4x the turns, about 4x the bytes (quadratic would be 16x)
