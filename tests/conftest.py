"""Shared fixtures and suite-wide rules for the pymai tests.

Async tests run under Trio (``trio_mode = true``); timed tests request ``autojump_clock`` and
assert exact virtual times. Every test must carry a one-line docstring naming the promise it
guards: collection fails otherwise.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import anyio
import pytest
import structlog
import trio.testing
from hypothesis import settings
from realparts import PARTS, in_ci, required

# No example database: the suite must not write outside tests/, and runs stay reproducible.
settings.register_profile("mai", database=None, deadline=None, max_examples=60)
settings.load_profile("mai")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test function that lacks a one-line docstring (tests read like specifications)."""
    fn = getattr(item, "function", None)
    if fn is None:
        return
    doc = (fn.__doc__ or "").strip()
    if not doc or "\n" in doc:
        pytest.fail(f"{item.nodeid} needs a one-line docstring saying which promise it guards")


class Meter:
    """Counts how many bodies are inside ``with meter:`` at once, and the peak (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.entered = 0

    def __enter__(self) -> Self:
        with self._lock:
            self.current += 1
            self.entered += 1
            self.peak = max(self.peak, self.current)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1


@pytest.fixture
def meter() -> Meter:
    """A fresh concurrency meter."""
    return Meter()


@pytest.fixture(autouse=True)
def _structlog_config():
    """Restore structlog's configuration after every test.

    ``structlog.testing.capture_logs`` leaves structlog marked as configured, which turns on
    pymai's automatic log binding (an interceptor) for every later run in the same process.
    """
    config = structlog.get_config()
    saved = {**config, "processors": list(config["processors"])}
    was_configured = structlog.is_configured()
    yield
    if was_configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A selector that, instead of blocking until a timer is due, moves its loop's clock there."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:  # nothing scheduled: wait for real I/O (a thread finishing)
            return super().select(None)
        self._loop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock that jumps to the next timer when every task waits.

    The asyncio counterpart of Trio's ``MockClock(autojump_threshold=0)``: timed tests on
    asyncio assert exact virtual times and never wait for real.
    """

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(params=["trio", "asyncio"])
def autojump_run_on(request: pytest.FixtureRequest) -> Runner:
    """Run an async function on each backend in turn, on a virtual clock that autojumps."""

    def run(fn: Callable[[], Awaitable[Any]]) -> Any:
        if request.param == "trio":
            clock = trio.testing.MockClock(autojump_threshold=0)
            return anyio.run(fn, backend="trio", backend_options={"clock": clock})
        return anyio.run(fn, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})

    run.backend = request.param  # type: ignore[attr-defined]
    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of each real part's directory; keep ``chaos`` tests out unless asked for."""
    wanted = "chaos" in (config.option.markexpr or "")
    keep, drop = [], []
    for item in items:
        parts = Path(item.path).parts
        for directory, (marker, _variable) in PARTS.items():
            if directory in parts:
                item.add_marker(getattr(pytest.mark, marker))
        if item.get_closest_marker("chaos") is not None and not wanted:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A skip is a failure in CI, and for a real part whose ``MAI_REQUIRE_*`` variable is set."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    why = "CI=true" if in_ci() else None
    for marker, variable in PARTS.values():
        if why is None and item.get_closest_marker(marker) is not None and required(variable):
            why = f"{variable}=1"
    if why is not None:
        report.outcome = "failed"
        report.longrepr = f"{why} but the test was skipped: {report.longrepr}"
