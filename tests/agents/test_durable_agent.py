"""An agent inside a durable run: model requests and tool calls are recorded steps."""

from __future__ import annotations

import itertools

import pytest
import trio

import mai
from mai.testing import ScriptedModel, tool_call

_names = itertools.count()


class _Stop(Exception):
    """Leaves the runtime block abruptly (the process 'dies' mid-run)."""


async def test_resume_replays_recorded_turns_without_asking_the_model() -> None:
    """A resumed agent run makes no model request for recorded turns; tool steps replay."""
    release = trio.Event()
    gate_calls: list[int] = []

    @mai.module
    async def gate(n: int) -> int:
        gate_calls.append(n)
        if not release.is_set():
            await trio.sleep_forever()
        return n * 10

    model = ScriptedModel([tool_call("gate", {"n": 4}), "forty"])
    agent = mai.Agent(model, tools=[gate], name="durable_agent")
    url = f"memory://agents-{next(_names)}"

    async def interrupted() -> None:
        async with mai.Runtime(url, workflows=[agent]) as rt:
            await rt.start(agent, "go", run_id="agent-1")
            while not gate_calls:  # noqa: ASYNC110 - polls a plain list
                await trio.sleep(0.001)
            raise _Stop

    with trio.fail_after(5), pytest.raises(_Stop):
        await interrupted()
    assert len(model.requests) == 1
    release.set()
    async with mai.Runtime(url, workflows=[agent]) as rt:
        (handle,) = await rt.recover()
        assert await handle.result() == "forty"
        steps = list(await rt.steps("agent-1"))
        trace = await rt.trace("agent-1")
    assert len(model.requests) == 2  # turn 1 was replayed, not asked again
    assert gate_calls == [4, 4]  # the interrupted tool body ran again (at least once)
    assert [(s.step_id, s.name) for s in steps] == [
        ("1.1", "model_request"),
        ("1.2", "gate"),
        ("1.3", "model_request"),
    ]
    first_input = steps[0].input
    assert first_input["args"][0].startswith("contract ")  # the agent's contract digest
    assert first_input["args"][1] == 1  # the turn number
    second_input = steps[2].input
    assert second_input["args"][0] == first_input["args"][0]
    assert second_input["args"][1] == 2
    assert [p["kind"] for p in second_input["args"][2]["parts"]] == ["tool-return"]
    tokens = [s.tokens for s in trace.find("model_request")]
    assert tokens == [(1, 2), (4, 1)]  # what `mai trace` shows per model step
    assert "tokens=1→2" in trace.render()
