"""Workflow identity: the stable name a run records, and how another process finds the workflow.

A run records its workflow's *name* and, when there is one, an importable *reference*
(``pkg.mod:attr`` or ``path/to/file.py:attr``). The name is the workflow's own name when it was
given one (a function's name, ``Sequential(..., name="ingest")``); a composite left with its
default name (``Sequential``, ``Map``, ...) is named after the variable that holds it, its
reference. A composite with neither (built inside a function, never named nor registered) could
never be found again by another process, so a durable start refuses it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mai._composites import Composite
from mai._module import Module
from mai._module import module as as_module

if TYPE_CHECKING:
    from types import ModuleType


def has_default_name(module: Module[..., Any]) -> bool:
    """Whether ``module`` is a composite still called after its class (``Sequential``, ...)."""
    return isinstance(module, Composite) and module.name == type(module).__name__


def _lookup(mod: ModuleType, qual: str) -> Any:
    target: Any = mod
    for part in qual.split("."):
        target = getattr(target, part)
    return target


def ref_of(module: Module[..., Any]) -> str | None:
    """An importable ``pkg.mod:attr`` reference to ``module``, when there is one.

    Looked up where the module was defined: a function's module and qualified name, or, for a
    composite, the module-level variable holding it in the module whose code built it.
    """
    candidates: list[tuple[str, str]] = []
    fn = getattr(module, "__wrapped__", None)
    if fn is not None:
        candidates.append((fn.__module__, fn.__qualname__))
    homes = [getattr(module, "defined_in", None), getattr(module, "__module__", None)]
    for home in dict.fromkeys(h for h in homes if isinstance(h, str)):
        mod = sys.modules.get(home)
        if mod is None:
            continue
        found = [attr for attr, value in vars(mod).items() if value is module]
        if home == "__main__":  # a script: imported by its path, as ``mai run file.py:x`` does
            path = _script_path(mod)
            if path is not None and found:
                return f"{path}:{found[0]}"
            continue
        candidates += [(home, attr) for attr in found]
    for mod_name, qual in candidates:
        if mod_name == "__main__" or "<locals>" in qual:
            continue
        try:
            target = _lookup(importlib.import_module(mod_name), qual)
        except (ImportError, AttributeError):
            continue
        if target is module:
            return f"{mod_name}:{qual}"
    return None


def _script_path(mod: ModuleType) -> str | None:
    """The path of a script run as ``__main__``, relative to the current directory if inside."""
    file = getattr(mod, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def import_ref(ref: str) -> Any:
    """Import ``pkg.mod:attr`` or ``path/to/file.py:attr`` the way ``mai run`` does.

    The current directory is importable; a ``.py`` path is imported as a module named after
    its file, from its directory.
    """
    mod_name, _, qual = ref.partition(":")
    if not mod_name or not qual:
        raise ImportError(f"{ref!r} is not a reference of the form pkg.module:object")
    cwd = str(Path.cwd())
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if mod_name.endswith(".py"):
        path = Path(mod_name).resolve()
        if not path.exists():
            raise ImportError(f"{mod_name!r} does not exist (relative to {cwd})")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        mod_name = path.stem
    return _lookup(importlib.import_module(mod_name), qual)


def resolve_ref(ref: str) -> Module[..., Any]:
    """Import a reference and return the module object it names."""
    target = import_ref(ref)
    if isinstance(target, Module):
        return target
    if callable(target):  # a plain function, as ``mai run file.py:fn`` accepts
        return as_module(target)
    raise TypeError(f"{ref!r} is {type(target).__name__}, not a mai module")


def describe(module: Module[..., Any]) -> str:
    """A short description of where a workflow comes from, for error messages."""
    ref = ref_of(module)
    if ref is not None:
        return f"{type(module).__name__} {module.name!r} ({ref})"
    home = getattr(module, "defined_in", None) or getattr(
        getattr(module, "__wrapped__", None), "__module__", None
    )
    where = f" built in {home}" if home else ""
    return f"{type(module).__name__} {module.name!r}{where} (object at {id(module):#x})"


def unnamed_message(module: Module[..., Any]) -> str:
    """Why a workflow is refused at start, and how to fix it."""
    kind = type(module).__name__
    return (
        f"this {kind} has only its default name {module.name!r} and is not held by a "
        "module-level variable, so no other process could find it to resume the run. Give it "
        f"a name ({kind}(..., name='my-workflow') or .with_(name='my-workflow')), register it "
        "(mai.Runtime(workflows=[...]) or rt.register(flow, 'my-workflow')), or define it at "
        "module level"
    )
