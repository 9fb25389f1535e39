"""The OpenAI-compatible model against a real local HTTP server (HTTP-level behaviour).

These use the real clock (they wait on sockets) with short bounds; nothing asserts wall time.
"""

from __future__ import annotations

import socket

import pytest
import trio
from httpstub import Reply, chunks, completion

import mai
from mai.agents import (
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestsBlocked,
    ModelSettings,
    TextDelta,
    ToolReturn,
)
from mai.core.agents._openai import OpenAIModel, retry_after
from mai.testing import block_model_requests

KEY = "sk-test-SECRET-0123456789"


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


def model(stub, **kw) -> OpenAIModel:
    kw.setdefault("backoff", mai.Backoff(initial=0.01))
    m = OpenAIModel("stub-model", base_url=stub.base_url, api_key=KEY, **kw)
    stub.models.append(m)
    return m


async def test_text_answer_and_request_body(nursery, stub_server):
    """A text answer comes back as the output; settings and the key reach the server."""
    stub = await stub_server(nursery, [completion("Hello there.")])
    agent = mai.Agent(
        model(stub),
        instructions="Be brief.",
        model_settings=ModelSettings(temperature=0, seed=42, max_tokens=32),
    )
    result = await agent.run("Hi")
    assert result.output == "Hello there."
    assert result.usage.input_tokens == 11
    assert result.usage.output_tokens == 3
    body = stub.requests[0]
    assert body["model"] == "stub-model"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert (body["temperature"], body["seed"], body["max_tokens"]) == (0, 42, 32)
    assert "tools" not in body
    assert stub.headers[0]["authorization"] == f"Bearer {KEY}"


async def test_tool_call_round_trip(nursery, stub_server):
    """A tool call runs the module; the tool result and the call go back in OpenAI's shape."""
    stub = await stub_server(
        nursery,
        [completion(tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}}]), completion("5")],
    )
    result = await mai.Agent(model(stub), tools=[add]).run("2+3?")
    assert result.output == "5"
    tools = stub.requests[0]["tools"]
    assert tools[0]["function"]["name"] == "add"
    assert tools[0]["function"]["description"] == "Add two integers."
    second = stub.requests[1]["messages"]
    assert second[-2]["role"] == "assistant"
    assert second[-2]["content"] == ""  # never null next to tool_calls (llama.cpp rejects it)
    assert second[-2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert second[-1] == {"role": "tool", "tool_call_id": "call_0", "content": "5"}
    assert isinstance(result.new_messages[2].parts[0], ToolReturn)


async def test_429_is_retried_after_the_servers_delay(nursery, stub_server):
    """A 429 with retry-after-ms is retried by pymai (the client's own retries are off)."""
    stub = await stub_server(
        nursery,
        [
            Reply(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "20"}),
            Reply(503, {"error": {"message": "busy"}}, {"retry-after": "0"}),
            completion("ok"),
        ],
    )
    assert await mai.Agent(model(stub))("x") == "ok"
    assert len(stub.requests) == 3


async def test_retry_after_past_the_deadline_fails_at_once(nursery, stub_server):
    """A Retry-After that ends after the deadline is not waited for: the error comes at once."""
    stub = await stub_server(
        nursery, [Reply(429, {"error": {"message": "quota"}}, {"retry-after": "30"})]
    )
    agent = mai.Agent(model(stub)).with_(timeout=5)
    with pytest.raises(ModelHTTPError) as info:
        await agent("x")
    assert info.value.status_code == 429
    assert "not retried" in "".join(info.value.__notes__)
    assert len(stub.requests) == 1


async def test_client_errors_are_not_retried(nursery, stub_server):
    """A 400 is a typed error naming the status and the endpoint, after one request."""
    stub = await stub_server(nursery, [Reply(400, {"error": {"message": "bad model"}})])
    with pytest.raises(ModelHTTPError, match="HTTP 400") as info:
        await mai.Agent(model(stub))("x")
    assert stub.base_url in str(info.value)
    assert len(stub.requests) == 1
    assert KEY not in str(info.value)


async def test_unreachable_endpoint_is_one_clear_line():
    """No server at the URL: ModelConnectionError, one line naming the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    m = OpenAIModel("m", base_url=base, api_key=KEY, max_retries=1, backoff=mai.Backoff(0.01))
    with pytest.raises(ModelConnectionError) as info:
        async with m:
            await mai.Agent(m)("x")
    text = str(info.value)
    assert "\n" not in text
    assert f"cannot reach model 'm' at {base}" in text
    assert isinstance(info.value, ConnectionError)


async def test_streamed_text(nursery, stub_server):
    """agent.stream yields the server's deltas, then the final output."""
    stub = await stub_server(nursery, [chunks(["Hel", "lo ", "you"])])
    async with mai.Agent(model(stub)).stream("Hi") as events:
        deltas = [e.content async for e in events if isinstance(e, TextDelta)]
    assert deltas == ["Hel", "lo ", "you"]
    assert events.result is not None
    assert events.result.output == "Hello you"
    assert events.result.usage.output_tokens == 3
    assert stub.requests[0]["stream"] is True


async def test_a_deadline_cuts_the_stream_and_closes_the_connection(nursery, stub_server):
    """A deadline mid-stream raises DeadlineExceeded and the server sees the client go."""
    # 200 deltas 50 ms apart take 10 s: a 1 s deadline cuts the stream after its first
    # deltas, with room for a loaded machine to deliver the first one
    stub = await stub_server(nursery, [chunks(["x"] * 200, delay=0.05)])
    agent = mai.Agent(model(stub)).with_(timeout=1.0)
    got = []

    async def consume():
        async with agent.stream("go") as events:
            got.extend([e async for e in events if isinstance(e, TextDelta)])

    with pytest.raises(mai.DeadlineExceeded):
        await consume()
    assert 0 < len(got) < 200
    with trio.fail_after(5):
        await stub.stream_cut.wait()


def test_api_key_is_never_in_the_repr():
    """The key is not in the model's repr or its public attributes."""
    m = OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert KEY not in repr(m)
    assert all(KEY not in repr(getattr(m, a)) for a in dir(m) if not a.startswith("_"))


async def test_blocked_requests_fail_before_the_network():
    """block_model_requests(): a non-local endpoint raises ModelRequestsBlocked."""
    m = OpenAIModel("gpt-x", base_url="https://api.example.com/v1", api_key=KEY)
    with block_model_requests(), pytest.raises(ModelRequestsBlocked, match="gpt-x"):
        await mai.Agent(m)("x")


async def test_model_string_resolves_through_the_registry(nursery, stub_server, monkeypatch):
    """'openai:NAME' makes an OpenAI-compatible model from the environment variables."""
    stub = await stub_server(nursery, [completion("from env")])
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    agent = mai.Agent("openai:stub-model")
    async with agent.model:  # type: ignore[attr-defined]
        assert await agent("x") == "from env"
    assert isinstance(agent.model, OpenAIModel)
    assert stub.requests[0]["model"] == "stub-model"


def test_retry_after_forms():
    """retry-after-ms wins; Retry-After takes seconds or an HTTP date; junk gives None."""
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after({"retry-after": date}, now=1445412480.0) == 10.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after(None) is None


async def test_api_key_never_reaches_spans_or_logs(nursery, stub_server, monkeypatch):
    """With content capture on and a retry logged, the key is in no span and no log line."""
    import structlog
    from structlog.testing import capture_logs

    from mai.testing import capture_otel_spans

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    stub = await stub_server(
        nursery,
        [Reply(503, {"error": {"message": "busy"}}, {"retry-after": "0"}), completion("ok")],
    )
    was_configured = structlog.is_configured()
    try:
        with capture_otel_spans() as spans, capture_logs() as logs:
            assert await mai.Agent(model(stub))("x") == "ok"
    finally:
        if not was_configured:  # capture_logs leaves structlog "configured": undo that
            structlog.reset_defaults()
    assert any(entry["event"] == "mai.model_retry" for entry in logs)
    assert KEY not in repr(logs)
    assert spans
    for s in spans:
        assert KEY not in repr(dict(s.attributes)), s.name
        assert KEY not in s.name


async def test_streamed_tool_call_and_settings_in_the_body(nursery, stub_server):
    """A streamed tool call is assembled from its deltas; tool_choice and parallel calls sent."""
    from httpstub import tool_chunks

    from mai.agents import ToolCallDelta

    stub = await stub_server(
        nursery, [tool_chunks("add", ['{"a": 4', ', "b": 5}']), chunks(["nine"])]
    )
    settings = ModelSettings(tool_choice="add", parallel_tool_calls=False)
    agent = mai.Agent(model(stub), tools=[add], model_settings=settings)
    async with agent.stream("4+5?") as events:
        deltas = [e async for e in events if isinstance(e, ToolCallDelta)]
    assert [d.args_delta for d in deltas] == ["", '{"a": 4', ', "b": 5}']
    assert deltas[0].tool_name == "add"
    assert events.result is not None
    assert events.result.output == "nine"
    assert stub.requests[1]["messages"][-1]["content"] == "9"
    body = stub.requests[0]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert body["parallel_tool_calls"] is False


async def test_native_output_sends_the_json_schema(nursery, stub_server):
    """output_mode='native' sends response_format with the output's JSON Schema."""
    import pydantic

    class Point(pydantic.BaseModel):
        x: int
        y: int

    stub = await stub_server(nursery, [completion('{"x": 1, "y": 2}')])
    agent = mai.Agent(model(stub), output_type=Point, output_mode="native")
    assert await agent("where?") == Point(x=1, y=2)
    fmt = stub.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Point"
    assert fmt["json_schema"]["schema"]["required"] == ["x", "y"]


def test_a_password_in_the_base_url_is_masked():
    """A base URL with a password shows it masked in repr and base_url."""
    m = OpenAIModel("m", base_url="https://user:pw-SECRET@llm.example/v1", api_key=KEY)
    assert "pw-SECRET" not in repr(m)
    assert m.base_url == "https://user:***@llm.example/v1"


def test_without_the_openai_package_the_error_says_what_to_install(monkeypatch):
    """No 'openai' installed: MissingDependencyError (an ImportError) names the extra."""
    import sys

    from mai.agents import MissingDependencyError

    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'pymai\[agents\]'") as info:
        OpenAIModel("m", api_key=KEY)
    assert isinstance(info.value, ImportError)
