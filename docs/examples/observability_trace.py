"""TraceHandle: the claims of the Observability page, checked on Trio's virtual clock.

Run: ``python docs/examples/observability_trace.py``.
"""

from __future__ import annotations

import math

import trio

import mai
from mai.testing import run_virtual

# [start pipeline]
attempts: list[int] = []


@mai.module
async def fetch(url: str) -> str:
    await trio.sleep(0.2)  # pretend I/O
    return f"<html>{url}</html>"


@mai.module(retries=2, backoff=0.5)
async def summarize(page: str) -> str:
    attempts.append(1)
    if len(attempts) == 1:
        raise ConnectionError("model overloaded")
    return page[6:-7].upper()


@mai.module(inline=True)  # a cheap sync body: no worker thread
def count(page: str) -> int:
    return len(page)


pipeline = fetch >> mai.Parallel(summary=summarize, size=count)


async def main() -> None:
    result, trace = await mai.trace(pipeline, "a.example")
    trace.show()  # colour only on a TTY
    # [end pipeline]
    assert result == {"summary": "A.EXAMPLE", "size": 22}
    assert trace.render() + "\n" == EXPECTED
    print(result)
    await lookups(trace)
    await failures()


# [start expected]
EXPECTED = """\
Sequential  [1]  700.0 ms  11 B → 33 B
├── fetch  [1.1]  200.0 ms  11 B → 24 B
└── Parallel  [1.2]  500.0 ms  24 B → 33 B
    ├── summarize  [1.2.1]  500.0 ms  24 B → 11 B  retries=1
    └── count  [1.2.2]  0 µs  24 B → 2 B
"""
# [end expected]


async def lookups(trace: mai.TraceHandle) -> None:
    # [start lookups]
    span = trace["summarize"]  # the first call of that module
    assert (span.step_id, span.parent_step_id, span.retries) == ("1.2.1", "1.2", 1)
    assert math.isclose(span.duration, 0.5)  # on the event loop's clock: virtual seconds here
    assert span.input_bytes == len('"<html>a.example</html>"')
    assert [s.name for s in trace] == ["Sequential", "fetch", "Parallel", "summarize", "count"]
    assert [s.name for s in trace.children(trace["Parallel"])] == ["summarize", "count"]
    assert trace.errors == []

    saved = trace.to_json()  # or trace.to_dict(); both round-trip
    assert mai.TraceHandle.from_json(saved) == trace
    # [end lookups]


async def failures() -> None:
    # [start failure]
    slow = fetch.with_(name="slow_fetch", timeout=0.1)
    try:
        await mai.trace(slow >> count, "b.example")
    except mai.DeadlineExceeded as err:
        trace = mai.TraceHandle.of(err)  # the failed run's trace rides on the exception
        assert trace is not None
        print(trace.render())
        assert trace.render() + "\n" == FAILED
        failed = trace["slow_fetch"]
        assert (failed.status, failed.error_type) == ("timed_out", "mai.DeadlineExceeded")
        assert math.isclose(failed.deadline, failed.start + 0.1)  # deadline in force, wall clock
        assert [s.name for s in trace.errors] == ["Sequential", "slow_fetch"]
    # [end failure]
    else:
        raise AssertionError("expected DeadlineExceeded")


# [start failed]
FAILED = """\
Sequential  [1]  100.0 ms  11 B → -  timed out ↑
└── slow_fetch  [1.1]  100.0 ms  11 B → -  deadline=+0.1s  timed out mai.DeadlineExceeded: module 'slow_fetch' (step 1.1) exceeded its timeout of 0.1s
"""  # noqa: E501 - the line is as long as the terminal shows it
# [end failed]


if __name__ == "__main__":
    run_virtual(main)
