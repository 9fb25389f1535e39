"""mai.testing: how a user tests their own modules (written as pytest-trio tests would be).

Run: ``python docs/examples/observability_testing.py``. Under pytest with ``trio_mode = true``,
each ``test_*`` coroutine below is a test; ``autojump_clock`` replaces ``run_virtual``.
"""

from __future__ import annotations

import trio

import mai
from mai import testing


@mai.module(retries=2, backoff=1)
async def search(query: str) -> list[str]:
    await trio.sleep(0.5)
    if mai.Context.get().retry_count == 0:
        raise ConnectionError("search backend busy")
    return [f"result for {query}"]


@mai.module(timeout=2)
async def rank(results: list[str]) -> str:
    await trio.sleep(5)  # too slow: the 2 s timeout fires
    return results[0]


agent = search >> rank


# [start tests]
async def test_search_retries_once() -> None:
    with testing.capture_spans() as captured:
        assert await search("trio") == ["result for trio"]
    span = captured["search"]
    assert (span.retries, span.status) == (1, "ok")
    assert span.duration == 2.0  # 0.5 s, 1 s backoff, 0.5 s: exact on the virtual clock


async def test_rank_times_out_after_two_seconds() -> None:
    err = await testing.expect_deadline(agent("trio"), module="rank", after=4.0)
    assert err.step_id == "1.2"


async def test_the_agent_calls_search_then_rank() -> None:
    tracer = testing.RecordingTracer()
    with tracer.installed(), testing.assert_elapsed(4.0):
        await testing.expect_deadline(agent("trio"))
    assert tracer.names() == ["Sequential", "search", "rank"]
    assert tracer.calls_to("search")[0].result == ["result for trio"]


async def test_otel_spans_are_emitted() -> None:
    with testing.capture_otel_spans() as spans:
        await search("x")
    assert [(s.name, s.attributes["mai.retry_count"]) for s in spans] == [("search", 1)]


# [end tests]


async def main() -> None:
    for test in (
        test_search_retries_once,
        test_rank_times_out_after_two_seconds,
        test_the_agent_calls_search_then_rank,
        test_otel_spans_are_emitted,
    ):
        await test()
        print("passed:", test.__name__)


if __name__ == "__main__":
    testing.run_virtual(main)
