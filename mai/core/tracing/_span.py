"""One span per module call: the record, payload sizes, and how an outcome is classified."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mai._errors import DeadlineExceeded

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from mai._backend import Backend

#: How a module call ended.
SpanStatus = Literal["ok", "error", "cancelled", "timed_out"]

#: Every status a span can have, in a stable order.
STATUSES: tuple[SpanStatus, ...] = ("ok", "error", "cancelled", "timed_out")


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """What one module call did: the unit of a :class:`~mai.TraceHandle`.

    Times are wall-clock epoch seconds (``time.time()``), derived from the event loop's clock
    through one anchor per run, so durations are differences on that clock (under Trio's
    ``MockClock`` they are virtual seconds, which makes them predictable in tests).

    Attributes:
        name: The module's name.
        step_id: The call's hierarchical step id (``"1"``, ``"1.2"``, ...).
        parent_step_id: The step id of the calling module, ``None`` for the top-level call.
        span_id: Number of the span within its trace (1 for the top-level call), in start order.
        parent_id: ``span_id`` of the enclosing call's span, ``None`` for the top-level call.
            Unlike step ids it is unique even when a retried module calls the same child again.
        start: When the call started (epoch seconds).
        end: When the call ended (epoch seconds).
        duration: ``end - start`` in seconds, measured on the event loop's clock.
        input_bytes: Sum of the JSON sizes of the call's arguments, in bytes.
        output_bytes: JSON size of the result in bytes; ``None`` when the call failed.
        sizes_exact: ``False`` when a value could not be serialised to JSON and the length of
            its ``repr`` was counted instead.
        retries: How many times the body was retried (attempts minus one).
        status: ``"ok"``, ``"error"``, ``"cancelled"`` or ``"timed_out"``.
        error_type: Qualified name of the exception's type when the call did not succeed.
        error_message: ``str()`` of that exception.
        deadline: The deadline in force for the call (epoch seconds), ``None`` when unbounded.
        attributes: What the call's result reported about itself (for a model request: the
            ``gen_ai.usage.input_tokens`` / ``output_tokens`` it spent), ``None`` otherwise.
    """

    name: str
    step_id: str
    parent_step_id: str | None
    span_id: int
    parent_id: int | None
    start: float
    end: float
    duration: float
    input_bytes: int
    output_bytes: int | None
    sizes_exact: bool = True
    retries: int = 0
    status: SpanStatus = "ok"
    error_type: str | None = None
    error_message: str | None = None
    deadline: float | None = None
    attributes: dict[str, Any] | None = None

    @property
    def tokens(self) -> tuple[int, int] | None:
        """``(input, output)`` tokens of a model request's span, ``None`` for other calls."""
        a = self.attributes
        if not a or "gen_ai.usage.input_tokens" not in a:
            return None
        return int(a["gen_ai.usage.input_tokens"]), int(a.get("gen_ai.usage.output_tokens", 0))

    @property
    def ok(self) -> bool:
        """Whether the call returned normally."""
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """Whether the call raised an error or timed out (a cancellation is not a failure)."""
        return self.status in {"error", "timed_out"}


def result_attributes(result: Any) -> dict[str, Any] | None:
    """The attributes a call's result reports about itself (``__mai_span_attributes__``)."""
    method = getattr(type(result), "__mai_span_attributes__", None)
    if method is None:
        return None
    try:
        attrs = method(result)
    except Exception:  # a broken hook must not break the traced call
        return None
    return dict(attrs) if attrs else None


_json: TypeAdapter[Any] | None = None


def size_of(value: Any) -> tuple[int, bool]:
    """Return the JSON size of ``value`` in bytes and whether it is exact (``repr`` otherwise)."""
    global _json  # noqa: PLW0603 - one adapter, built on first use
    if value is None:
        return 4, True
    adapter = _json
    if adapter is None:
        from pydantic import TypeAdapter  # noqa: PLC0415 - only tracing needs it

        adapter = _json = TypeAdapter(Any)
    try:
        return len(adapter.dump_json(value)), True
    except Exception:  # not JSON-serialisable: count its repr, and say so
        try:
            return len(repr(value).encode()), False
        except Exception:  # a broken __repr__ must not break the traced call
            return 0, False


def arguments_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, bool]:
    """Return the summed JSON size of positional and keyword arguments, and its exactness."""
    total, exact = 0, True
    for value in (*args, *kwargs.values()) if kwargs else args:
        n, e = size_of(value)
        total += n
        exact = exact and e
    return total, exact


def effective_deadline(frame_deadline: float, backend: Backend) -> float:
    """The deadline in force on the loop clock: the frame's, tightened by enclosing scopes."""
    try:
        outer = backend.effective_deadline()
    except Exception:  # pragma: no cover - always inside the loop when a call runs
        outer = math.inf
    if outer == -math.inf:  # cancelled already (not a deadline): the frame's deadline stands
        return frame_deadline
    return min(frame_deadline, outer)


def classify(exc: BaseException, backend: Backend, deadline: float, now: float) -> SpanStatus:
    """Tell how a call that raised ``exc`` ended.

    ``timed_out`` for :class:`~mai.DeadlineExceeded`, or for the backend's cancellation when the
    deadline in force has passed; ``cancelled`` for any other cancellation; ``error`` otherwise.
    """
    if isinstance(exc, DeadlineExceeded):
        return "timed_out"
    cancelled = backend.cancelled
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(cancelled)
        is_cancel = rest is None
    else:
        is_cancel = isinstance(exc, cancelled)
    if is_cancel:
        return "timed_out" if deadline <= now else "cancelled"
    return "error"


def type_name(exc: BaseException) -> str:
    """Return the exception type's name, qualified by module outside ``builtins``."""
    cls = type(exc)
    mod = cls.__module__
    if mod == "builtins":
        return cls.__qualname__
    if mod.startswith("mai."):
        mod = "mai"
    return f"{mod}.{cls.__qualname__}"
