"""A process running a durable agent with MCP tools, for the SIGKILL test.

Usage::

    python durable_agent_script.py DB LOG [FIFO]

Opens ``sqlite:///DB``, recovers unfinished runs, starts (or attaches to) run ``mcp-1`` of an
agent whose tools are the stdio test server's (``$CALC_LOG`` = LOG) plus a local ``gate`` tool,
and prints the result. With FIFO, ``gate`` writes this process's pid to it and waits forever:
the test kills the process with SIGKILL there. The model is a function of the history, so a
fresh process answers the same way after a resume.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcp_helpers import calc_command

import mai
from mai.agents import ToolReturn
from mai.testing import ScriptedModel, tool_call

DB, LOG = sys.argv[1], sys.argv[2]
FIFO = sys.argv[3] if len(sys.argv) > 3 else None

toolset = mai.MCPToolset(command=calc_command(), name="calc", prefix="calc_", env={"CALC_LOG": LOG})


@mai.module
async def gate(n: int) -> int:
    """Hold the run here (the test kills the process) when a FIFO was given."""
    if FIFO is not None:
        import os

        async with await trio.open_file(FIFO, "w") as f:
            await f.write(f"{os.getpid()}\n")
        await trio.sleep_forever()
    return n


def script(messages: Any, params: Any) -> Any:
    returns = sum(1 for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturn))
    plan = [tool_call("calc_count", {"n": 1}), tool_call("gate", {"n": 7})]
    plan.append(tool_call("calc_count", {"n": 2}))
    return plan[returns] if returns < len(plan) else "done"


@mai.module
async def mcp_agent(prompt: str) -> str:
    async with toolset.connect() as session:
        tools: list[Any] = await session.list_tools()
        agent = mai.Agent(ScriptedModel(script), tools=[*tools, gate], name="calc_agent")
        return await agent(prompt)


async def main() -> None:
    async with mai.Runtime(f"sqlite:///{DB}", workflows=[mcp_agent]) as rt:
        await rt.recover()
        handle = await rt.start(mcp_agent, "count", run_id="mcp-1")
        print(await handle.result())
        print(" ".join(f"{s.step_id}={s.name}" for s in await rt.steps("mcp-1")))


trio.run(main)
