"""The real model server and the scripted model, driven by ``openai.AsyncOpenAI`` under Trio.

These pin what the agent layer builds on: the server's answers to plain, streamed, tool and
JSON requests, concurrency under Trio, and a deadline that cuts a stream. The deadline test
uses the real clock (the server is a real process), bounded, and asserts only that the stream
was cut, never a duration.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import trio
from tinymodel import (
    AFTER_TOOL,
    ANSWER,
    JSON_ANSWER,
    LONG_PREFIX,
    LONG_TRIGGER,
    MODEL_ALIAS,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    tool_schema,
)

openai = pytest.importorskip("openai")

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SETTINGS: dict[str, Any] = {"model": MODEL_ALIAS, "temperature": 0, "seed": 42, "max_tokens": 64}
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
async def client(llm_base_url: str) -> AsyncIterator[Any]:
    """An AsyncOpenAI client of the session's server, without the client's own retries."""
    async with openai.AsyncOpenAI(
        base_url=llm_base_url, api_key="test-key", max_retries=0, timeout=30
    ) as client:
        yield client


def history_with_tool_result(call: Any) -> list[dict[str, Any]]:
    """WEATHER, the assistant's tool call (content "", as this server needs) and its result."""
    return [
        *WEATHER,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]


async def test_plain_chat_answers_the_scripted_text(client):
    """A plain chat answers the model's exact scripted text and stops."""
    response = await client.chat.completions.create(messages=HELLO, **SETTINGS)
    choice = response.choices[0]
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    assert response.usage.completion_tokens == 5  # the end of turn is not counted


async def test_streamed_chat_delivers_the_text_in_pieces(client):
    """A streamed chat delivers the same text in several deltas, then finish_reason stop."""
    stream = await client.chat.completions.create(messages=HELLO, stream=True, **SETTINGS)
    deltas, finish = [], None
    async with stream:
        async for chunk in stream:
            choice = chunk.choices[0]
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(deltas) == ANSWER
    assert len(deltas) == 5
    assert finish == "stop"


async def test_automatic_tool_call(client):
    """With tools offered and tool_choice auto, the model calls the tool with fixed arguments."""
    response = await client.chat.completions.create(
        messages=WEATHER, tools=[tool_schema()], tool_choice="auto", **SETTINGS
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == TOOL_NAME
    assert json.loads(call.function.arguments) == TOOL_ARGUMENTS


async def test_tool_result_is_answered_in_text(client):
    """After the tool result the model answers in text, so an agent loop ends."""
    first = await client.chat.completions.create(
        messages=WEATHER, tools=[tool_schema()], tool_choice="auto", **SETTINGS
    )
    history = history_with_tool_result(first.choices[0].message.tool_calls[0])
    answer = await client.chat.completions.create(
        messages=history, tools=[tool_schema()], tool_choice="none", **SETTINGS
    )
    assert answer.choices[0].message.content == AFTER_TOOL
    assert answer.choices[0].finish_reason == "stop"
    # With tool_choice "auto" this server's handler only lets the model end its turn (its
    # follow-up grammar allows a tool call or "<|im_end|>"): no tool call, empty text.
    auto = await client.chat.completions.create(
        messages=history, tools=[tool_schema()], tool_choice="auto", **SETTINGS
    )
    assert auto.choices[0].message.tool_calls is None
    assert auto.choices[0].message.content == ""
    assert auto.choices[0].finish_reason == "stop"


async def test_named_tool_call_is_streamed(client):
    """A named tool_choice streams the call's arguments in pieces that join to the JSON."""
    stream = await client.chat.completions.create(
        messages=WEATHER,
        tools=[tool_schema()],
        tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
        stream=True,
        **SETTINGS,
    )
    names, pieces, finish = set(), [], None
    async with stream:
        async for chunk in stream:
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                names.add(delta.function.name)
                if delta.function.arguments:
                    pieces.append(delta.function.arguments)
            finish = choice.finish_reason or finish
    assert names == {TOOL_NAME}
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == TOOL_ARGUMENTS
    assert finish == "tool_calls"


async def test_json_object_output(client):
    """response_format json_object makes the model answer a JSON object."""
    response = await client.chat.completions.create(
        messages=HELLO, response_format={"type": "json_object"}, **SETTINGS
    )
    assert json.loads(response.choices[0].message.content) == JSON_ANSWER
    assert response.choices[0].finish_reason == "stop"


async def test_concurrent_requests_under_trio(client):
    """Requests started together in one Trio nursery all get their full, exact answers."""
    answers: list[str] = []

    async def ask() -> None:
        response = await client.chat.completions.create(messages=HELLO, **SETTINGS)
        answers.append(response.choices[0].message.content)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(ask)
    assert answers == [ANSWER] * 4


async def test_deadline_cuts_a_stream_midway(client):
    """A Trio deadline cuts a long stream mid-way; the server then answers the next request."""
    prompt = [{"role": "user", "content": f"Talk {LONG_TRIGGER}."}]
    text, finish = [], None
    stream = await client.chat.completions.create(
        messages=prompt, stream=True, **{**SETTINGS, "max_tokens": 1800}
    )
    async with stream:
        with trio.fail_after(60):  # bound only: the server is a real process
            async for chunk in stream:
                text.append(chunk.choices[0].delta.content or "")
                if "".join(text).startswith(LONG_PREFIX):
                    break
        with trio.move_on_after(0.1) as cut:
            async for chunk in stream:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
    assert cut.cancelled_caught
    assert finish is None
    assert "".join(text).startswith(LONG_PREFIX)
    assert len(text) < 1800
    after = await client.chat.completions.create(messages=HELLO, **SETTINGS)
    assert after.choices[0].message.content == ANSWER
