"""Context: what a module call knows about where it runs.

The public :class:`Context` is an immutable pydantic model. Internally every module call keeps a
light :class:`Frame` (plain slots, no validation) in a ``ContextVar``; ``Context.get()``
materialises the model from the current frame on demand, so a call that never asks for its
context never pays for building one.

Isolation comes from ``contextvars``: a task started in a nursery, and a worker thread started by
the kernel, run in a copy of their parent's context, so whatever they set stays with them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping  # noqa: TC003 - pydantic resolves Context's fields at runtime
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_serializer

from ._backend import Backend, Spawner, current_backend
from ._errors import ConfigError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

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

_SETTABLE = ("deadline", "metadata", "span")


class Context(BaseModel):
    """What a module call knows about where it runs (an immutable snapshot).

    Read it with :meth:`Context.get`; change it for the code that follows (and every module it
    calls) with :meth:`Context.set`, and undo exactly with :meth:`Context.reset`. Changes never
    reach siblings or parents: each module call, each Parallel branch and each worker thread
    works on its own copy.

    Attributes:
        deadline: Effective deadline on the running event loop's clock (``trio.current_time()``
            under Trio), the tightest of every enclosing ``timeout``, ``Context.set(deadline=)``
            and cancel scope; ``inf`` when nothing bounds the call.
        metadata: Read-only mapping that flows down to every nested call.
        retry_count: 0 on the first attempt of the current module call, then 1, 2, ...
        step_id: Hierarchical id of the current module call, e.g. ``"1.2.3"``; ``""`` outside one.
        parent_step_id: Step id of the module call that made this one (``None`` at top level).
        module_name: Name of the module whose body is running (``None`` outside any module).
        span: The tracing span of the current call, when a tracer set one.
        run_id: Id of the durable run this call belongs to, when it belongs to one.
        idempotency_key: ``"<run id>/<step id>"`` inside a durable run: stable for a step across
            retries and resumes, for deduplicating external side effects; ``None`` elsewhere.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    deadline: float = math.inf
    metadata: Mapping[str, Any] = _EMPTY
    retry_count: int = 0
    step_id: str = ""
    parent_step_id: str | None = None
    module_name: str | None = None
    span: Any = None
    run_id: str | None = None
    idempotency_key: str | None = None

    settable: ClassVar[tuple[str, ...]] = _SETTABLE

    @field_serializer("metadata")
    def _dump_metadata(self, value: Mapping[str, Any]) -> dict[str, Any]:
        return dict(value)

    @field_serializer("span", when_used="json")
    def _dump_span(self, value: Any) -> str | None:
        return None if value is None else repr(value)

    @property
    def remaining(self) -> float:
        """Seconds left until :attr:`deadline` (``inf`` when there is none)."""
        if self.deadline == math.inf:
            return math.inf
        try:
            now = current_backend().current_time()
        except Exception:  # outside an event loop (e.g. in a worker thread)
            return math.inf
        return self.deadline - now

    @classmethod
    def get(cls) -> Context:
        """Return the context of the running module call (or the ambient one outside calls)."""
        f = current_frame.get()
        deadline = f.deadline
        if thread_cancel.get() is None:
            with contextlib.suppress(Exception):  # no event loop here: the frame's value stands
                deadline = min(deadline, current_backend().effective_deadline())
        parent = f.parent
        run_id = f.run.run_id if f.run is not None else None
        step_id = f.step_id
        return cls.model_construct(
            deadline=deadline,
            metadata=f.metadata,
            retry_count=f.retry_count,
            step_id=step_id,
            parent_step_id=parent.step_id if parent is not None and parent.parent else None,
            module_name=f.name,
            span=f.span,
            run_id=run_id,
            idempotency_key=f"{run_id}/{step_id}" if run_id is not None else None,
        )

    @classmethod
    def set(cls, **changes: Any) -> Token[Frame]:
        """Change the context for the code that follows in this task; return a reset token.

        Args:
            **changes: ``deadline`` (seconds on the event loop's clock; a deadline can only get
                tighter), ``metadata`` (a mapping merged over the inherited metadata) and/or
                ``span``.

        Returns:
            A token for :meth:`reset`.

        Raises:
            ConfigError: For a key that cannot be set (the message lists the valid keys).
        """
        cur = current_frame.get()
        f = cur.derive()
        for key, value in changes.items():
            if key == "deadline":
                d = float(value)
                if d < f.deadline:
                    f.deadline = d
                    f.deadline_owner = cur.name or "Context.set"
                    f.timeout = None
                    f.enforced = False
            elif key == "metadata":
                f.metadata = MappingProxyType({**cur.metadata, **dict(value)})
            elif key == "span":
                f.span = value
            else:
                raise ConfigError(
                    f"Context.set() got an unknown key {key!r}; valid keys: {', '.join(_SETTABLE)}",
                    key=key,
                    valid=_SETTABLE,
                )
        return current_frame.set(f)

    @classmethod
    def reset(cls, token: Token[Frame]) -> None:
        """Restore exactly the context that was current before the matching :meth:`set`."""
        current_frame.reset(token)


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
