"""Shared fixtures and suite-wide rules for the pymai tests.

Async tests run under Trio (``trio_mode = true``); timed tests request ``autojump_clock`` and
assert exact virtual times. Every test must carry a one-line docstring naming the promise it
guards: collection fails otherwise.
"""

from __future__ import annotations

import threading
from typing import Self

import pytest
import structlog
from hypothesis import settings

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
