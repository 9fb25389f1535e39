"""``mai.Agent`` against llama.cpp's own ``llama-server`` (C++) and the scripted model.

This server renders the model's Qwen2.5-style chat template (``--jinja``), parses the
``<tool_call>`` blocks the model writes, and streams automatic tool calls: the tool rounds the
Python server cannot finish run here to their text answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel
from tinymodel import AFTER_TOOL, ANSWER, JSON_ANSWER, MODEL_ALIAS, TOOL_ARGUMENTS, TOOL_NAME

import mai
from mai.agents import (
    FinalOutput,
    ModelSettings,
    OpenAIModel,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolReturn,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SETTINGS = ModelSettings(temperature=0, seed=42, max_tokens=64)


@pytest.fixture
async def model(llama_server) -> AsyncIterator[OpenAIModel]:
    """The OpenAI-compatible model of the session's llama-server."""
    async with OpenAIModel(MODEL_ALIAS, base_url=llama_server.base_url, api_key="k") as model:
        yield model


def weather_agent(model: OpenAIModel, calls: list[str]) -> mai.Agent:
    """An agent whose one tool, a mai module, records the cities it is asked about."""

    @mai.module
    async def get_weather(city: str) -> str:
        """Current weather of a city.

        Args:
            city: The city's name.
        """
        calls.append(city)
        return "sunny"

    return mai.Agent(model, tools=[get_weather], model_settings=SETTINGS)


async def test_plain_text(model):
    """A plain agent run returns the model's exact text through llama-server."""
    assert await mai.Agent(model, model_settings=SETTINGS)("Hello there") == ANSWER


async def test_automatic_tool_call_then_text(model):
    """The model calls the mai module on its own, then answers the tool's result in text."""
    calls: list[str] = []
    result = await weather_agent(model, calls).run("What is the weather in Paris?")
    assert calls == [TOOL_ARGUMENTS["city"]]
    assert result.output == AFTER_TOOL
    parts = [part for message in result.new_messages for part in message.parts]
    [call] = [part for part in parts if isinstance(part, ToolCall)]
    assert call.tool_name == TOOL_NAME
    [tool_return] = [part for part in parts if isinstance(part, ToolReturn)]
    assert (tool_return.tool_call_id, tool_return.content) == (call.tool_call_id, "sunny")
    assert result.usage.requests == 2


async def test_streamed_agent_run_that_calls_a_tool(model):
    """A streamed run shows the tool call's deltas, the tool starting and ending, then text."""
    calls: list[str] = []
    kinds: list[str] = []
    arguments, text, final = [], [], None
    async with weather_agent(model, calls).stream("What is the weather in Paris?") as events:
        async for event in events:
            kinds.append(event.kind)
            if isinstance(event, ToolCallDelta):
                arguments.append(event.args_delta)
            elif isinstance(event, TextDelta):
                text.append(event.content)
            elif isinstance(event, ToolCallStarted):
                assert (event.tool_name, event.args) == (TOOL_NAME, TOOL_ARGUMENTS)
            elif isinstance(event, ToolCallFinished):
                assert isinstance(event.result, ToolReturn)
            elif isinstance(event, FinalOutput):
                final = event.output
    assert calls == [TOOL_ARGUMENTS["city"]]
    assert arguments
    assert "".join(text) == AFTER_TOOL
    assert final == AFTER_TOOL
    order = [kinds.index(kind) for kind in ("tool-call-delta", "tool-call-started")]
    assert order == sorted(order)
    assert kinds.index("tool-call-finished") < kinds.index("text-delta")


class City(BaseModel):
    """The structured output the scripted model produces in JSON mode."""

    city: str


async def test_native_json_schema_output(model):
    """The provider's JSON Schema response format (output_mode native) gives the typed output."""
    agent = mai.Agent(model, output_type=City, output_mode="native", model_settings=SETTINGS)
    result = await agent.run("Which city?")
    assert result.output == City(**JSON_ANSWER)
    assert result.usage.requests == 1
