"""Recording values as JSON (never pickle), with a format tag stored beside each value."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, to_json

from ._errors import SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable

#: The format tag written beside every recorded value.
FORMAT = "json"


def dumps(value: Any, *, what: str | Callable[[], str]) -> str:
    """Serialise ``value`` to compact JSON text, or raise :class:`SerializationError`.

    pydantic models, dataclasses, datetimes, UUIDs, enums, sets and tuples are supported (as
    pydantic serialises them in JSON mode). ``what`` names the value in the error (a callable
    is called only then: a step's name is not formatted for every step that succeeds).
    """
    try:
        return to_json(value).decode()
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        name = what if isinstance(what, str) else what()
        raise SerializationError(
            f"{name} cannot be recorded as JSON: {type(value).__name__} value ({exc}); "
            "return JSON-compatible data or a pydantic model"
        ) from None


def loads(text: str, fmt: str = FORMAT) -> Any:
    """Decode a recorded value; raise ``ValueError`` for an unknown format or invalid JSON."""
    if fmt != FORMAT:
        raise ValueError(f"unknown value format {fmt!r} (this code reads {FORMAT!r})")
    return json.loads(text)


def _opaque(value: Any) -> str:
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def fingerprint_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``fingerprint({"args": args, "kwargs": kwargs})``, the same text, built in parts."""
    try:
        head = to_json(args).decode()
        tail = to_json(kwargs).decode() if kwargs else "{}"
    except (PydanticSerializationError, TypeError, ValueError):
        return fingerprint({"args": args, "kwargs": kwargs})
    return f'{{"args":{head},"kwargs":{tail}}}'


def fingerprint(value: Any) -> str:
    """JSON of ``value`` for the replay check; never fails.

    A part that is not JSON is recorded by its type (stable across processes), so the
    non-determinism check still covers everything else.
    """
    try:
        return to_json(value).decode()
    except (PydanticSerializationError, TypeError, ValueError):
        return to_json(value, fallback=_opaque).decode()
