"""Helpers shared by the MCP tests: the third-party test server, pids, FIFOs, an ASGI server."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
CALC = str(HERE / "calc_server.py")


def calc_command(*extra: str) -> list[str]:
    """The command that starts the third-party test server over stdio."""
    return [sys.executable, CALC, *extra]


def calc_module() -> Any:
    """A fresh copy of the test server's module, imported in this process (HTTP tests)."""
    spec = importlib.util.spec_from_file_location("calc_server", CALC)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def read_pid(fifo: Path) -> int:
    """Wait until a tool writes its pid into ``fifo`` (an event, not a sleep)."""
    async with await trio.open_file(fifo) as f:
        return int((await f.read()).strip())


def alive(pid: int) -> bool:
    """Whether a process exists (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def serve_asgi(app: Any, nursery: trio.Nursery, host: str = "127.0.0.1") -> str:
    """Serve an ASGI app with hypercorn's Trio worker on a free port; return its base URL."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:0"]
    config.accesslog = None
    config.errorlog = None

    async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status)

    binds: list[str] = await nursery.start(run)
    return binds[0]
