"""Running a module from synchronous code."""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, TypeVar

import sniffio

from ._errors import ConfigError, EventLoopRunningError, short_repr
from ._module import Module, module

if TYPE_CHECKING:
    from collections.abc import Callable

R = TypeVar("R")


def run(
    target: Module[..., R] | Callable[..., Any], /, *args: Any, backend: str = "trio", **kwargs: Any
) -> R:
    """Run ``target(*args, **kwargs)`` to completion from synchronous code and return its result.

    This starts an event loop (``trio.run`` by default; ``backend="asyncio"`` for asyncio), so it
    cannot be called from inside one: there, ``await target(...)`` instead.

    Args:
        target: The module (or composite) to run. A plain ``def`` function (a lambda too) is
            run as ``mai.module(target)``; an ``async def`` function is awaited as it is, as
            ``trio.run(main)`` would (an entry point whose module calls are runs of their own).
        *args: Positional arguments for the module.
        backend: ``"trio"`` (default) or ``"asyncio"``.
        **kwargs: Keyword arguments for the module.

    Returns:
        The module's result, cast to its return type.

    Raises:
        EventLoopRunningError: When called inside a running event loop (the message says
            what to ``await`` instead).
        ConfigError: When ``target`` is neither a module nor a function.
    """
    if isinstance(target, Module):
        m: Any = target
    elif inspect.iscoroutinefunction(target):
        m = target  # an entry point, as with trio.run(main): modules it calls are runs of their own
    elif callable(target):
        m = module(target)
    else:
        raise ConfigError(f"mai.run expects a module or a function, received {short_repr(target)}")
    try:
        running = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        running = None
    if running is not None:
        name = getattr(m, "name", None) or getattr(m, "__name__", "module")
        raise EventLoopRunningError(
            f"mai.run({name}, ...) was called inside a running {running} event loop, which "
            f"it cannot start again; in async code write `await {name}(...)` instead",
            module_name=name,
        )
    import anyio  # noqa: PLC0415 - loaded when a module is run from synchronous code

    return anyio.run(functools.partial(m, *args, **kwargs), backend=backend)  # type: ignore[no-any-return]
