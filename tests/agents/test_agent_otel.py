"""OpenTelemetry GenAI spans of agent runs; message content only when allowed."""

from __future__ import annotations

import mai
from mai.core.agents import _genai as genai
from mai.testing import ScriptedModel, capture_otel_spans, tool_call


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _agent() -> mai.Agent[str]:
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), "three"], model_name="tiny")
    return mai.Agent(model, tools=[add], name="calc", instructions="Be exact.")


async def test_genai_span_names_and_attributes(monkeypatch):
    """invoke_agent / chat / execute_tool spans carry the GenAI attributes and usage."""
    monkeypatch.delenv(genai.CAPTURE_CONTENT_ENV, raising=False)
    with capture_otel_spans() as spans:
        assert await _agent()("1+2?") == "three"
    by_name: dict[str, list] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert set(by_name) == {"invoke_agent calc", "chat tiny", "execute_tool add"}
    agent_span = by_name["invoke_agent calc"][0]
    assert agent_span.attributes[genai.OPERATION] == "invoke_agent"
    assert agent_span.attributes[genai.AGENT_NAME] == "calc"
    assert agent_span.attributes[genai.PROVIDER] == "scripted"
    chats = by_name["chat tiny"]
    assert len(chats) == 2
    first = chats[0] if chats[0].attributes["mai.step_id"] == "1.1" else chats[1]
    assert first.attributes[genai.OPERATION] == "chat"
    assert first.kind.name == "CLIENT"
    assert by_name["execute_tool add"][0].kind.name == "INTERNAL"
    assert first.attributes[genai.REQUEST_MODEL] == "tiny"
    assert first.attributes[genai.INPUT_TOKENS] == 3
    assert first.attributes[genai.OUTPUT_TOKENS] == 4
    assert first.attributes[genai.FINISH_REASONS] == ("tool_calls",)
    tool = by_name["execute_tool add"][0]
    assert tool.attributes[genai.TOOL_NAME] == "add"
    assert tool.attributes[genai.TOOL_CALL_ID] == "call_1"
    assert tool.attributes["mai.step_id"] == "1.2"
    total_in = agent_span.attributes[genai.INPUT_TOKENS]
    assert total_in == sum(c.attributes[genai.INPUT_TOKENS] for c in chats)
    for s in spans:
        assert genai.INPUT_MESSAGES not in s.attributes
        assert genai.TOOL_ARGUMENTS not in s.attributes


async def test_message_content_only_when_the_variable_allows(monkeypatch):
    """With OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, content is recorded."""
    monkeypatch.setenv(genai.CAPTURE_CONTENT_ENV, "true")
    with capture_otel_spans() as spans:
        await _agent()("1+2?")
    chat = next(s for s in spans if s.name == "chat tiny")
    assert "Be exact." in chat.attributes[genai.INPUT_MESSAGES]
    assert genai.OUTPUT_MESSAGES in chat.attributes
    tool = next(s for s in spans if s.name == "execute_tool add")
    assert tool.attributes[genai.TOOL_ARGUMENTS] == '{"a": 1, "b": 2}'


async def test_without_a_provider_nothing_is_named():
    """With no OpenTelemetry provider the agent runs without touching any span."""
    assert await _agent()("1+2?") == "three"
