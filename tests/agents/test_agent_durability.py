"""Durable agents on the scripted model: the plan contract, billed/replayed usage, replays."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import trio

import mai
from mai.agents import ModelSettings, TurnReplayed
from mai.testing import ScriptedModel, tool_call

_names = itertools.count()


class _Stop(Exception):
    """Leaves the runtime block abruptly (the process 'dies' mid-run)."""


async def _turn_usages(rt: mai.Runtime) -> dict[str, dict[str, int]]:
    """The recorded usage of each model request of run-1, by step id."""
    steps = await rt.steps("run-1")
    return {s.step_id: s.output["usage"] for s in steps if s.name == "model_request"}


def _url() -> str:
    return f"memory://durability-{next(_names)}"


def _gated() -> tuple[mai.Module, list[int], trio.Event]:
    """A tool that blocks until released, and the list of its calls."""
    release = trio.Event()
    calls: list[int] = []

    @mai.module
    async def gate(n: int) -> int:
        """Multiply by ten once released."""
        calls.append(n)
        if not release.is_set():
            await trio.sleep_forever()
        return n * 10

    return gate, calls, release


async def _crash_in_tool(url: str, workflow: mai.Module, calls: list[int], *args: Any) -> None:
    """Start ``workflow`` and 'die' once the gated tool has been called."""

    async def interrupted() -> None:
        async with mai.Runtime(url, workflows=[workflow]) as rt:
            await rt.start(workflow, *args, run_id="run-1")
            while not calls:  # noqa: ASYNC110 - polls a plain list
                await trio.sleep(0.001)
            raise _Stop

    with trio.fail_after(5), pytest.raises(_Stop):
        await interrupted()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"instructions": "Be terse."}, "instructions"),
        ({"model_settings": ModelSettings(temperature=0.7)}, "model_settings"),
        ({"output_type": int}, "output"),
        ({"tools": "other_schema"}, "tools"),
    ],
)
async def test_a_changed_contract_is_refused_before_any_request(
    change: dict[str, Any], named: str
) -> None:
    """Instructions, settings, tools' schemas and output are in the plan; a change is refused."""
    gate, calls, _ = _gated()
    first = ScriptedModel([tool_call("gate", {"n": 1}), "done"])
    agent = mai.Agent(first, instructions="Be kind.", tools=[gate], name="contract_agent")
    url = _url()
    await _crash_in_tool(url, agent, calls, "go")
    assert len(first.requests) == 1

    tools: list[Any] = [gate]
    if change.get("tools") == "other_schema":

        @mai.module(name="gate")
        async def gate2(n: int, extra: str = "") -> int:
            """Multiply by ten (now with an extra parameter)."""
            return n * 10

        tools = [gate2]
        change = {}
    kwargs: dict[str, Any] = {"instructions": "Be kind.", "tools": tools, **change}
    second = ScriptedModel(["done"])
    changed = mai.Agent(second, name="contract_agent", **kwargs)
    async with mai.Runtime(url, workflows=[changed]) as rt:
        with pytest.raises(mai.PlanMismatchError) as info:
            await rt.resume("run-1", changed)
        assert (await rt.get("run-1")).status != mai.RunStatus.SUCCEEDED
    assert second.requests == []  # refused before any model request
    assert info.value.step_id == "1"
    assert named in str(info.value)


async def test_unchanged_contract_resumes() -> None:
    """The same agent rebuilt in a 'new process' (a new object) resumes its recorded run."""
    gate, calls, release = _gated()
    first = ScriptedModel([tool_call("gate", {"n": 2}), "twenty"])
    agent = mai.Agent(first, instructions="Be kind.", tools=[gate], name="same_agent")
    url = _url()
    await _crash_in_tool(url, agent, calls, "go")
    release.set()
    second = ScriptedModel(["twenty"])
    again = mai.Agent(second, instructions="Be kind.", tools=[gate], name="same_agent")
    async with mai.Runtime(url, workflows=[again]) as rt:
        handle = await rt.resume("run-1", again)
        assert await handle.result() == "twenty"
    assert len(second.requests) == 1


async def test_usage_separates_billed_from_replayed_and_stream_says_replayed() -> None:
    """After a resume the replayed turn's tokens are 'replayed', the new one's 'billed'."""
    gate, calls, release = _gated()
    model = ScriptedModel([tool_call("gate", {"n": 3}), "thirty"])
    agent = mai.Agent(model, tools=[gate], name="usage_agent")
    seen: list[list[str]] = []

    @mai.module
    async def usage_flow(prompt: str) -> dict[str, Any]:
        """Run the agent streaming; return its output and usage split."""
        kinds: list[str] = []
        seen.append(kinds)
        async with agent.stream(prompt) as events:
            async for event in events:
                kinds.append(event.kind)
                if isinstance(event, TurnReplayed):
                    assert event.turn == 1
                    assert event.response.tool_calls[0].tool_name == "gate"
            result = events.result
        assert result is not None
        return {
            "output": result.output,
            "usage": result.usage.model_dump(),
            "billed": result.billed.model_dump(),
            "replayed": result.replayed.model_dump(),
        }

    url = _url()
    await _crash_in_tool(url, usage_flow, calls, "go")
    release.set()
    async with mai.Runtime(url, workflows=[usage_flow]) as rt:
        out = await (await rt.resume("run-1", usage_flow)).result()
        turns = await _turn_usages(rt)
    assert out["output"] == "thirty"
    assert len(model.requests) == 2
    first_turn, second_turn = turns["1.1.1"], turns["1.1.3"]
    assert out["replayed"]["input_tokens"] == first_turn["input_tokens"] > 0
    assert out["replayed"]["requests"] == 1
    assert out["billed"]["input_tokens"] == second_turn["input_tokens"] > 0
    assert out["billed"]["requests"] == 1
    assert out["usage"]["input_tokens"] == first_turn["input_tokens"] + second_turn["input_tokens"]
    resumed = seen[-1]
    assert resumed.count("turn-replayed") == 1
    assert "text-delta" in resumed  # the live turn streamed
    assert resumed.index("turn-replayed") < resumed.index("text-delta")
    assert resumed[-1] == "final-output"


async def test_sub_agent_usage_rolls_up_billed_and_replayed_apart() -> None:
    """A sub-agent (a tool of a durable agent) adds billed and replayed usage to its caller."""
    gate, calls, release = _gated()
    inner_model = ScriptedModel([tool_call("gate", {"n": 5}), "fifty"])
    inner = mai.Agent(inner_model, tools=[gate], name="helper", description="Asks the gate.")
    outer_model = ScriptedModel([tool_call("helper", {"prompt": "ask"}), "all done"])
    outer = mai.Agent(outer_model, tools=[inner], name="boss")

    @mai.module
    async def boss_flow(prompt: str) -> dict[str, Any]:
        """Run the outer agent; return its usage split."""
        r = await outer.run(prompt)
        return {"billed": r.billed.model_dump(), "replayed": r.replayed.model_dump()}

    url = _url()
    await _crash_in_tool(url, boss_flow, calls, "go")
    release.set()
    async with mai.Runtime(url, workflows=[boss_flow]) as rt:
        handle = await rt.resume("run-1", boss_flow)
        out = await handle.result()
        names = [(s.step_id, s.name) for s in (await rt.steps("run-1"))]
        turns = await _turn_usages(rt)
    assert len(outer_model.requests) == 2  # turn 1 of boss was replayed
    assert len(inner_model.requests) == 2  # helper's turn 1 replayed, turn 2 asked
    # boss is 1.1; helper (its tool call) is 1.1.2; an agent is a composite: not recorded
    assert ("1.1.2.1", "model_request") in names
    # replayed: boss turn 1 + helper turn 1; billed: helper turn 2 + boss turn 2
    assert out["replayed"]["requests"] == 2
    assert out["billed"]["requests"] == 2
    assert out["replayed"]["input_tokens"] == (
        turns["1.1.1"]["input_tokens"] + turns["1.1.2.1"]["input_tokens"]
    )
    assert out["billed"]["input_tokens"] == (
        turns["1.1.2.3"]["input_tokens"] + turns["1.1.3"]["input_tokens"]
    )


async def test_a_recorded_sub_agent_call_counts_as_replayed() -> None:
    """A sub-agent that finished before the crash still counts, as replayed (its turns replay)."""
    gate, calls, release = _gated()
    inner_model = ScriptedModel(["inner answer"])
    inner = mai.Agent(inner_model, name="helper", description="Answers.")
    outer_model = ScriptedModel(
        [tool_call("helper", {"prompt": "ask"}), tool_call("gate", {"n": 1}), "all done"]
    )
    outer = mai.Agent(outer_model, tools=[inner, gate], name="boss")

    @mai.module
    async def boss_flow(prompt: str) -> dict[str, Any]:
        """Run the outer agent; return its usage split."""
        r = await outer.run(prompt)
        return {"billed": r.billed.model_dump(), "replayed": r.replayed.model_dump()}

    url = _url()
    await _crash_in_tool(url, boss_flow, calls, "go")
    release.set()
    async with mai.Runtime(url, workflows=[boss_flow]) as rt:
        out = await (await rt.resume("run-1", boss_flow)).result()
        turns = await _turn_usages(rt)
    assert len(inner_model.requests) == 1  # never asked again
    assert out["replayed"]["requests"] == 3  # boss turns 1-2 and the helper's one turn
    assert out["billed"]["requests"] == 1
    assert out["replayed"]["input_tokens"] == sum(
        turns[k]["input_tokens"] for k in ("1.1.1", "1.1.2.1", "1.1.3")
    )


async def test_recorded_bytes_grow_linearly_with_turns() -> None:
    """What a durable agent records per turn does not grow with the conversation (40 vs 10)."""

    @mai.module
    async def echo(n: int) -> int:
        """Return n."""
        return n

    async def recorded_bytes(turns: int) -> int:
        script: list[Any] = [tool_call("echo", {"n": i}) for i in range(turns - 1)]
        agent = mai.Agent(ScriptedModel([*script, "end"]), tools=[echo], name=f"long{turns}")
        async with mai.Runtime(_url(), workflows=[agent]) as rt:
            handle = await rt.start(agent, "go", run_id="long")
            assert await handle.result() == "end"
            steps = list(await rt.steps("long"))
        assert sum(s.name == "model_request" for s in steps) == turns
        return sum(len(json.dumps(s.input)) + len(json.dumps(s.output)) for s in steps)

    ten, forty = await recorded_bytes(10), await recorded_bytes(40)
    assert forty <= 5 * ten
    assert forty > 3 * ten  # it does grow with the number of turns (the measure is real)


async def test_a_crash_mid_stream_re_requests_only_that_generation() -> None:
    """Killed while turn 2 streams: the resume replays turn 1 and asks for turn 2 again only."""

    @mai.module
    async def echo(n: int) -> int:
        """Return n."""
        return n

    answer = "a long answer in many little words"
    model = ScriptedModel([tool_call("echo", {"n": 1}), answer, answer], chunk_delay=0.01)
    agent = mai.Agent(model, tools=[echo], name="streamer")
    runs: list[list[Any]] = []

    @mai.module
    async def stream_flow(prompt: str) -> str:
        """Stream the agent; keep its events."""
        events_seen: list[Any] = []
        runs.append(events_seen)
        async with agent.stream(prompt) as events:
            async for event in events:
                events_seen.append(event)  # noqa: PERF401 - seen live, by the test
        assert events.result is not None
        return events.result.output

    url = _url()

    async def interrupted() -> None:
        async with mai.Runtime(url, workflows=[stream_flow]) as rt:
            await rt.start(stream_flow, "go", run_id="run-1")
            while not (runs and any(e.kind == "text-delta" for e in runs[-1])):  # noqa: ASYNC110
                await trio.sleep(0.001)
            raise _Stop

    with trio.fail_after(5), pytest.raises(_Stop):
        await interrupted()
    assert len(model.requests) == 2  # turn 2 was streaming when the process 'died'
    async with mai.Runtime(url, workflows=[stream_flow]) as rt:
        out = await (await rt.resume("run-1", stream_flow)).result()
    assert out == answer
    assert len(model.requests) == 3  # only the interrupted generation was asked again
    kinds = [e.kind for e in runs[-1]]
    assert kinds.count("turn-replayed") == 1
    assert kinds[0] == "turn-replayed"
    assert "".join(e.content for e in runs[-1] if e.kind == "text-delta") == out


async def test_a_changed_contract_inside_plain_code_stops_at_the_first_turn() -> None:
    """An agent called from a plain-code workflow (invisible to the plan) is checked per turn."""
    gate, calls, _ = _gated()
    first = ScriptedModel([tool_call("gate", {"n": 1}), "done"])
    holder = {"agent": mai.Agent(first, instructions="Be kind.", tools=[gate], name="inner")}

    @mai.module
    async def plain_flow(prompt: str) -> str:
        """Call whichever agent the 'code' has now."""
        return str(await holder["agent"](prompt))

    url = _url()
    await _crash_in_tool(url, plain_flow, calls, "go")
    second = ScriptedModel(["done"])
    holder["agent"] = mai.Agent(second, instructions="Be rude.", tools=[gate], name="inner")
    async with mai.Runtime(url, workflows=[plain_flow]) as rt:
        handle = await rt.resume("run-1", plain_flow)
        with pytest.raises(mai.MaiError) as info:
            await handle.result()
    assert second.requests == []  # stopped before any model request
    assert "1.1.1" in str(info.value)
    assert "contract " in str(info.value)
