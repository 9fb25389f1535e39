"""Workers: a client submits runs to a queue, workers claim and execute them.

The same code runs on PostgreSQL (``postgresql://...`` with the mai-postgres plugin) for
workers on several hosts; here a SQLite file keeps the example self-contained.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

import mai


@mai.module
async def summarize(text: str) -> str:
    """A step (imagine an LLM call)."""
    return text.upper()[:20]


@mai.module
async def pipeline(text: str) -> str:
    """The workflow the workers serve."""
    return await summarize(text)


async def main() -> None:
    """Submit five runs, serve them with two workers, collect the results."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'runs.db'}"
        async with mai.Runtime(url) as client:
            # submit() records the run PENDING on a queue; it does not execute it.
            handles = [
                await client.submit(pipeline, f"document {i}", run_id=f"doc-{i}", queue="docs")
                for i in range(5)
            ]
            async with trio.open_nursery() as nursery:
                for name in ("worker-a", "worker-b"):
                    worker = mai.Worker(
                        url,
                        workflows=[pipeline],
                        queues=["docs"],
                        concurrency=2,
                        name=name,
                        queue_limits={"docs": 3},  # at most 3 runs of "docs" at once, globally
                        poll_interval=0.1,
                    )
                    await nursery.start(worker.run)
                for handle in handles:
                    print(handle.run_id, "->", await handle.result())
                nursery.cancel_scope.cancel()  # what SIGTERM does in worker.serve(): drain
            owners = {s.worker.split(":")[2] for h in handles for s in await client.steps(h.run_id)}
            print("executed by", sorted(owners))


if __name__ == "__main__":
    trio.run(main)
