"""Use an MCP server's tools as pymai modules (the server here is examples/mcp_server.py on stdio).

    python examples/mcp_client.py

Needs the MCP extra: pip install 'pymai[mcp]'.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

import mai

SERVER = str(Path(__file__).with_name("mcp_server.py"))

# How to reach the server: a command (stdio subprocess) here; a URL for streamable HTTP, with
# secrets from the environment: mai.MCPToolset(url, bearer_token_env="UNITS_TOKEN").
units = mai.MCPToolset(command=[sys.executable, SERVER, "--stdio"], name="units", prefix="units_")


@mai.module
def describe(conversion: dict[str, float]) -> str:
    return f"{conversion['celsius']:g} °C is {conversion['fahrenheit']:g} °F"


async def main() -> None:
    # One MCP session for the block: opened and closed by this task, the process always reaped.
    async with units.connect() as session:
        tools = await session.list_tools()  # modules; a recorded step inside a durable run
        for tool in tools:
            print(f"{tool.name}: {tool.description.splitlines()[0]}")
        to_f = await session.tool("to_fahrenheit")
        print(await to_f(celsius=37))
        # MCP tools compose like any module: here in a Sequential and a Map.
        print(await (to_f >> describe)({"celsius": -40}))
        print(await mai.Map(to_f >> describe)([{"celsius": c} for c in (0, 20, 100)]))
        # A tool error reported by the server is a typed error (a retry prompt inside an agent).
        try:
            await to_f(celsius="hot")
        except mai.MCPToolError as exc:
            print(f"tool error from {exc.server!r}/{exc.tool!r}: {exc.text.splitlines()[0]}")


if __name__ == "__main__":
    trio.run(main)
