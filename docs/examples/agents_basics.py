"""Agents: the claims of the Agents page, checked offline with the scripted model.

Run: ``python docs/examples/agents_basics.py`` (Trio's MockClock: virtual time, exact).
"""

from __future__ import annotations

import pydantic
import trio
import trio.testing

import mai
from mai.agents import Dep, TextDelta, ToolCallFinished, UsageLimitExceeded
from mai.testing import ScriptedModel, block_model_requests, tool_call


# [start tools]
@mai.module(timeout=10, retries=2)
async def get_weather(city: str, client: Dep[dict], unit: str = "C") -> str:
    """Current weather of a city.

    Args:
        city: The city's name.
        client: The weather client (a run-scoped dependency, not shown to the model).
        unit: "C" or "F".
    """
    if city not in client:
        raise mai.ModelRetry(f"unknown city {city!r}; known: {', '.join(client)}")
    return f"{client[city]} {unit}"


# [end tools]


async def tools() -> None:
    # [start run]
    model = ScriptedModel(
        [
            tool_call("get_weather", {"city": "Pariss"}),  # a typo: the tool asks to retry
            tool_call("get_weather", {"city": "Paris"}),
            "It is 21 C in Paris.",
        ]
    )
    agent = mai.Agent(model, instructions="Answer briefly.", tools=[get_weather])
    result = await agent.run("Weather in Paris?", deps={"client": {"Paris": 21}})
    assert result.output == "It is 21 C in Paris."
    assert result.usage.requests == 3
    assert result.usage.tool_calls == 2
    # [end run]
    schema = model.requests[0].params.tools[0].parameters
    assert list(schema["properties"]) == ["city", "unit"]
    assert schema["properties"]["city"]["description"] == "The city's name."
    retry = model.requests[1].last.parts[0]
    assert retry.content == "unknown city 'Pariss'; known: Paris"


# [start output]
class City(pydantic.BaseModel):
    name: str
    population: int


async def structured() -> None:
    model = ScriptedModel(
        [
            tool_call("final_result", {"name": "Oslo"}),  # missing field: sent back
            tool_call("final_result", {"name": "Oslo", "population": 709000}),
        ]
    )
    agent = mai.Agent(model, output_type=City)
    assert await agent("Largest city of Norway?") == City(name="Oslo", population=709000)
    assert model.requests[1].last.parts[0].content == "population: Field required"


# [end output]


async def streaming() -> None:
    # [start stream]
    model = ScriptedModel([tool_call("get_weather", {"city": "Rome"}), "Sunny, 25 C."])
    agent = mai.Agent(model, tools=[get_weather])
    text = []
    async with agent.stream("Rome?", deps={"client": {"Rome": 25}}) as events:
        async for event in events:
            if isinstance(event, ToolCallFinished):
                assert event.result.content == "25 C"
            elif isinstance(event, TextDelta):
                text.append(event.content)
    assert "".join(text) == "Sunny, 25 C."
    # [end stream]


async def limits() -> None:
    # [start limits]
    model = ScriptedModel([tool_call("get_weather", {"city": "X"})] * 10)
    agent = mai.Agent(model, tools=[get_weather], tool_retries=10)
    try:
        await agent.run("?", deps={"client": {}}, usage_limits=mai.UsageLimits(request_limit=3))
    except UsageLimitExceeded as err:
        assert err.limit == "request_limit"
        assert str(err) == "agent 'agent' would exceed request_limit=3: 4 requests"
    else:
        raise AssertionError("the limit did not stop the run")
    # [end limits]


async def deadline() -> None:
    # [start deadline]
    @mai.module
    async def slow_search(query: str) -> str:
        await trio.sleep(60)
        return query

    model = ScriptedModel([tool_call("slow_search", {"query": "x"}), "never"])
    agent = mai.Agent(model, tools=[slow_search]).with_(timeout=5)
    start = trio.current_time()
    try:
        await agent("find x")
    except mai.DeadlineExceeded:
        assert trio.current_time() - start == 5  # the tool was cancelled at the deadline
    else:
        raise AssertionError("the deadline did not fire")
    # [end deadline]


async def main() -> None:
    with block_model_requests():  # no test here can bill anyone
        await tools()
        await structured()
        await streaming()
        await limits()
        await deadline()
    print("agents: tools, structured output, streaming, limits and deadline checked")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
