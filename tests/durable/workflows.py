"""Module-level workflows for the crash tests, importable as ``workflows`` by subprocess scripts.

Every step body appends one line ``run,step_id,pid,idempotency_key`` to the side-effect ledger
named by ``$LEDGER`` (``O_APPEND``, one ``write``, then ``fsync``) before it returns: the ledger
lives outside the mai store, so the tests can tell which process executed which step body.
``$STEP_SLEEP`` (seconds, default 0.001) is how long each step body takes, so that kills land
in the middle of runs; ``$NAP`` (seconds, default 2) is the durable sleep of :data:`napper`.
"""

from __future__ import annotations

import os
import signal

import trio

import mai


def ledger_append(run: str) -> None:
    """Record that this process is executing the current step body of ``run``."""
    path = os.environ.get("LEDGER")
    if not path:
        return
    ctx = mai.Context.get()
    line = f"{run},{ctx.step_id},{os.getpid()},{ctx.idempotency_key}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def step_sleep() -> float:
    """How long a step body takes (``$STEP_SLEEP``)."""
    return float(os.environ.get("STEP_SLEEP", "0.001"))


@mai.module
async def step(run: str, i: int, x: int) -> int:
    """One checkpointed step: write the ledger line, take a little real time, return ``x + 1``."""
    ledger_append(run)
    await trio.sleep(step_sleep())
    return x + 1


async def _chain(run: str, n: int) -> int:
    x = 0
    for i in range(n):
        x = await step(run, i, x)
    return x


@mai.module
async def chain20(run: str) -> int:
    """Twenty sequential steps; the result is 20."""
    return await _chain(run, 20)


@mai.module
async def chain5(run: str) -> int:
    """Five sequential steps; the result is 5."""
    return await _chain(run, 5)


@mai.module
async def chain8(run: str) -> int:
    """Eight sequential steps; the result is 8."""
    return await _chain(run, 8)


@mai.module
async def clocked(run: str) -> int:
    """Twenty steps, each after a ``mai.now()`` reading: every step commits in a transaction.

    The reading is committed with the step that follows it, both in one transaction whose
    first statement share-locks the run's row (on PostgreSQL): a fault test can stop the
    worker there, holding that lock.
    """
    x = 0
    for i in range(20):
        mai.now()
        x = await step(run, i, x)
    return x


@mai.module
async def suicide(run: str, i: int, x: int) -> int:
    """A step that kills its own process with SIGKILL, every time it runs."""
    ledger_append(run)
    os.kill(os.getpid(), signal.SIGKILL)
    return x + 1  # pragma: no cover - never reached


@mai.module
async def poison(run: str) -> int:
    """A poison run: one ordinary step, then a step that crashes the worker on every attempt."""
    x = await step(run, 0, 0)
    return await suicide(run, 1, x)


@mai.module
async def napper(run: str) -> int:
    """A durable sleep of ``$NAP`` seconds, then one step."""
    await mai.sleep(float(os.environ.get("NAP", "2")))
    return await step(run, 0, 0)


WORKFLOWS = {m.name: m for m in (chain20, chain5, chain8, clocked, poison, napper)}
"""The workflows a worker registers, by name."""

STEPS = {"chain20": 20, "chain5": 5, "chain8": 8, "napper": 1}
"""How many ``step`` calls each complete workflow makes (its result equals that number)."""
