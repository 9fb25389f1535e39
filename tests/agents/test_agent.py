"""The agent loop against the scripted model: tools, errors, output, history, limits."""

from __future__ import annotations

import time

import pydantic
import pytest
import trio

import mai
from mai.agents import (
    HistoryError,
    ModelRequest,
    ModelResponse,
    OutputRetriesExceeded,
    RetryPrompt,
    SystemPrompt,
    ToolRetriesExceeded,
    ToolReturn,
    UsageLimitExceeded,
    UserPrompt,
    load_messages,
)
from mai.testing import ScriptedModel, block_model_requests, tool_call


@mai.module
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_text_answer_result_and_messages():
    """A text answer is the output; run() gives new messages and usage."""
    model = ScriptedModel(["Hello!"])
    agent = mai.Agent(model, instructions="Be kind.")
    result = await agent.run("Hi")
    assert result.output == "Hello!"
    assert [m.kind for m in result.new_messages] == ["request", "response"]
    assert result.new_messages[0].parts == (
        SystemPrompt(content="Be kind."),
        UserPrompt(content="Hi"),
    )
    assert result.usage.requests == 1
    assert result.usage.input_tokens == 3  # words in the request: "Be kind." + "Hi"
    assert result.usage.output_tokens == 1
    assert await mai.Agent(ScriptedModel(["plain"]))("x") == "plain"


async def test_tool_call_then_answer():
    """A tool call runs the module; its result goes back; the next answer ends the run."""
    model = ScriptedModel([tool_call("add", {"a": 2, "b": 3}), "It is 5."])
    result = await mai.Agent(model, tools=[add]).run("2+3?")
    assert result.output == "It is 5."
    assert model.requests[1].last.parts == (
        ToolReturn(tool_name="add", tool_call_id="call_1", content=5),
    )
    assert model.requests[0].tool_names == ["add"]
    assert result.usage.tool_calls == 1


async def test_parallel_tool_calls_run_concurrently_and_keep_the_model_order(autojump_clock):
    """Tool calls of one response run at once; results go back in the model's order."""
    finished: list[str] = []

    @mai.module
    async def wait(name: str, seconds: float) -> str:
        await trio.sleep(seconds)
        finished.append(name)
        return name

    model = ScriptedModel(
        [
            [
                tool_call("wait", {"name": "slow", "seconds": 3}),
                tool_call("wait", {"name": "fast", "seconds": 1}),
            ],
            "done",
        ]
    )
    start = trio.current_time()
    await mai.Agent(model, tools=[wait])("go")
    assert trio.current_time() - start == 3  # concurrent: max, not sum
    assert finished == ["fast", "slow"]
    returns = model.requests[1].last.parts
    assert [p.content for p in returns] == ["slow", "fast"]


async def test_a_failing_tool_is_an_error_result_and_siblings_keep_theirs(autojump_clock):
    """One tool raising (or timing out) gives an error result; its siblings' results stand."""

    @mai.module
    async def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    @mai.module(timeout=1)
    async def slow(x: int) -> int:
        await trio.sleep(10)
        return x

    model = ScriptedModel(
        [
            [
                tool_call("boom", {"x": 1}),
                tool_call("add", {"a": 1, "b": 1}),
                tool_call("slow", {"x": 3}),
            ],
            "ok",
        ]
    )
    start = trio.current_time()
    assert await mai.Agent(model, tools=[boom, add, slow], tool_retries=2)("go") == "ok"
    assert trio.current_time() - start == 1
    boom_r, add_r, slow_r = model.requests[1].last.parts
    assert (boom_r.error, boom_r.content) == (True, "ValueError: bad 1")
    assert (add_r.error, add_r.content) == (False, 2)
    assert slow_r.error is True
    assert slow_r.content.startswith("DeadlineExceeded: module 'slow'")


async def test_the_run_deadline_bounds_model_and_tools(autojump_clock):
    """The agent's timeout cancels a running tool and raises DeadlineExceeded at that time."""
    started = trio.Event()

    @mai.module
    async def forever() -> None:
        started.set()
        await trio.sleep_forever()

    model = ScriptedModel([tool_call("forever"), "never"])
    agent = mai.Agent(model, tools=[forever]).with_(timeout=5)
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await agent("go")
    assert trio.current_time() - start == 5
    assert info.value.module_name == "agent"
    assert started.is_set()
    assert len(model.requests) == 1


async def test_a_sync_tool_in_a_thread_is_released_at_its_deadline(autojump_clock):
    """A sync tool's own timeout releases the agent; the tool polls is_cancelled and stops."""
    stopped: list[bool] = []

    @mai.module(timeout=2)
    def spin() -> str:
        while not mai.is_cancelled():
            time.sleep(0.001)
        stopped.append(True)
        return "late"

    model = ScriptedModel([tool_call("spin"), "after"])
    assert await mai.Agent(model, tools=[spin], tool_retries=1)("go") == "after"
    result = model.requests[1].last.parts[0]
    assert result.error is True
    assert "exceeded its timeout of 2s" in result.content


async def test_unknown_tool_and_bad_arguments_become_retry_prompts():
    """An unknown tool name and arguments that do not fit go back as retry prompts."""
    model = ScriptedModel(
        [
            [tool_call("nope", {}), tool_call("add", {"a": "x", "b": 1})],
            tool_call("add", {"a": 1, "b": 1}),
            "2",
        ]
    )
    assert await mai.Agent(model, tools=[add])("go") == "2"
    unknown, bad = model.requests[1].last.parts
    assert isinstance(unknown, RetryPrompt)
    assert unknown.content == "Unknown tool name: 'nope'. Available tools: add"
    assert unknown.tool_call_id == "call_1"
    assert isinstance(bad, RetryPrompt)
    assert bad.content.startswith("a: Input should be a valid integer")
    assert model.requests[2].last.parts[0] == ToolReturn(
        tool_name="add", tool_call_id="call_3", content=2
    )


async def test_model_retry_goes_to_the_model_and_is_not_a_module_retry():
    """ModelRetry reaches the model as a retry prompt; the module's retries do not re-run it."""
    calls: list[int] = []

    @mai.module(retries=3)
    async def picky(n: int) -> int:
        calls.append(n)
        if n < 2:
            raise mai.ModelRetry("n must be at least 2")
        return n

    model = ScriptedModel([tool_call("picky", {"n": 1}), tool_call("picky", {"n": 2}), "ok"])
    assert await mai.Agent(model, tools=[picky])("go") == "ok"
    assert calls == [1, 2]
    retry = model.requests[1].last.parts[0]
    assert retry == RetryPrompt(
        content="n must be at least 2", tool_name="picky", tool_call_id="call_1"
    )


async def test_module_retries_are_invisible_to_the_model(autojump_clock):
    """A module's own retries re-run the body; the model sees only the final success."""
    attempts: list[int] = []

    @mai.module(retries=2, backoff=0.5)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "fine"

    model = ScriptedModel([tool_call("flaky"), "ok"])
    assert await mai.Agent(model, tools=[flaky])("go") == "ok"
    assert len(attempts) == 3
    assert model.requests[1].last.parts[0].content == "fine"


async def test_tool_retry_budget_raises_naming_the_tool():
    """Consecutive retry prompts beyond a tool's max_retries raise ToolRetriesExceeded."""

    @mai.module
    async def never(x: int) -> int:
        raise mai.ModelRetry("no")

    model = ScriptedModel([tool_call("never", {"x": 1})] * 3)
    agent = mai.Agent(model, tools=[mai.tool(never, max_retries=1)])
    with pytest.raises(ToolRetriesExceeded) as info:
        await agent("go")
    assert info.value.tool_name == "never"
    assert info.value.max_retries == 1
    assert "tool 'never' failed 2 times in a row" in str(info.value)
    assert len(model.requests) == 2


async def test_on_error_raise_fails_the_run():
    """A tool with on_error='raise' fails the run with its own exception."""

    @mai.module
    async def strict() -> None:
        raise KeyError("missing")

    model = ScriptedModel([tool_call("strict"), "never"])
    with pytest.raises(KeyError, match="missing"):
        await mai.Agent(model, tools=[mai.tool(strict, on_error="raise")])("go")


async def test_structured_output_through_the_final_result_tool():
    """Output that fails validation is sent back naming the field; the fixed one is returned."""
    model = ScriptedModel(
        [
            tool_call("final_result", {"name": "Paris", "population": "many"}),
            tool_call("final_result", {"name": "Paris", "population": 2100000}),
        ]
    )
    agent = mai.Agent(model, output_type=City)
    assert await agent("capital?") == City(name="Paris", population=2100000)
    retry = model.requests[1].last.parts[0]
    assert retry.tool_name == "final_result"
    assert retry.content.startswith("population: Input should be a valid integer")
    assert model.requests[0].params.output_tools[0].parameters["required"] == [
        "name",
        "population",
    ]


async def test_a_non_object_output_is_wrapped_in_the_tool():
    """A list output type is asked for as {"response": [...]} and unwrapped."""
    model = ScriptedModel([tool_call("final_result", {"response": [1, 2]})])
    assert await mai.Agent(model, output_type=list[int])("x") == [1, 2]


async def test_output_retries_run_out_with_a_typed_error_naming_the_turn():
    """Text where a final-result call is required, too often: OutputRetriesExceeded."""
    model = ScriptedModel(["just text", "more text"])
    with pytest.raises(OutputRetriesExceeded) as info:
        await mai.Agent(model, output_type=City, output_retries=1)("x")
    assert info.value.turn == 2
    assert "turn 2" in str(info.value)


async def test_native_and_prompted_output_modes():
    """Native asks for the provider's schema format; prompted puts the schema in instructions."""
    native = ScriptedModel(['{"name": "Oslo", "population": 700000}'])
    out = await mai.Agent(native, output_type=City, output_mode="native")("x")
    assert out == City(name="Oslo", population=700000)
    params = native.requests[0].params
    assert params.output_mode == "native"
    assert params.output_schema is not None
    assert params.output_tools == ()
    prompted = ScriptedModel(['```json\n{"name": "Rome", "population": 1}\n```'])
    agent = mai.Agent(prompted, output_type=City, output_mode="prompted", instructions="Hi.")
    assert await agent("x") == City(name="Rome", population=1)
    system = prompted.requests[0].last.parts[0]
    assert system.content.startswith("Hi.\n\nAlways respond with a JSON object")
    assert '"population"' in system.content


async def test_output_validators_can_ask_for_a_retry():
    """An output validator raising ModelRetry sends its message back; its return is used."""

    def shout(text: str) -> str:
        if not text.isupper():
            raise mai.ModelRetry("answer in capitals")
        return text + "!"

    model = ScriptedModel(["quiet", "LOUD"])
    assert await mai.Agent(model, output_validators=[shout])("x") == "LOUD!"
    assert model.requests[1].last.parts[0] == RetryPrompt(content="answer in capitals")


async def test_history_round_trip_and_continuation():
    """A history saved as JSON loads back equal, and a run continues from it."""
    first = await mai.Agent(ScriptedModel(["one"]), instructions="Sys.").run("a")
    data = first.all_messages_json()
    loaded = load_messages(data)
    assert loaded == first.all_messages
    model = ScriptedModel(["two"])
    second = await mai.Agent(model, instructions="Sys.").run("b", message_history=loaded)
    assert second.output == "two"
    sent = model.requests[0].messages
    assert len(sent) == 3
    assert sent[-1].parts == (UserPrompt(content="b"),)  # no second system prompt
    assert [m.kind for m in second.new_messages] == ["request", "response"]


def test_a_history_of_the_wrong_shape_names_the_index():
    """A saved history with a bad message raises HistoryError naming the message index."""
    good = ModelRequest(parts=(UserPrompt(content="x"),)).model_dump(mode="json")
    with pytest.raises(HistoryError, match=r"message 1 of the history") as info:
        load_messages([good, {"kind": "response", "parts": [{"kind": "nope"}]}])
    assert info.value.index == 1
    with pytest.raises(HistoryError, match="list of messages"):
        load_messages('{"kind": "request"}')
    with pytest.raises(HistoryError, match="JSON"):
        load_messages("not json")


async def test_settings_per_agent_and_per_call_merge():
    """The call's model settings override the agent's, field by field."""
    model = ScriptedModel(["a"])
    agent = mai.Agent(model, model_settings=mai.ModelSettings(temperature=0.5, seed=1))
    await agent.run("x", model_settings=mai.ModelSettings(seed=42, max_tokens=10))
    s = model.requests[0].settings
    assert (s.temperature, s.seed, s.max_tokens) == (0.5, 42, 10)


async def test_usage_limits_name_the_limit_and_the_figure():
    """Request, tool-call and token limits raise UsageLimitExceeded before going over."""
    loop = ScriptedModel([tool_call("add", {"a": 1, "b": 1})] * 5)
    agent = mai.Agent(loop, tools=[add], tool_retries=5)
    with pytest.raises(UsageLimitExceeded) as info:
        await agent.run("x", usage_limits=mai.UsageLimits(request_limit=3))
    assert (info.value.limit, info.value.value, info.value.maximum) == ("request_limit", 4, 3)
    assert "request_limit=3: 4 requests" in str(info.value)
    assert len(loop.requests) == 3
    calls = ScriptedModel([[tool_call("add", {"a": 1, "b": 1})] * 3])
    with pytest.raises(UsageLimitExceeded, match="tool_calls_limit=2: 3 tool calls"):
        await mai.Agent(calls, tools=[add]).run(
            "x", usage_limits=mai.UsageLimits(tool_calls_limit=2)
        )
    tokens = ScriptedModel(["many words in this answer here"])
    with pytest.raises(UsageLimitExceeded) as info:
        await mai.Agent(tokens).run("x", usage_limits=mai.UsageLimits(output_tokens_limit=3))
    assert (info.value.limit, info.value.value) == ("output_tokens_limit", 6)


async def test_an_agent_as_a_tool_rolls_its_usage_up():
    """A sub-agent is a tool of another agent; its usage counts in the caller's."""
    inner = mai.Agent(ScriptedModel(["inner says hi"]), name="helper", description="Helps.")
    outer_model = ScriptedModel([tool_call("helper", {"prompt": "help me"}), "thanks"])
    outer = mai.Agent(outer_model, tools=[inner], name="boss")
    result = await outer.run("go")
    assert result.output == "thanks"
    assert outer_model.requests[0].params.tools[0].description == "Helps."
    assert outer_model.requests[0].params.tools[0].parameters["required"] == ["prompt"]
    assert outer_model.requests[1].last.parts[0].content == "inner says hi"
    assert result.usage.requests == 3


async def test_a_sub_agent_shares_its_callers_dependencies():
    """A sub-agent called as a tool gets the caller's deps for its own tools."""

    @mai.module
    async def whoami(user: mai.agents.Dep[str]) -> str:
        return user

    inner = mai.Agent(ScriptedModel([tool_call("whoami"), "done"]), tools=[whoami], name="inner")
    inner_model = inner.model
    outer = mai.Agent(ScriptedModel([tool_call("inner", {"prompt": "who?"}), "ok"]), tools=[inner])
    await outer.run("go", deps={"user": "grace"})
    assert inner_model.requests[1].last.parts[0].content == "grace"  # type: ignore[attr-defined]


async def test_agents_compose_with_map_and_sequential():
    """An agent is a module: Map runs it per item, >> feeds its output on."""
    agent = mai.Agent(ScriptedModel(lambda messages, params: messages[-1].parts[-1].content * 2))
    assert await mai.Map(agent)(["a", "b", "c"]) == ["aa", "bb", "cc"]
    pipeline = agent >> mai.module(str.upper, inline=True)
    assert await pipeline("x") == "XX"


async def test_dependencies_reach_tools_by_name():
    """A Dep[...] parameter gets the run's deps value; it is not in the schema."""

    @mai.module
    async def whoami(greeting: str, user: mai.agents.Dep[str]) -> str:
        return f"{greeting}, {user}"

    model = ScriptedModel([tool_call("whoami", {"greeting": "hello"}), "ok"])
    agent = mai.Agent(model, tools=[whoami])
    await agent.run("x", deps={"user": "ada"})
    assert model.requests[1].last.parts[0].content == "hello, ada"
    assert "user" not in model.requests[0].params.tools[0].parameters["properties"]
    with pytest.raises(mai.ConfigError, match="dependency 'user'"):
        await mai.Agent(ScriptedModel([tool_call("whoami", {"greeting": "x"})]), tools=[whoami])(
            "x"
        )


async def test_step_ids_and_tokens_in_the_trace():
    """Model requests and tool calls are child steps of the agent; model steps carry tokens."""
    model = ScriptedModel(
        [[tool_call("add", {"a": 1, "b": 2}), tool_call("add", {"a": 3, "b": 4})], "7"]
    )
    _, trace = await mai.trace(mai.Agent(model, tools=[add]), "go")
    assert [(s.name, s.step_id) for s in trace] == [
        ("agent", "1"),
        ("model_request", "1.1"),
        ("add", "1.2"),
        ("add", "1.3"),
        ("model_request", "1.4"),
    ]
    first = trace.find("model_request")[0]
    assert first.tokens == (1, 8)
    assert trace["add"].tokens is None
    assert "tokens=1→8" in trace.render()


async def test_scripted_models_are_never_blocked():
    """block_model_requests() leaves the scripted model alone."""
    with block_model_requests():
        assert await mai.Agent(ScriptedModel(["fine"]))("x") == "fine"


async def test_a_model_string_without_provider_is_a_clear_error():
    """A model string must be 'provider:model'; an unknown provider lists the known ones."""
    with pytest.raises(mai.agents.ModelNotFoundError, match="'provider:model-name'"):
        await mai.Agent("gpt-4o")("x")
    with pytest.raises(mai.agents.ModelNotFoundError, match=r"known providers: .*openai"):
        await mai.Agent("acme:large")("x")


async def test_providers_plug_in_through_the_models_registry():
    """register_model makes 'provider:name' strings build that provider's model."""
    made: list[str] = []

    def factory(name: str) -> ScriptedModel:
        made.append(name)
        return ScriptedModel([f"I am {name}"], model_name=name)

    mai.agents.register_model("fake", factory)
    try:
        assert await mai.Agent("fake:tiny")("x") == "I am tiny"
        assert made == ["tiny"]
        assert any(p.name == "fake" for p in mai.plugins("mai.models"))
    finally:
        assert mai.agents.unregister_model("fake")


def test_two_tools_with_one_name_are_refused():
    """Tool names must be unique in an agent."""
    with pytest.raises(mai.ConfigError, match="two tools are named 'add'"):
        mai.Agent(ScriptedModel([]), tools=[add, add])


async def test_model_response_records_usage_and_finish_reason():
    """The scripted model's responses say why they finished and what they cost."""
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), "3"])
    result = await mai.Agent(model, tools=[add]).run("x")
    responses = [m for m in result.all_messages if isinstance(m, ModelResponse)]
    assert [r.finish_reason for r in responses] == ["tool_calls", "stop"]
    assert all(r.usage.requests == 1 for r in responses)
