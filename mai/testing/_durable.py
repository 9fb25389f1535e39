"""A durable runtime on virtual time: week-long sleeps and millisecond deadlines, tested at once.

Like Temporal's time-skipping test environment: inside a Trio run whose clock is a
:class:`trio.testing.MockClock` (pytest-trio's ``autojump_clock`` fixture, or
:func:`mai.testing.run_virtual`), the runtime's clock, its store's lease clock and every durable
timer follow the virtual clock, so a ``mai.sleep`` of a week returns as soon as nothing else
is runnable, and leases never expire falsely (they are judged on the same clock).
"""

from __future__ import annotations

import time
from typing import Any

import trio
import trio.testing

from mai._errors import ConfigError
from mai.core.durable import MemoryStore, Runtime, SQLiteStore


class VirtualClock:
    """Epoch seconds that follow a Trio ``MockClock`` (safe to read from the store thread).

    Attributes:
        epoch: The epoch time the clock started at (the wall clock when it was made).
    """

    def __init__(self, clock: trio.testing.MockClock, epoch: float | None = None) -> None:
        """Follow ``clock``, starting at ``epoch`` (default: now)."""
        self._mock = clock
        self._start = clock.current_time()
        self.epoch = time.time() if epoch is None else float(epoch)

    def __call__(self) -> float:
        """The current virtual epoch time."""
        return self.epoch + (self._mock.current_time() - self._start)


def virtual_runtime(url: str = "memory://", **options: Any) -> Runtime:
    """A :class:`mai.Runtime` whose timers, deadlines, ``mai.now()`` and leases run on virtual time.

    Call it inside a Trio run driven by a :class:`trio.testing.MockClock`, ideally with
    ``autojump_threshold=0`` (pytest-trio's ``autojump_clock``)::

        async def test_reminder(autojump_clock):
            async with mai.testing.virtual_runtime() as rt:
                handle = await rt.start(remind_in_a_week, "pay the rent")
                assert await handle.result() == "reminded"  # at once: the week is virtual

    Args:
        url: ``memory://...`` (default) or ``sqlite:///...``; both use the virtual clock.
        **options: Other :class:`mai.Runtime` options (``workflows``, ``lease``, ...).

    Raises:
        ConfigError: When the current Trio run is not driven by a ``MockClock``.
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise ConfigError(
            "mai.testing.virtual_runtime() needs a Trio run driven by trio.testing.MockClock "
            "(pytest-trio's autojump_clock fixture, or mai.testing.run_virtual)"
        )
    virtual = VirtualClock(clock)
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        store: Any = MemoryStore(url, clock=virtual)
    elif scheme == "sqlite":
        store = SQLiteStore(url, clock=virtual)
    else:
        raise ConfigError(f"virtual_runtime() supports memory:// and sqlite:/// URLs, not {url!r}")
    return Runtime(store, clock=virtual, **options)
