"""Names a package exports but imports on first use (PEP 562), as anyio does with its backends."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    Write ``__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())``.

    Args:
        package: The package's ``__name__`` (relative module names resolve against it).
        table: Exported name -> the module that defines it (``"._worker"``).
        namespace: The package's ``globals()``: a name imported once is cached there, so the
            next access does not reach ``__getattr__`` again.
    """

    def getattr_(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target, package), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(table))

    getattr_.__doc__ = "Import a lazily exported name on first use and cache it."
    dir_.__doc__ = "List the package's attributes, the lazily loaded names included."
    return getattr_, dir_
