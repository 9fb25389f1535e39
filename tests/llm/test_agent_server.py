"""``mai.Agent`` against the real model server (llama-cpp-python's) and the scripted model.

Every request goes over HTTP to a real OpenAI-compatible server; tools are mai modules. The
deadline test uses the real clock (the server is a real process), bounded, and asserts only
that the stream was cut. Known limits of this server, pinned here: it streams no automatic
tool call, and after a tool result with ``tool_choice="auto"`` its handler lets the model end
the turn only with empty text (the llama-server tests cover both).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
import trio
from pydantic import BaseModel
from tinymodel import (
    AFTER_TOOL,
    ANSWER,
    JSON_ANSWER,
    LONG_PREFIX,
    LONG_TRIGGER,
    MODEL_ALIAS,
    TOOL_ARGUMENTS,
)

import mai
from mai.agents import (
    FinalOutput,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OpenAIModel,
    OutputDelta,
    OutputRetriesExceeded,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolReturn,
    UserPrompt,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SETTINGS = ModelSettings(temperature=0, seed=42, max_tokens=64)


class City(BaseModel):
    """The structured output the scripted model produces in JSON mode."""

    city: str


@pytest.fixture
async def model(llm_base_url: str) -> AsyncIterator[OpenAIModel]:
    """The OpenAI-compatible model of the session's server (connections closed afterwards)."""
    async with OpenAIModel(MODEL_ALIAS, base_url=llm_base_url, api_key="test-key") as model:
        yield model


def weather_tool(calls: list[str]) -> mai.Module:
    """A mai module the model calls as ``get_weather``; it records the cities asked for."""

    @mai.module
    async def get_weather(city: str) -> str:
        """Current weather of a city.

        Args:
            city: The city's name.
        """
        calls.append(city)
        return "sunny"

    return get_weather


async def test_agent_answers_the_scripted_text(model):
    """An agent's plain run returns the model's exact text, with the usage of one request."""
    agent = mai.Agent(model, instructions="Be brief.", model_settings=SETTINGS)
    result = await agent.run("Hello there")
    assert result.output == ANSWER
    assert result.usage.requests == 1
    assert result.usage.output_tokens == 5
    assert await agent("Hello again") == ANSWER


async def test_agent_stream_delivers_text_deltas(model):
    """A streamed agent run yields the text in several deltas, then the final output."""
    agent = mai.Agent(model, model_settings=SETTINGS)
    deltas, final = [], None
    async with agent.stream("Hello there") as events:
        async for event in events:
            if isinstance(event, TextDelta):
                deltas.append(event.content)
            elif isinstance(event, FinalOutput):
                final = event.output
    assert "".join(deltas) == ANSWER
    assert len(deltas) == 5
    assert final == ANSWER


async def test_automatic_tool_call_is_answered_by_a_mai_module(model):
    """With tool_choice auto the model calls the mai module; this server then answers empty."""
    # llama-cpp-python's handler lets the model end a turn after a tool result only with empty
    # text, which the agent rejects (a retry prompt, then a typed error naming the turn). The
    # llama-server tests run the same agent to its text answer.
    calls: list[str] = []
    agent = mai.Agent(
        model,
        tools=[weather_tool(calls)],
        model_settings=SETTINGS.merge(ModelSettings(tool_choice="auto")),
    )
    with pytest.raises(OutputRetriesExceeded, match="turn 3") as caught:
        await agent.run("What is the weather in Paris?")
    assert calls == [TOOL_ARGUMENTS["city"]]
    assert "the answer was empty" in str(caught.value)


async def test_text_after_a_tool_result(model):
    """Given a history ending in a mai tool's return, the model answers in text."""
    history = [
        ModelRequest(parts=(UserPrompt(content="What is the weather in Paris?"),)),
        ModelResponse(
            parts=(ToolCall(tool_name="get_weather", args=TOOL_ARGUMENTS, tool_call_id="call-1"),)
        ),
        ModelRequest(
            parts=(ToolReturn(tool_name="get_weather", tool_call_id="call-1", content="sunny"),)
        ),
    ]
    agent = mai.Agent(model, model_settings=SETTINGS)
    result = await agent.run(message_history=history)
    assert result.output == AFTER_TOOL
    assert result.usage.requests == 1


async def test_named_tool_call_streams_the_structured_output(model):
    """A named tool_choice (the final-result tool) streams its arguments as partial output."""
    agent = mai.Agent(
        model,
        output_type=City,
        output_mode="tool",
        model_settings=SETTINGS.merge(ModelSettings(tool_choice="final_result")),
    )
    pieces, partials, final = [], [], None
    async with agent.stream("Where?") as events:
        async for event in events:
            if isinstance(event, ToolCallDelta):
                pieces.append(event.args_delta)
            elif isinstance(event, OutputDelta):
                partials.append(event.partial)
            elif isinstance(event, FinalOutput):
                final = event.output
    assert "".join(pieces) == '{"city": "Paris"}'
    assert len([piece for piece in pieces if piece]) > 1
    assert partials
    assert final == City(**JSON_ANSWER)


async def test_json_output(model):
    """JSON mode of the server gives a structured output validated into the output type."""
    agent = mai.Agent(
        model,
        output_type=City,
        output_mode="prompted",
        model_settings=SETTINGS.merge(
            ModelSettings(extra_body={"response_format": {"type": "json_object"}})
        ),
    )
    result = await agent.run("Which city?")
    assert result.output == City(**JSON_ANSWER)


async def test_concurrent_agent_runs_under_trio(model):
    """Agent runs started together in one Trio nursery all get their exact answers."""
    agent = mai.Agent(model, model_settings=SETTINGS)
    outputs: list[str] = []

    async def ask(prompt: str) -> None:
        outputs.append(await agent(prompt))

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(ask, f"Hello number {n}")
    assert outputs == [ANSWER] * 4


async def test_deadline_cuts_an_agent_stream_midway(model):
    """A deadline set once text flows cuts the streamed run; the server answers the next run."""
    agent = mai.Agent(model, model_settings=SETTINGS.merge(ModelSettings(max_tokens=1800)))
    text: list[str] = []
    final = None
    with trio.fail_after(60):  # a bound only: the server is a real process
        with trio.CancelScope() as cut:
            async with agent.stream(f"Talk {LONG_TRIGGER}.") as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        text.append(event.content)
                        if cut.deadline == math.inf and "".join(text).startswith(LONG_PREFIX):
                            cut.deadline = trio.current_time() + 0.1
                    elif isinstance(event, FinalOutput):
                        final = event.output
    assert cut.cancelled_caught
    assert final is None
    assert "".join(text).startswith(LONG_PREFIX)
    assert len(text) < 1800
    assert await mai.Agent(model, model_settings=SETTINGS)("Hello there") == ANSWER
