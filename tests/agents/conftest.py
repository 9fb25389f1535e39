"""Fixtures for the agent tests: the test helpers' directory on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
async def stub_server(nursery):
    """Start stub servers in the test's nursery; close the models' connections at the end."""
    from httpstub import start_stub

    stubs = []

    async def start(_nursery, replies):
        stub = await start_stub(nursery, replies)
        stubs.append(stub)
        return stub

    yield start
    for stub in stubs:
        for m in stub.models:
            await m.aclose()


@pytest.fixture(autouse=True, scope="session")
def _no_real_model_requests():
    """No agent test can reach a model outside this machine (local test servers are fine)."""
    from mai.testing import block_model_requests

    with block_model_requests():
        yield
