"""Workflows the Temporal tests run (module level: workers import them by reference)."""

from __future__ import annotations

import os
from pathlib import Path

import mai

LEDGER = os.environ.get("MAI_TEST_LEDGER")


def _note(line: str) -> None:
    if LEDGER:
        with Path(LEDGER).open("a") as f:
            f.write(line + "\n")


@mai.module
async def double(x: int) -> int:
    """Twice x."""
    return 2 * x


@mai.module
def inc(x: int) -> int:
    """x + 1 (a sync body: runs in a thread of the activity worker)."""
    return x + 1


pipeline = double >> inc >> double
