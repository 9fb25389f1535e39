"""A real MCP server (stdio) with the tool the tiny model calls, for the end-to-end test.

Run as ``python weather_mcp.py``. Its one tool, ``get_weather(city)``, answers ``"sunny"`` and,
when ``$WEATHER_LOG`` names a file, appends ``call CITY`` to it, so the test can count the calls
that reached the server (exactly one, after the approval, whatever was killed before).
"""

from __future__ import annotations

import os

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("weather")


@server.tool()
def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: The city's name.
    """
    path = os.environ.get("WEATHER_LOG")
    if path:
        with open(path, "a") as f:  # noqa: PTH123 - a plain append
            f.write(f"call {city}\n")
    return "sunny"


if __name__ == "__main__":
    anyio.run(server.run_stdio_async, backend="trio")
