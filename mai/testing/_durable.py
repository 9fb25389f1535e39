"""A durable runtime on virtual time: week-long sleeps and millisecond deadlines, tested at once.

Like Temporal's time-skipping test environment: inside a Trio run whose clock is a
:class:`trio.testing.MockClock` (pytest-trio's ``autojump_clock`` fixture, or
:func:`mai.testing.run_virtual`), the runtime's clock, its store's lease clock and every durable
timer follow the virtual clock, so a ``mai.sleep`` of a week returns as soon as nothing else
is runnable, and leases never expire falsely (they are judged on the same clock).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import trio
import trio.testing

from mai._errors import ConfigError
from mai.core.durable import MemoryStore, Runtime, SQLiteStore

#: The epoch each MockClock's virtual timeline starts at (its reading then, and the epoch time).
_timelines: weakref.WeakKeyDictionary[trio.testing.MockClock, tuple[float, float]] = (
    weakref.WeakKeyDictionary()
)


class VirtualClock:
    """Epoch seconds that follow a Trio ``MockClock`` (safe to read from the store thread).

    Every ``VirtualClock`` made without an ``epoch`` for the same ``MockClock`` reads the same
    time, so several runtimes opened one after another in a test (a restart, a second app)
    agree on timers, deadlines and leases however far virtual time has jumped.

    Attributes:
        epoch: The epoch time at which the clock read ``start`` (by default the wall clock when
            the first ``VirtualClock`` of this ``MockClock`` was made).
    """

    def __init__(self, clock: trio.testing.MockClock, epoch: float | None = None) -> None:
        """Follow ``clock``; ``epoch`` pins the epoch time now (default: the shared timeline)."""
        self._mock = clock
        if epoch is not None:
            self._start, self.epoch = clock.current_time(), float(epoch)
        else:
            self._start, self.epoch = _timelines.setdefault(
                clock, (clock.current_time(), time.time())
            )

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

    Several virtual runtimes opened in one Trio run (a restart, a second app) share one
    timeline, so each sees the timers, deadlines and leases the others recorded. On SQLite the
    store calls run in the event loop's thread, so a commit never looks idle to the clock.

    Heartbeats still renew a running run's lease every third of the lease, in virtual time: the
    default lease here is an hour (168 renewals for a week-long sleep, where the runtime's
    default of 30 s would write 60,480); pass ``lease=`` to test lease expiry itself.

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
        # Store calls run in the event loop's thread (SQLite on a local file takes
        # milliseconds): a wait on the store thread looks idle to an autojump clock, which would
        # jump to the next timer (a heartbeat, a sweep) during every commit and let virtual time
        # run away from the run (a 60 s deadline observed firing after hours).
        store.inline = True
    else:
        raise ConfigError(f"virtual_runtime() supports memory:// and sqlite:/// URLs, not {url!r}")
    options.setdefault("lease", 3600.0)
    return Runtime(store, clock=virtual, **options)
