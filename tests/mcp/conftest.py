"""Fixtures for the MCP tests: real MCP servers in subprocesses (stdio) and on 127.0.0.1 (HTTP).

The tests need the ``mcp`` extra (``pip install 'pymai[mcp]'``). Without it they skip locally and
fail when ``MAI_REQUIRE_MCP=1`` (``.ci/run`` sets it).
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import pytest
from realparts import unavailable

if TYPE_CHECKING:
    from pathlib import Path

    import trio


@pytest.fixture(autouse=True)
def _mcp_available() -> None:
    """Skip (or fail, under MAI_REQUIRE_MCP=1) when the MCP extra is missing."""
    missing = [m for m in ("mcp", "hypercorn", "httpx2") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"MCP tests need {', '.join(missing)}: pip install 'pymai[mcp]'"
        unavailable("MAI_REQUIRE_MCP", message)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe through which a server tool reports its pid when it starts."""
    path = tmp_path / "started.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
async def calc_http(nursery: trio.Nursery) -> tuple[str, Any]:
    """The test server on 127.0.0.1 over streamable HTTP: (URL, its module, in this process)."""
    from mcp_helpers import calc_module, serve_asgi

    calc = calc_module()
    url = await serve_asgi(calc.server.streamable_http_app(), nursery)
    return f"{url}/mcp", calc
