"""Command-line values: finding ``pkg.module:obj`` targets and parsing arguments into types."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mai import Module


class UsageError(Exception):
    """A command-line mistake: reported as one line, exit code 2."""


def load_target(spec: str) -> Module[..., Any]:
    """Import ``pkg.module:obj`` (or ``path/to/file.py:obj``) and return it as a module.

    A plain function is wrapped with ``mai.module``.
    """
    import mai  # noqa: PLC0415

    obj = load_object(spec)
    if isinstance(obj, mai.Module):
        return obj
    if callable(obj):
        return mai.module(obj)
    raise UsageError(f"{spec!r} is a {type(obj).__name__}, not a mai module or function")


def load_object(spec: str) -> Any:
    """Import ``pkg.module:obj`` (or ``path/to/file.py:obj``) and return the object."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise UsageError(f"expected TARGET as pkg.module:object, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name).resolve()
            sys.path.insert(0, str(path.parent))
            mod_name = path.stem
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {mod_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{mod_name!r} has no attribute {attr!r}") from None
    return obj


def _looks_like_text(annotation: Any) -> bool:
    return annotation is str


def parse_value(text: str, annotation: Any) -> Any:
    """Turn one command-line string into a value for ``annotation``.

    ``str`` parameters take the text as it is; everything else is read as JSON when it parses
    (``3``, ``[1, 2]``, ``{"a": 1}``, ``true``) and kept as text otherwise; the module then casts it
    to the parameter's type as usual (so ``"3"`` also reaches an ``int``).
    """
    if _looks_like_text(annotation):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def bind_cli_args(module: Module[..., Any], tokens: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Split ``ARGS`` into positional values and ``name=value`` keywords, parsed per parameter."""
    params = module.payload.parameters
    names = list(params)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for token in tokens:
        name, eq, value = token.partition("=")
        if eq and name in params:
            kwargs[name] = parse_value(value, params[name][0])
            continue
        free = [n for n in names if n not in kwargs]
        position = len(args)
        annotation = params[free[position]][0] if position < len(free) else Any
        args.append(parse_value(token, annotation))
    return args, kwargs
