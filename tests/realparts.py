"""One rule for tests that need a real server or program: skip locally, fail where it is required.

A real part (PostgreSQL, the model servers, MCP, Temporal, the browser) that cannot start skips
its tests on a developer's machine, with the install command. It is *required* - the skip becomes
a failure - when its ``MAI_REQUIRE_*`` variable is ``1`` or when ``CI=true`` (``.ci/run`` sets
both). ``tests/conftest.py`` also fails any test that skips in CI, whatever skipped it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: Directory under tests/ -> (marker every test there gets, the variable that requires it).
PARTS: dict[str, tuple[str, str]] = {
    "postgres": ("postgres", "MAI_REQUIRE_POSTGRES"),
    "temporal": ("temporal", "MAI_REQUIRE_TEMPORAL"),
    "llm": ("llm", "MAI_REQUIRE_LLM"),
}


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where nothing this machine can run may skip."""
    return os.environ.get("CI") == "true"


def required(variable: str) -> bool:
    """Whether the real part named by ``variable`` (``MAI_REQUIRE_...``) must run here."""
    return os.environ.get(variable) == "1" or in_ci()


def unavailable(variable: str, message: str) -> NoReturn:
    """Skip with ``message``, or fail with it when the part is required."""
    if required(variable):
        pytest.fail(f"{message} ({variable}=1 or CI=true: this real part must run here)")
    pytest.skip(message)
