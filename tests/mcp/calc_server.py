"""A third-party MCP server for the client tests, built on the SDK's own MCPServer.

Run as ``python calc_server.py`` (stdio). Tools: ``add``, ``fail`` (a tool error), ``block``
(reports its pid through a FIFO, then waits until cancelled), ``die`` (the process exits in the
middle of the call), ``env`` (reads an environment variable), ``count`` (appends to a ledger).
When ``$CALC_LOG`` names a file, every listing appends ``list`` and every ``count`` call appends
``call N`` to it, so a test can tell what reached the server.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel


class _LoggingServer(MCPServer):
    async def list_tools(self) -> list[Any]:
        _log("list")
        return await super().list_tools()


server = _LoggingServer("calc")


def _log(line: str) -> None:
    path = os.environ.get("CALC_LOG")
    if path:
        with open(path, "a") as f:  # noqa: PTH123 - a plain append
            f.write(line + "\n")


class Sum(BaseModel):
    """The result of an addition."""

    total: int


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return Sum(total=a + b)


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always fail with the given reason."""
    raise ToolError(f"cannot do that: {reason}")


#: Called when a ``block`` call is cancelled (tests serving this module in-process hook in here).
ON_CANCEL: list[Any] = []


@server.tool()
async def block(fifo: str) -> str:
    """Write this process's pid to ``fifo``, then wait until cancelled."""
    await anyio.to_thread.run_sync(_write_pid, fifo)
    try:
        await anyio.Event().wait()
    except anyio.get_cancelled_exc_class():
        for hook in ON_CANCEL:
            hook()
        raise
    return "unreachable"


@server.tool()
async def die(fifo: str) -> str:
    """Write this process's pid to ``fifo``, then exit in the middle of the call."""
    await anyio.to_thread.run_sync(_write_pid, fifo)
    os._exit(3)


@server.tool()
def env(name: str) -> str:
    """Return an environment variable of the server process ('' when unset)."""
    return os.environ.get(name, "")


@server.tool()
async def hang() -> str:
    """Wait until cancelled."""
    await anyio.Event().wait()
    return "unreachable"


@server.tool()
def pid() -> int:
    """Return the server's process id."""
    return os.getpid()


@server.tool()
def count(n: int) -> int:
    """Record call number ``n`` in the ledger and return it."""
    _log(f"call {n}")
    return n


def _write_pid(fifo: str) -> None:
    with open(fifo, "w") as f:  # noqa: PTH123 - a FIFO, opened the plain way
        f.write(f"{os.getpid()}\n")


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "trio"
    anyio.run(server.run_stdio_async, backend=backend)
