"""structlog: log lines inside modules carry the module name and step id by themselves.

Run: ``python docs/examples/observability_logging.py``.
"""

from __future__ import annotations

import structlog
import trio
from structlog.testing import capture_logs

import mai

log = structlog.get_logger()


@mai.module
async def plan(goal: str) -> list[str]:
    log.info("planning", goal=goal)  # no module= or step_id= here
    return [f"{goal}: step {i}" for i in (1, 2)]


@mai.module
def act(task: str) -> str:  # a sync body, in a worker thread
    log.info("acting", task=task)
    return task.upper()


agent = plan >> mai.Map(act)


def fields(logs: list[dict]) -> list[tuple]:
    return sorted((e["event"], e.get("module"), e.get("step_id")) for e in logs)


EXPECTED = [
    ("acting", "act", "1.2.1"),
    ("acting", "act", "1.2.2"),
    ("planning", "plan", "1.1"),
]


async def with_the_processor() -> None:
    # [start processor]
    # In the application: structlog.configure(processors=[mai.log_context, ..., renderer])
    with capture_logs(processors=[mai.log_context]) as logs:
        await agent("ship")
    # [end processor]
    assert fields(logs) == EXPECTED


async def with_contextvars() -> None:
    # [start contextvars]
    # In the application: structlog.configure(processors=[merge_contextvars, ..., renderer])
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await agent("ship")
    assert structlog.contextvars.get_contextvars() == {}  # restored exactly after the run
    # [end contextvars]
    assert fields(logs) == EXPECTED
    for event in logs:
        print(event)


async def main() -> None:
    await with_the_processor()
    await with_contextvars()


if __name__ == "__main__":
    trio.run(main)
