"""Running a module from synchronous code."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    from ._module import Module

R = TypeVar("R")


def run(module: Module[..., R], /, *args: Any, backend: str = "trio", **kwargs: Any) -> R:
    """Run ``module(*args, **kwargs)`` to completion from synchronous code and return its result.

    This starts an event loop (``trio.run`` by default; ``backend="asyncio"`` for asyncio), so it
    cannot be called from inside one: there, ``await module(...)`` instead.

    Args:
        module: The module (or composite) to run.
        *args: Positional arguments for the module.
        backend: ``"trio"`` (default) or ``"asyncio"``.
        **kwargs: Keyword arguments for the module.

    Returns:
        The module's result, cast to its return type.
    """
    return anyio.run(functools.partial(module, *args, **kwargs), backend=backend)
