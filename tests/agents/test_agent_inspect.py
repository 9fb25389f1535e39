"""Inspecting a durable agent run: turns, tokens, tool calls and pending approvals in the CLI."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest
import trio

import mai
from mai.testing import ScriptedModel, tool_call

if TYPE_CHECKING:
    from pathlib import Path


class _Stop(Exception):
    """Leaves the runtime block abruptly (the process 'dies' mid-run)."""


async def _mai(*args: str) -> str:
    done = await trio.run_process(
        [sys.executable, "-m", "mai", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _agent() -> tuple[mai.Agent, ScriptedModel]:
    @mai.module
    async def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city}: 21 C"

    @mai.module
    async def book(city: str, nights: int) -> str:
        """Book a hotel."""
        return f"booked {nights} nights in {city}"

    model = ScriptedModel(
        [
            tool_call("lookup", {"city": "Lyon"}),
            tool_call("book", {"city": "Lyon", "nights": 2}),
            "Booked.",
        ],
        model_name="tiny-scripted",
    )
    tools = [lookup, mai.tool(book, requires_approval=True)]
    return mai.Agent(model, tools=tools, name="travel"), model


async def test_runs_show_steps_and_trace_describe_an_agent_run(tmp_path: Path) -> None:
    """Turns (model, tokens), tool calls (args, result) and the pending approval are shown."""
    url = f"sqlite:///{tmp_path}/runs.db"
    agent, _ = _agent()

    async def until_waiting() -> None:
        async with mai.Runtime(url, workflows=[agent]) as rt:
            await rt.start(agent, "Book Lyon", run_id="trip")
            with trio.fail_after(5):
                while not any(  # noqa: ASYNC110 - polls the store
                    s.name == "approval_request" for s in (await rt.steps("trip"))
                ):
                    await trio.sleep(0.001)
            raise _Stop

    with pytest.raises(_Stop):
        await until_waiting()
    shown = await _mai("runs", "show", "trip", "--store", url)
    assert "turn 1: tiny-scripted (scripted) tokens" in shown
    assert 'calls lookup({"city": "Lyon"})' in shown
    assert 'tool lookup args {"args": ["Lyon"], "kwargs": {}} -> "Lyon: 21 C"' in shown
    assert (
        'waiting for approval: book({"city": "Lyon", "nights": 2}) on topic approval:call_2'
        in shown
    )
    assert "mai runs send trip approval:call_2" in shown
    data = json.loads(await _mai("runs", "show", "trip", "--store", url, "--json"))
    events = [e["event"] for e in data["agent"]]
    assert events == ["turn", "tool call", "turn", "waiting for approval"]
    assert data["agent"][0]["input_tokens"] > 0

    await _mai("runs", "send", "trip", "approval:call_2", '"approve"', "--store", url)
    async with mai.Runtime(url, workflows=[agent]) as rt:
        (handle,) = await rt.recover()
        assert await handle.result() == "Booked."
    steps = await _mai("runs", "steps", "trip", "--store", url)
    assert "approval requested: book" in steps
    assert "decided" in steps
    assert "booked 2 nights in Lyon" in steps
    assert "turn 3: tiny-scripted" in steps
    trace = await _mai("trace", "trip", "--store", url)
    assert "model_request" in trace
    assert "tokens=" in trace
    assert "agent turns" in trace
