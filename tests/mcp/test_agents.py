"""MCP tools in agents and in durable runs: tool errors reach the model; resume repeats nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from mcp_helpers import calc_command

import mai
from mai.agents import RetryPrompt, ToolReturn, tool_definition
from mai.testing import ScriptedModel, tool_call

if TYPE_CHECKING:
    from pathlib import Path


def calc(log: Path | None = None) -> mai.MCPToolset:
    """The stdio test server; with ``log``, it writes what reaches it there."""
    env = {"CALC_LOG": str(log)} if log is not None else None
    return mai.MCPToolset(command=calc_command(), name="calc", prefix="calc_", env=env)


async def test_mcp_tool_definition_is_the_servers_schema():
    """An MCP tool given to an agent is described with the server's own input/output schemas."""
    async with calc().connect() as session:
        add = await session.tool("add")
        d = tool_definition(add)
    assert d.name == "calc_add"
    assert d.description is not None
    assert d.description.startswith("Add two integers.")
    assert d.parameters["properties"]["a"]["type"] == "integer"
    assert d.parameters["required"] == ["a", "b"]
    assert d.output_schema is not None
    assert d.output_schema["properties"]["total"]["type"] == "integer"


async def test_agent_calls_mcp_tools_and_sees_their_errors():
    """An agent calls MCP tools in one session; a server tool error comes back as a retry prompt."""
    model = ScriptedModel(
        [
            tool_call("calc_add", {"a": 2, "b": 3}),
            tool_call("calc_fail", {"reason": "bad day"}),
            "The sum is 5.",
        ]
    )
    async with calc().connect() as session:
        agent = mai.Agent(model, tools=await session.list_tools())
        assert await agent("What is 2 + 3?") == "The sum is 5."
    returned = model.requests[1].last.parts[0]
    assert isinstance(returned, ToolReturn)
    assert returned.content == {"total": 5}
    retry = model.requests[2].last.parts[0]
    assert isinstance(retry, RetryPrompt)
    assert "cannot do that: bad day" in retry.content


class _Stop(Exception):
    """Leaves the runtime block abruptly (the process 'dies' mid-run)."""


async def test_durable_agent_resume_repeats_no_list_and_no_call(tmp_path: Path):
    """Killed mid-run and resumed, a durable MCP agent repeats no recorded list or call."""
    log = tmp_path / "calc.log"
    toolset = calc(log)
    entered = trio.Event()
    release = trio.Event()

    @mai.module
    async def gate(n: int) -> int:
        """Wait for the test to let the run go on."""
        entered.set()
        if not release.is_set():
            await trio.sleep_forever()
        return n

    model = ScriptedModel(
        [
            tool_call("calc_count", {"n": 1}),
            tool_call("gate", {"n": 7}),
            tool_call("calc_count", {"n": 2}),
            "done",
        ]
    )

    @mai.module
    async def mcp_agent(prompt: str) -> str:
        async with toolset.connect() as session:
            tools: list[Any] = await session.list_tools()
            agent = mai.Agent(model, tools=[*tools, gate], name="calc_agent")
            return await agent(prompt)

    url = f"sqlite:///{tmp_path / 'mai.db'}"

    async def interrupted() -> None:
        async with mai.Runtime(url, workflows=[mcp_agent]) as rt:
            await rt.start(mcp_agent, "count", run_id="mcp-1")
            await entered.wait()
            raise _Stop

    with trio.fail_after(60), pytest.raises(_Stop):
        await interrupted()
    assert log.read_text().split("\n")[:-1] == ["list", "call 1"]
    release.set()
    with trio.fail_after(60):
        async with mai.Runtime(url, workflows=[mcp_agent]) as rt:
            (handle,) = await rt.recover()
            assert await handle.result() == "done"
            steps = [(s.step_id, s.name) for s in await rt.steps("mcp-1")]
    # Resume: the recorded listing and call 1 were not repeated; one unrecorded listing checks
    # the recorded tools before the first new call.
    assert log.read_text().split("\n")[:-1] == ["list", "call 1", "list", "call 2"]
    assert ("1.1", "calc:tools/list") in steps
    assert sum(1 for _, name in steps if name == "calc_count") == 2


async def test_resume_refuses_a_tool_whose_schema_changed(tmp_path: Path):
    """A recorded tool that changed its schema on the server is refused, naming the tool."""
    from mai.core.mcp._client import MCPTool

    async with calc().connect() as session:
        add = await session.tool("add")
        changed = dict(add.definition)
        changed["input_schema"] = {"type": "object", "properties": {"x": {"type": "string"}}}
        stale = MCPTool(add.toolset, changed, verify=True)
        with pytest.raises(mai.MCPToolChangedError, match="'add'") as info:
            await stale(x="1")
        assert info.value.tool == "add"
        vanished = MCPTool(add.toolset, {**add.definition, "name": "gone"}, verify=True)
        with pytest.raises(mai.MCPToolChangedError, match="no longer has the tool 'gone'"):
            await vanished()


async def test_around_gives_each_agent_run_one_session():
    """toolset.around(agent): one MCP session (one server process) per agent run, for all calls."""
    toolset = calc()
    tools = await toolset.list_tools()

    def script(messages: Any, params: Any) -> Any:
        returns = [
            p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturn)
        ]
        if len(returns) < 2:
            return tool_call("calc_pid", {})
        return f"{returns[0].content['result']} {returns[1].content['result']}"

    agent = toolset.around(mai.Agent(ScriptedModel(script), tools=tools, name="pids"))
    first = (await agent("pids?")).split()
    second = (await agent("pids?")).split()
    assert first[0] == first[1]  # both calls of a run share its session
    assert second[0] == second[1]
    assert first[0] != second[0]  # each run has its own


async def test_durable_agent_killed_with_sigkill_repeats_no_list_and_no_call(
    tmp_path: Path, fifo: Path
):
    """A real process killed with SIGKILL mid-run, then resumed: no recorded list or call again."""
    import signal
    import sys

    from mcp_helpers import HERE, read_pid

    script = str(HERE / "durable_agent_script.py")
    db, log = str(tmp_path / "mai.db"), tmp_path / "calc.log"
    first = await trio.lowlevel.open_process([sys.executable, script, db, str(log), str(fifo)])
    try:
        with trio.fail_after(60):
            pid = await read_pid(fifo)
        assert pid == first.pid
        first.send_signal(signal.SIGKILL)
    finally:
        with trio.move_on_after(30):
            await first.wait()
    assert first.returncode == -signal.SIGKILL
    assert log.read_text().split("\n")[:-1] == ["list", "call 1"]
    second = await trio.run_process(
        [sys.executable, script, db, str(log)], capture_stdout=True, check=False
    )
    out = second.stdout.decode().splitlines()
    assert second.returncode == 0
    assert out[0] == "done"
    assert log.read_text().split("\n")[:-1] == ["list", "call 1", "list", "call 2"]
    assert "1.1=calc:tools/list" in out[1].split()
