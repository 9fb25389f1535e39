"""The recording interceptor behind :func:`mai.trace` and :func:`mai.testing.capture_spans`."""

from __future__ import annotations

import contextlib
import math
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from mai._context import current_frame
from mai._errors import MaiError
from mai._seam import intercept

from ._handle import ATTRIBUTE, TraceHandle
from ._span import (
    Span,
    arguments_size,
    classify,
    effective_deadline,
    result_attributes,
    size_of,
    type_name,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mai._context import RunState
    from mai._module import Module
    from mai._seam import Call

    from ._span import SpanStatus

P = ParamSpec("P")
R = TypeVar("R")


class _RunLog:
    """The spans of one run, and the anchor that turns loop-clock times into epoch seconds."""

    __slots__ = ("anchor", "last_id", "run", "spans")

    def __init__(self, run: RunState, anchor: float) -> None:
        self.run = run
        self.anchor = anchor
        self.last_id = 0
        self.spans: list[Span] = []

    def handle(self) -> TraceHandle:
        return TraceHandle(self.spans, run_id=self.run.run_id)


class Recorder:
    """An interceptor that records one :class:`~mai.Span` per module call.

    One recorder can watch several runs (each becomes its own :class:`~mai.TraceHandle` in
    :attr:`traces`). The enclosing span is found through a context variable, so calls made in
    Parallel branches, in background work and from worker threads attach to the right parent.
    """

    __slots__ = ("_current", "_logs")

    def __init__(self) -> None:
        """Create a recorder with no runs yet."""
        self._current: ContextVar[tuple[_RunLog, int] | None] = ContextVar(
            "mai.trace.current", default=None
        )
        self._logs: list[_RunLog] = []

    @property
    def traces(self) -> list[TraceHandle]:
        """One trace per run seen so far, in the order the runs started."""
        return [log.handle() for log in self._logs]

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Record ``call`` around ``proceed()``; never changes its result or exception."""
        frame = call.frame
        run = frame.run
        backend = run.backend  # type: ignore[union-attr]
        start = backend.current_time()
        current = self._current.get()
        if current is not None and current[0].run is run:
            log, parent_id = current
        else:
            log = _RunLog(run, time.time() - start)  # type: ignore[arg-type]
            self._logs.append(log)
            parent_id = None
        log.last_id += 1
        span_id = log.last_id
        deadline = effective_deadline(frame.deadline, backend)
        in_bytes, exact = arguments_size(call.args, call.kwargs)
        out_bytes: int | None = None
        status: SpanStatus = "ok"
        error: BaseException | None = None
        attrs: dict[str, Any] | None = None
        token = self._current.set((log, span_id))
        try:
            result = await proceed()
            out_bytes, out_exact = size_of(result)
            exact = exact and out_exact
            attrs = result_attributes(result)
        except BaseException as exc:
            error = exc
            status = classify(exc, backend, deadline, backend.current_time())
            raise
        finally:
            self._current.reset(token)
            end = backend.current_time()
            anchor = log.anchor
            log.spans.append(
                Span(
                    name=call.name,
                    step_id=call.step_id,
                    parent_step_id=call.parent_step_id,
                    span_id=span_id,
                    parent_id=parent_id,
                    start=anchor + start,
                    end=anchor + end,
                    duration=end - start,
                    input_bytes=in_bytes,
                    output_bytes=out_bytes,
                    sizes_exact=exact,
                    retries=frame.attempts - 1,
                    status=status,
                    error_type=None if error is None else type_name(error),
                    error_message=None if error is None else str(error),
                    deadline=None if deadline == math.inf else anchor + deadline,
                    attributes=attrs,
                )
            )
        return result


async def trace(
    module: Module[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> tuple[R, TraceHandle]:
    """Run ``module(*args, **kwargs)`` as a top-level call and return its result and its trace.

    Example::

        result, trace = await mai.trace(pipeline, "some text")
        trace.show()

    When the call raises, the exception propagates unchanged, with the trace of the failed run
    attached: read it with :meth:`TraceHandle.of(err) <mai.TraceHandle.of>` (it is stored as
    ``err.__mai_trace__``). Every module call of the run is traced, background work started by
    a :class:`~mai.NonBlockingDelay` included.

    Args:
        module: The module (or composite) to run.
        *args: Positional arguments for the module.
        **kwargs: Keyword arguments for the module.

    Returns:
        ``(result, trace)``.

    Raises:
        MaiError: When called inside a module call: the run is already under way, and its
            interceptors were fixed when it started. Trace the enclosing top-level call instead.
    """
    frame = current_frame.get()
    if frame.run is not None:
        raise MaiError(
            f"mai.trace() was called inside module {frame.name!r} (step {frame.step_id}); it "
            "starts a new top-level call, so call it outside module bodies and trace the "
            "enclosing call instead",
            module_name=frame.name,
            step_id=frame.step_id,
        )
    recorder = Recorder()
    with intercept(recorder):
        try:
            result = await module(*args, **kwargs)
        except BaseException as exc:
            handle = _only(recorder)
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, ATTRIBUTE, handle)
            raise
    return result, _only(recorder)


def _only(recorder: Recorder) -> TraceHandle:
    traces = recorder.traces
    return traces[0] if traces else TraceHandle(())
