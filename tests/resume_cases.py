"""Workflows and an app file shared by the SQLite and PostgreSQL resume tests (one copy)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import mai

if TYPE_CHECKING:
    import trio

#: Added to ``client_step``'s input by ``outer``: a test changes it between attempts.
shift = [0]
#: ``entered`` is set when ``gate`` is reached; ``gate`` blocks until ``gate`` is set. A test
#: puts fresh events here before each run.
hold: dict[str, trio.Event] = {}


@mai.module
async def client_step(x: int, client: Any) -> int:
    """A step with an input that is not JSON (a client object) beside a JSON one."""
    return x


@mai.module
async def gate(x: int) -> int:
    """Blocks until released (to interrupt a run here)."""
    hold["entered"].set()
    await hold["gate"].wait()
    return x


@mai.module
async def outer(x: int) -> int:
    """Calls a step whose input changes between attempts (a non-deterministic workflow)."""
    y = await client_step(x + shift[0], threading.Lock())
    return await gate(y)


#: ``flowapp.py`` for the `mai run` / `mai runs resume` tests: ``crash_once`` SIGKILLs its
#: process the first time; ``ledger.txt`` records which bodies ran.
CRASH_ONCE_APP = """\

import os
import signal
from pathlib import Path

import mai

HERE = Path(__file__).parent


def ledger(name):
    with open(HERE / "ledger.txt", "a") as f:
        f.write(name + "\\n")


@mai.module
async def first(n: int) -> int:
    ledger("first")
    return n + 1


@mai.module
async def crash_once(n: int) -> int:
    marker = HERE / "crashed"
    if not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    ledger("second")
    return n * 10


pipeline = first >> crash_once


@mai.module
async def single(n: int) -> int:
    return await crash_once(await first(n))


with mai.Graph(name="flowgraph") as graph:
    n = graph.input("n", int)
    graph.output(crash_once(first(n)))
"""
