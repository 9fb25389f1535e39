"""Module-level modules for the remote-executor tests (references must be importable)."""

from __future__ import annotations

import mai


@mai.module
async def add(x: int, y: int = 1) -> int:
    """x + y."""
    return x + y


pipeline = mai.Sequential(add, mai.Parallel(add.with_(y=10), mai.Map(add)))
