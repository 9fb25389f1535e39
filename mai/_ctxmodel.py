"""The public :class:`Context` model: an immutable snapshot of a module call's frame.

Kept apart from :mod:`mai._context` so that building this pydantic model (its fields, schema and
serialisers) happens on first use of ``mai.Context``, not at ``import mai``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping  # noqa: TC003 - pydantic resolves Context's fields at runtime
from contextvars import Token  # noqa: TC003 - pydantic resolves the signatures at runtime
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_serializer

from ._backend import current_backend
from ._context import _EMPTY, Frame, current_frame, thread_cancel
from ._errors import ConfigError

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

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)

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
