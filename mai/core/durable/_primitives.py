"""Durable primitives usable inside any module body: sleep, wait_for, now, random.

Inside a durable run they are recorded steps (replayed on resume); outside one they behave like
their plain counterparts (``wait_for`` excepted: it needs a run to receive messages).
"""

from __future__ import annotations

import random as _random
import time
from typing import TYPE_CHECKING, Any

from mai._backend import current_backend
from mai._context import current_frame
from mai._errors import MaiError

if TYPE_CHECKING:
    from mai._seam import Durability


def current_durable() -> Durability | None:
    """The durable run the current task belongs to (through the seam's typed door), if any."""
    run = current_frame.get().run
    return run.durable if run is not None else None


async def sleep(seconds: float) -> None:
    """Sleep ``seconds``; inside a durable run this is a durable timer.

    The wake-up time is committed to the store; after a crash and resume, the run waits only
    for what is left.
    """
    durable = current_durable()
    if durable is not None:
        await durable.sleep(current_frame.get(), float(seconds))
        return
    backend = current_backend()
    await backend.sleep_until(backend.current_time() + float(seconds))


async def wait_for(topic: str, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - durable
    """Wait durably for a message sent with ``Runtime.send(run_id, topic, payload)``.

    Returns the payload. A message sent before the wait started is delivered too. The timeout
    (seconds) is durable: it counts from the first time the wait started, across restarts.

    Raises:
        WaitTimeoutError: When ``timeout`` passes first.
        MaiError: When called outside a durable run.
    """
    durable = current_durable()
    if durable is None:
        raise MaiError(
            f"mai.wait_for({topic!r}) needs a durable run to receive messages; start the "
            "workflow with mai.Runtime(...).start(...)"
        )
    return await durable.wait_for(current_frame.get(), topic, timeout)


def now() -> float:
    """Wall-clock time (epoch seconds); recorded inside a durable run and replayed on resume."""
    durable = current_durable()
    if durable is None:
        return time.time()
    return durable.now(current_frame.get())


def random() -> _random.Random:
    """A random source; inside a durable run it is seeded from the run id and step position.

    Replaying the run produces the same numbers in the same places, so branching on them is
    deterministic.
    """
    durable = current_durable()
    if durable is None:
        return _random.Random()  # noqa: S311 - not for cryptography
    return _random.Random(durable.seed(current_frame.get()))  # noqa: S311
