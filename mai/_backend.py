"""One small facade over the event-loop primitives the kernel needs.

pymai is Trio-first and also runs under asyncio. The kernel is written against this facade;
under Trio it calls Trio directly (anyio's task-group wrapper triples the cost of a spawn, which a
10,000-branch fan-out would pay 10,000 times), under anything else it calls anyio.
The backend is detected once per top-level call and kept in the run state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import sniffio
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager


class Spawner(Protocol):
    """What the kernel needs from a nursery or task group."""

    @property
    def cancel_scope(self) -> Any:
        """The scope that cancels every task in the group."""

    def start_soon(self, fn: Callable[..., Any], *args: Any, name: object = None) -> None:
        """Start ``fn(*args)`` as a child task (``name`` names the task for debuggers)."""


class Backend:
    """Event-loop primitives with one implementation per backend."""

    __slots__ = (
        "cancelled",
        "current_time",
        "effective_deadline",
        "event",
        "name",
        "open_nursery",
        "scope",
        "sleep_until",
    )

    name: str
    current_time: Callable[[], float]
    effective_deadline: Callable[[], float]
    open_nursery: Callable[[], AbstractAsyncContextManager[Spawner]]
    scope: Callable[..., Any]
    cancelled: type[BaseException]
    event: Callable[[], Any]
    #: Sleep until a deadline on this backend's clock (Trio's own under Trio: anyio's Trio
    #: backend costs ~14 ms to load).
    sleep_until: Callable[[float], Awaitable[None]]

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` on this backend's clock."""
        await self.sleep_until(self.current_time() + seconds)

    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a worker thread; the caller is released on cancellation."""
        import anyio.to_thread  # noqa: PLC0415 - anyio is loaded only where it is used

        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def _trio_backend() -> Backend:
    b = Backend()
    b.name = "trio"
    b.current_time = trio.current_time
    b.effective_deadline = trio.current_effective_deadline
    b.open_nursery = trio.open_nursery
    b.scope = trio.CancelScope
    b.cancelled = trio.Cancelled
    b.event = trio.Event
    b.sleep_until = trio.sleep_until
    return b


def _anyio_backend(name: str) -> Backend:
    import anyio  # noqa: PLC0415 - a Trio program never loads anyio for the kernel

    b = Backend()
    b.name = name
    b.current_time = anyio.current_time
    b.effective_deadline = anyio.current_effective_deadline
    b.open_nursery = anyio.create_task_group  # type: ignore[assignment]
    b.scope = anyio.CancelScope
    b.cancelled = anyio.get_cancelled_exc_class()
    b.event = anyio.Event
    b.sleep_until = anyio.sleep_until
    return b


TRIO = _trio_backend()
_others: dict[str, Backend] = {}


def current_backend() -> Backend:
    """Return the facade for the event loop running this task."""
    name = sniffio.current_async_library()
    if name == "trio":
        return TRIO
    backend = _others.get(name)
    if backend is None:
        backend = _others[name] = _anyio_backend(name)
    return backend


def clock_or_inf() -> float:
    """Return the running loop's clock, or ``inf`` outside an event loop."""
    try:
        return current_backend().current_time()
    except (sniffio.AsyncLibraryNotFoundError, RuntimeError):
        return math.inf
