"""Enqueue runs from a client process: ``python pg_submit.py URL WORKFLOW QUEUE RUN_ID ...``.

Each run is ``WORKFLOW(run_id)`` from ``tests/durable/workflows.py``, submitted with
:meth:`mai.Runtime.submit` (recorded PENDING; the workers execute it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "durable"))

import workflows

import mai


async def main(url: str, workflow: str, queue: str, run_ids: list[str]) -> None:
    """Submit the runs."""
    async with mai.Runtime(url) as rt:
        for run_id in run_ids:
            await rt.submit(workflows.WORKFLOWS[workflow], run_id, run_id=run_id, queue=queue)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
