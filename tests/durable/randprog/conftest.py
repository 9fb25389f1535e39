"""Random-program tests: the long ``chaos`` variant is deselected unless asked for (``make chaos``).

``tests/durable`` is on ``sys.path`` here (this directory is a package, so pytest puts its
parent there), which is how ``harness`` and ``randprog`` are imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the ``chaos`` tests of this directory out unless the marker expression names them."""
    wanted = "chaos" in (config.option.markexpr or "")
    here = os.path.dirname(__file__)  # noqa: PTH120
    keep, drop = [], []
    for item in items:
        mine = str(item.path).startswith(here + os.sep)
        if mine and item.get_closest_marker("chaos") is not None and not wanted:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
