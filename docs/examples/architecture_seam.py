"""The seam: an interceptor sees every module call of a run, and may answer without running it.

Run: ``python docs/examples/architecture_seam.py``. This is how the tracer and the durable runtime
attach; the same public door (``mai.intercept``, ``mai.Call``) is open to any program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

import mai

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


@mai.module
async def double(x: int) -> int:
    return 2 * x


@mai.module
async def square(x: int) -> int:
    return x * x


class Recorder:
    """Logs each call with its step id; the tracer is built the same way."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []

    async def __call__(self, call: mai.Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        self.calls.append((call.step_id, call.name, call.args))
        return await proceed()


class Replayer:
    """Answers calls from recorded results without running them, as a durable resume does."""

    def __init__(self, recorded: dict[str, Any]) -> None:
        self.recorded = recorded

    async def __call__(self, call: mai.Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        if call.step_id in self.recorded:
            return call.module.cast_output(self.recorded[call.step_id])
        return await proceed()


async def main() -> None:
    pipeline = double >> mai.Parallel(double, square)

    recorder = Recorder()
    with mai.intercept(recorder):  # installed for the runs started inside the block
        assert await pipeline(3) == (12, 36)
    calls = sorted(recorder.calls)
    assert calls[0] == ("1", "Sequential", (3,))
    assert calls[1:3] == [("1.1", "double", (3,)), ("1.2", "Parallel", (6,))]
    assert sorted(calls[3:]) == [("1.2.1", "double", (6,)), ("1.2.2", "square", (6,))]

    # Step 1.1 "was recorded" as 5 (the string is cast back to int): double does not run again.
    with mai.intercept(Replayer({"1.1": "5"})):
        assert await pipeline(3) == (10, 25)

    # Outside the block no interceptor is installed, and calls pay nothing for the seam.
    assert await pipeline(3) == (12, 36)
    print("seam:", *calls, sep="\n  ")


if __name__ == "__main__":
    trio.run(main)
