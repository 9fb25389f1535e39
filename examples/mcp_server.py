"""Serve pymai modules as MCP tools (here over HTTP on 127.0.0.1, driven by the SDK's client).

    python examples/mcp_server.py           # serve, call the tools as an MCP client would, stop
    python examples/mcp_server.py --stdio   # serve on stdio (for Claude Desktop, IDEs, agents)
    mai mcp serve examples/mcp_server.py:TOOLS --http --port 8765    # the same, from the CLI

Needs the MCP extra: pip install 'pymai[mcp]'.
"""

from __future__ import annotations

import functools
import sys

import trio
from pydantic import BaseModel

import mai


class Conversion(BaseModel):
    """A converted temperature."""

    celsius: float
    fahrenheit: float


@mai.module
async def to_fahrenheit(celsius: float) -> Conversion:
    """Convert a temperature from Celsius to Fahrenheit.

    Args:
        celsius: The temperature in degrees Celsius.
    """
    return Conversion(celsius=celsius, fahrenheit=celsius * 9 / 5 + 32)


@mai.module(timeout=5, retries=2)
def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: Any text.
    """
    return len(text.split())


TOOLS = [to_fahrenheit, word_count]


async def demo() -> None:
    from mcp import Client  # the SDK's own client, as any MCP host would connect

    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            functools.partial(mai.serve_mcp, TOOLS, transport="http", port=0, name="units")
        )
        print(f"serving {len(TOOLS)} modules as MCP tools on {url}")
        async with Client(url) as client:
            for tool in (await client.list_tools()).tools:
                params = sorted(tool.input_schema["properties"])
                print(f"  {tool.name}: {tool.description}  input={params}")
            result = await client.call_tool("to_fahrenheit", {"celsius": 100})
            print("to_fahrenheit(100) ->", result.structured_content)
            result = await client.call_tool(
                "word_count", {"text": "structured concurrency for agents"}
            )
            print("word_count(...) ->", result.structured_content)
            bad = await client.call_tool("to_fahrenheit", {"celsius": "hot"})
            print("bad arguments ->", bad.content[0].text)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    if "--stdio" in sys.argv:
        trio.run(functools.partial(mai.serve_mcp, TOOLS, transport="stdio", name="units"))
    else:
        trio.run(demo)
