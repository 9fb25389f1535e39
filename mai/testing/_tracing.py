"""Testing helpers for tracing and for timed code on a virtual clock."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mai._backend import current_backend
from mai._errors import DeadlineExceeded
from mai._seam import intercept
from mai.core.tracing import Recorder, instrument

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from mai._seam import Call
    from mai.core.tracing import Span, SpanStatus, TraceHandle

T = TypeVar("T")


# -- spans ----------------------------------------------------------------------------------------


class SpanCapture:
    """The traces collected by :func:`capture_spans`: one :class:`~mai.TraceHandle` per run."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: Recorder) -> None:
        """Wrap the recorder that :func:`capture_spans` installed."""
        self._recorder = recorder

    @property
    def traces(self) -> list[TraceHandle]:
        """One trace per top-level call started inside the block, in start order."""
        return self._recorder.traces

    @property
    def trace(self) -> TraceHandle:
        """The trace of the only run.

        Raises:
            AssertionError: When the block started no run, or more than one.
        """
        traces = self.traces
        if len(traces) != 1:
            raise AssertionError(f"expected exactly one traced run, found {len(traces)}")
        return traces[0]

    @property
    def spans(self) -> list[Span]:
        """Every span of every run, run after run, each run depth-first."""
        return [s for t in self.traces for s in t]

    def names(self) -> list[str]:
        """The module names of :attr:`spans`, in that order."""
        return [s.name for s in self.spans]

    def find(
        self,
        name: str | None = None,
        *,
        step_id: str | None = None,
        status: SpanStatus | None = None,
    ) -> list[Span]:
        """The spans of every run matching all given criteria (see :meth:`mai.TraceHandle.find`)."""
        return [s for t in self.traces for s in t.find(name, step_id=step_id, status=status)]

    def __getitem__(self, name: str) -> Span:
        """The first span of the module called ``name``, across runs.

        Raises:
            KeyError: When no run called that module.
        """
        for t in self.traces:
            if name in t:
                return t[name]
        raise KeyError(f"no span named {name!r}; modules traced: {', '.join(self.names())}")


@contextmanager
def capture_spans() -> Iterator[SpanCapture]:
    """Record a :class:`~mai.TraceHandle` for every top-level call started inside the block.

    Runs started in the ``with`` block's task (and in tasks and threads it starts) are
    captured, each as its own trace, failed and cancelled runs included::

        with mai.testing.capture_spans() as captured:
            await pipeline("x")
        assert captured["fetch"].retries == 2
        assert [s.name for s in captured.trace.errors] == []

    Yields:
        A :class:`SpanCapture`; read it during or after the block.
    """
    recorder = Recorder()
    with intercept(recorder):
        yield SpanCapture(recorder)


@contextmanager
def capture_otel_spans() -> Iterator[list[Any]]:
    """Collect the OpenTelemetry spans of runs started inside the block.

    A fresh SDK ``TracerProvider`` with an in-memory exporter is used for the block (through
    :func:`mai.core.tracing.instrument`), so no global provider is touched. Needs
    ``opentelemetry-sdk`` (``pip install opentelemetry-sdk``).

    Yields:
        A list, filled with the finished ``ReadableSpan`` objects as the block runs (and
        complete when it ends).

    Raises:
        ModuleNotFoundError: When ``opentelemetry-sdk`` is not installed; the message says how
            to install it.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
            InMemorySpanExporter,
        )
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "mai.testing.capture_otel_spans() needs the OpenTelemetry SDK: "
            "pip install opentelemetry-sdk",
            name=exc.name,
        ) from exc

    spans: list[Any] = []

    class _ListExporter(InMemorySpanExporter):
        def export(self, batch: Any) -> Any:
            spans.extend(batch)
            return super().export(batch)

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_ListExporter()))
    try:
        with instrument(provider):
            yield spans
    finally:
        provider.shutdown()


@dataclass
class RecordedCall:
    """One module call seen by a :class:`RecordingTracer`.

    Attributes:
        name: The module's name.
        step_id: The call's step id.
        parent_step_id: The calling module's step id (``None`` at top level).
        args: Positional arguments, as cast for the module.
        kwargs: Keyword arguments, as cast.
        result: The value returned (``None`` until it returns, or when it raised).
        error: The exception raised, if any.
        done: Whether the call has finished.
    """

    name: str
    step_id: str
    parent_step_id: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class RecordingTracer:
    """An interceptor that records every module call it sees, in start order.

    Install it for a block with :meth:`installed`, or process-wide with
    :func:`mai.register_tracer` (to test code that relies on tracer plugins)::

        tracer = mai.testing.RecordingTracer()
        with tracer.installed():
            await pipeline("x")
        assert tracer.names() == ["Sequential", "fetch", "summarize"]

    Attributes:
        calls: The calls seen, in the order they started.
        events: ``("start" | "end", step_id)`` pairs in the order they happened.
    """

    calls: list[RecordedCall] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Record ``call`` around ``proceed()``."""
        record = RecordedCall(call.name, call.step_id, call.parent_step_id, call.args, call.kwargs)
        self.calls.append(record)
        self.events.append(("start", call.step_id))
        try:
            record.result = await proceed()
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            record.done = True
            self.events.append(("end", call.step_id))
        return record.result

    @contextmanager
    def installed(self) -> Iterator[RecordingTracer]:
        """Install this tracer for the runs started inside the ``with`` block."""
        with intercept(self):
            yield self

    def names(self) -> list[str]:
        """The module names of :attr:`calls`, in start order."""
        return [c.name for c in self.calls]

    def calls_to(self, name: str) -> list[RecordedCall]:
        """The recorded calls of the module called ``name``."""
        return [c for c in self.calls if c.name == name]

    def clear(self) -> None:
        """Forget every recorded call and event."""
        self.calls.clear()
        self.events.clear()


# -- virtual time ---------------------------------------------------------------------------------


def run_virtual(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``fn(*args)`` under Trio with a virtual clock that jumps whenever all tasks sleep.

    Timeouts, backoff and delays then take no real time, and :func:`trio.current_time` readings
    are exact. Inside pytest with pytest-trio, request the ``autojump_clock`` fixture instead.

    Returns:
        What ``fn`` returned.
    """
    import trio.testing  # noqa: PLC0415

    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


class Stopwatch:
    """Elapsed time on the event loop's clock (virtual under a ``MockClock``).

    Attributes:
        start: The clock reading when the stopwatch started.
        stop: The reading when it stopped (``None`` while running).
    """

    __slots__ = ("start", "stop")

    def __init__(self) -> None:
        """Start now."""
        self.start = current_backend().current_time()
        self.stop: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the start (until the stop, once stopped)."""
        end = current_backend().current_time() if self.stop is None else self.stop
        return end - self.start


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Measure the ``with`` block on the event loop's clock; read ``.elapsed`` afterwards."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.stop = current_backend().current_time()


@contextmanager
def assert_elapsed(seconds: float, *, tolerance: float = 0.0) -> Iterator[Stopwatch]:
    """Assert that the ``with`` block takes ``seconds`` on the event loop's clock.

    On a virtual clock (``autojump_clock``) durations are exact, so the default tolerance is 0.
    The check runs only when the block exits normally.

    Raises:
        AssertionError: When the elapsed time differs by more than ``tolerance``.
    """
    with stopwatch() as watch:
        yield watch
    if not math.isclose(watch.elapsed, seconds, rel_tol=0.0, abs_tol=tolerance):
        raise AssertionError(
            f"expected the block to take {seconds:g} s, it took {watch.elapsed:g} s"
        )


async def expect_deadline(
    awaitable: Awaitable[Any],
    *,
    module: str | None = None,
    after: float | None = None,
    tolerance: float = 0.0,
) -> DeadlineExceeded:
    """Await ``awaitable``, assert it raises :class:`~mai.DeadlineExceeded`, and return the error.

    Example, with the ``autojump_clock`` fixture::

        err = await mai.testing.expect_deadline(agent("q"), module="search", after=2.5)
        assert err.running == "fetch"

    Args:
        awaitable: Typically a module call, ``pipeline(x)``.
        module: When given, the name the error must report as the module whose deadline fired.
        after: When given, the seconds (event-loop clock) the awaitable must take to fail.
        tolerance: Allowed difference for ``after`` (0 on a virtual clock).

    Raises:
        AssertionError: When it returns, or the error or the elapsed time is not the expected
            one. Any other exception propagates unchanged.
    """
    with stopwatch() as watch:
        try:
            value = await awaitable
        except DeadlineExceeded as exc:
            err = exc
        else:
            raise AssertionError(f"expected DeadlineExceeded, the call returned {value!r}")
    if module is not None and err.module_name != module:
        raise AssertionError(
            f"expected the deadline of {module!r} to fire, it was {err.module_name!r}: {err}"
        )
    if after is not None and not math.isclose(watch.elapsed, after, rel_tol=0.0, abs_tol=tolerance):
        raise AssertionError(
            f"expected the deadline to fire after {after:g} s, it fired after {watch.elapsed:g} s"
        )
    return err
