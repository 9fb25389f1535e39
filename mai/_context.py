"""Frames: what a module call knows about where it runs, kept cheaply.

Every module call keeps a light :class:`Frame` (plain slots, no validation) in a ``ContextVar``.
The public, immutable :class:`mai.Context` model lives in :mod:`mai._ctxmodel` and is built from
the current frame on demand by ``Context.get()``: a call that never asks for its context never
pays for it, and a process that never asks never builds the pydantic model (``import mai`` stays
close to the cost of its dependencies).

Isolation comes from ``contextvars``: a task started in a nursery, and a worker thread started by
the kernel, run in a copy of their parent's context, so whatever they set stays with them.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._backend import Backend, Spawner, current_backend

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping

    from ._seam import Durability, Interceptor

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class RunState:
    """State shared by every call of one top-level run (one top-level module call)."""

    __slots__ = (
        "backend",
        "deadline",
        "deadline_owner",
        "durable",
        "failures",
        "interceptors",
        "interrupted",
        "nursery",
        "run_id",
    )

    def __init__(self, backend: Backend, interceptors: tuple[Interceptor, ...]) -> None:
        """Create the state of a new run."""
        self.backend = backend
        self.interceptors = interceptors
        self.nursery: Spawner | None = None
        self.failures: list[BaseException] = []
        self.run_id: str | None = None
        #: The durable runtime's primitives for this run, when it is a durable run.
        self.durable: Durability | None = None
        self.deadline = math.inf
        self.deadline_owner: str | None = None
        #: Calls a passed deadline interrupted, until the deadline's owner reports them.
        self.interrupted: list[Frame] | None = None

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in the background of this run; its failure fails the run."""
        nursery = self.nursery
        if nursery is None:  # pragma: no cover - a run always has a nursery while it runs
            raise RuntimeError("this run has already finished")
        nursery.start_soon(self._guard, nursery, fn, args)

    async def _guard(self, nursery: Spawner, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception as exc:
            self.failures.append(exc)
            nursery.cancel_scope.cancel()


class Frame:
    """The kernel's per-call record; ``Context.get()`` builds the public model from it.

    ``counter`` is a one-item list shared by every frame that :meth:`Context.set` derives from
    the same call, so children keep distinct indexes whatever the body sets.
    """

    __slots__ = (
        "_step_id",
        "attempts",
        "counter",
        "deadline",
        "deadline_owner",
        "enforced",
        "index",
        "metadata",
        "name",
        "parent",
        "retry_count",
        "run",
        "span",
        "timeout",
    )

    def __init__(
        self,
        parent: Frame | None,
        index: int,
        name: str | None,
        run: RunState | None,
        deadline: float,
        deadline_owner: str | None,
        enforced: bool,
        timeout: float | None,
        metadata: Mapping[str, Any],
        span: Any,
    ) -> None:
        """Create a frame; only the kernel does this."""
        self.parent = parent
        self.index = index
        self.name = name
        self.run = run
        self.deadline = deadline
        self.deadline_owner = deadline_owner
        self.enforced = enforced
        self.timeout = timeout
        self.metadata = metadata
        self.span = span
        self.retry_count = 0
        self.attempts = 1
        self.counter = [0]
        self._step_id: str | None = None

    @property
    def step_id(self) -> str:
        """Hierarchical id: the parent's id, a dot, and this call's index under its parent."""
        sid = self._step_id
        if sid is None:
            parent = self.parent
            if parent is None:
                sid = ""
            else:
                pid = parent.step_id
                sid = f"{pid}.{self.index}" if pid else str(self.index)
            self._step_id = sid
        return sid

    def reserve(self, n: int) -> int:
        """Reserve ``n`` consecutive child indexes; return the index before the first."""
        c = self.counter
        base = c[0]
        c[0] = base + n
        return base

    def derive(self) -> Frame:
        """Return a copy sharing this frame's identity (step id and child counter)."""
        f = Frame(
            self.parent,
            self.index,
            self.name,
            self.run,
            self.deadline,
            self.deadline_owner,
            self.enforced,
            self.timeout,
            self.metadata,
            self.span,
        )
        f.retry_count = self.retry_count
        f.counter = self.counter
        f._step_id = self._step_id
        return f


def child_frame(parent: Frame, index: int, name: str, timeout: float | None) -> Frame:
    """The frame of call ``index`` of ``parent``, for a module named ``name``.

    It inherits the parent's deadline, metadata and span; a ``timeout`` tighter than the
    inherited deadline gives the call a deadline of its own, which the call must enforce.
    """
    run = parent.run
    if timeout is not None:
        d = run.backend.current_time() + timeout  # type: ignore[union-attr]
        if d < parent.deadline:
            return Frame(
                parent, index, name, run, d, name, False, timeout, parent.metadata, parent.span
            )
    return Frame(
        parent,
        index,
        name,
        run,
        parent.deadline,
        parent.deadline_owner,
        parent.enforced,
        parent.timeout,
        parent.metadata,
        parent.span,
    )


ROOT = Frame(None, 0, None, None, math.inf, None, False, None, _EMPTY, None)
current_frame: ContextVar[Frame] = ContextVar("mai.frame", default=ROOT)
thread_cancel: ContextVar[threading.Event | None] = ContextVar("mai.thread_cancel", default=None)


def is_cancelled() -> bool:
    """Tell whether the current module call has been cancelled or its deadline has passed.

    A sync module body runs in a worker thread that cannot be interrupted: when its deadline
    fires, the caller is released at once and the thread keeps running. Long sync bodies should
    poll this and return early. In async code it reports whether the enclosing cancel scopes
    are cancelled or past their deadline.
    """
    event = thread_cancel.get()
    if event is not None:
        return event.is_set()
    try:
        backend = current_backend()
        return backend.effective_deadline() <= backend.current_time()
    except Exception:  # outside an event loop nothing can cancel us
        return False
