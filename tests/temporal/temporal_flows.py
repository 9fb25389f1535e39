"""Workflows the Temporal tests run (module level: workers import them by reference)."""

from __future__ import annotations

import os
from pathlib import Path

import mai


def _note(line: str) -> None:
    """Append a line to the side-effect ledger ($MAI_TEST_LEDGER), kept outside Temporal."""
    ledger = os.environ.get("MAI_TEST_LEDGER")
    if ledger:
        with Path(ledger).open("a") as f:
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


@mai.module
async def add(x: int, y: int = 1) -> int:
    """x + y (y can be bound with with_)."""
    return x + y


@mai.module
async def is_even(x: int) -> bool:
    """Whether x is even (a module predicate: a step of its own)."""
    return x % 2 == 0


@mai.module
async def slow(x: int) -> int:
    """Waits (cancellably) for a long time; returns x."""
    import anyio

    _note(f"slow-start {mai.Context.get().step_id}")
    try:
        await anyio.sleep(3600)
    finally:
        _note(f"slow-end {mai.Context.get().step_id}")
    return x


@mai.module
async def boom(x: int) -> int:
    """Always fails with a ValueError naming x."""
    raise ValueError(f"boom {x}")


@mai.module(retries=2, backoff=0.01)
async def flaky(x: int) -> int:
    """Fails on its first two attempts, succeeds on the third (retry_count from the context)."""
    ctx = mai.Context.get()
    _note(f"flaky {ctx.step_id} {ctx.retry_count} {ctx.idempotency_key}")
    if ctx.retry_count < 2:
        raise ConnectionError(f"attempt {ctx.retry_count}")
    return x * 10


@mai.module(retries=3, backoff=0.01, retry_on=ConnectionError)
async def wrong_kind(x: int) -> int:
    """Fails with an error retry_on does not cover: no retry."""
    _note(f"wrong_kind {mai.Context.get().retry_count}")
    raise KeyError(x)


@mai.module
async def context_of(x: int) -> dict[str, object]:
    """What the activity's context says."""
    ctx = mai.Context.get()
    return {
        "x": x,
        "step_id": ctx.step_id,
        "run_id": ctx.run_id,
        "key": ctx.idempotency_key,
        "retry_count": ctx.retry_count,
    }


@mai.module
async def ledger_step(x: int) -> int:
    """Records each execution in the ledger file, then sleeps a little (a crash window)."""
    import anyio

    ctx = mai.Context.get()
    sid = ctx.step_id
    _note(f"start {sid} {ctx.run_id}")
    await anyio.sleep(0.3)
    _note(f"done {sid} {ctx.run_id}")
    return x + 1


class Echo(mai.Module):
    """A subclassed leaf module."""

    async def forward(self, x: int) -> int:
        """Echo."""
        return x


echo = Echo()


class Waiter(mai.Composite):
    """Workflow code (a composite's body runs in the workflow): waits for a message."""

    def __init__(self) -> None:
        """Name it."""
        super().__init__("Waiter")

    async def forward(self, x: int) -> object:
        """Wait for ``go`` (a Temporal signal), with the workflow's time and a seeded random."""
        got = await mai.wait_for("go", timeout=60)
        await mai.sleep(1)
        return {"got": got, "x": x, "now": mai.now() > 0, "r": mai.random().random() < 1}


waiter = Waiter()
wait_flow = mai.Sequential(double, waiter)


sequential = mai.Sequential(double, inc, add.with_(y=5))
parallel = mai.Parallel(double, inc, add)
named = mai.Parallel(a=double, b=inc)
mapped = mai.Map(double, max_concurrency=3)
race = mai.Race(slow, double)
conditional = mai.Conditional(is_even, double, inc)
conditional_fn = mai.Conditional(lambda x: x > 10, double)
loop = mai.Loop(inc, until=lambda x: x >= 5, max_iterations=10)
delays = mai.Sequential(mai.BlockingDelay(2), double)
background = mai.Sequential(double, mai.NonBlockingDelay(1, inc), inc)
nested = mai.Sequential(
    mai.Parallel(mai.Map(double), mai.Map(inc)), lambda t: sum(t[0]) + sum(t[1])
)
failing_parallel = mai.Parallel(slow, boom)
timeout_seq = mai.Sequential(double, slow).with_(timeout=2)
slow_leaf = slow.with_(timeout=1.5)
retrying = mai.Sequential(flaky, inc)
wide = mai.Map(inc)
contexts = mai.Sequential(double, context_of)
ledgered = mai.Map(ledger_step, max_concurrency=2)


@mai.module
async def _sum_list(xs: list[int]) -> int:
    """Sum of a list."""
    return sum(xs)


wide_sum = mai.Sequential(wide, _sum_list)


@mai.module
async def outer(x: int) -> int:
    """Calls double and inc inside its own body: child steps of the activity (1.2.1, 1.2.2)."""
    return await inc(await double(x))


traced = mai.Sequential(double, outer, name="traced")


@mai.module
async def trio_token(x: int) -> int:
    """Uses a Trio-only API (fails on asyncio): x + 1 under the Trio activity runner."""
    import trio

    trio.lowlevel.current_trio_token()
    await trio.lowlevel.checkpoint()
    return x + 1


trio_flow = mai.Sequential(double, trio_token)


@mai.module
async def noted(x: int) -> int:
    """x + 1, noted in the ledger each time it runs."""
    _note(f"noted {mai.Context.get().step_id}")
    return x + 1


@mai.module
async def gate(x: int) -> int:
    """3 * x once the file named by $MAI_TEST_GATE exists; a ValueError before."""
    if not os.path.exists(os.environ["MAI_TEST_GATE"]):  # noqa: PTH110, ASYNC240 - a test gate
        raise ValueError(f"gate closed at {x}")
    return 3 * x


gated = mai.Sequential(noted, gate)
