"""Import paths, annotations and values as plain JSON, and back.

An import path is ``"package.module:qualified.name"``. Annotations are encoded as JSON (a class
by its path, a generic as ``{"origin": ..., "args": [...]}``) so a plan can rebuild a graph's
input types in another process. Values (bound parameters, constants, defaults) are stored as
JSON; a value that has no JSON form is stored as a marker naming its type, which keeps the plan
hashable and drawable but not executable.
"""

from __future__ import annotations

import importlib
import inspect
import json
import typing
from typing import Annotated, Any, Literal, Union

from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._errors import PlanResolutionError

#: Key of the marker stored instead of a value that has no JSON form.
OPAQUE = "$opaque"


def path_of(obj: Any) -> str:
    """Return ``"module:qualname"`` for a class or function (``"mai:Graph"`` for public names)."""
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or "?"
    if module.startswith("mai.") or module == "mai":
        import mai  # noqa: PLC0415 - the public surface sits above this module

        if getattr(mai, qualname, None) is obj:
            return f"mai:{qualname}"
    return f"{module}:{qualname}"


def resolve(
    path: str,
    *,
    graph: str | None = None,
    node: str | None = None,
    node_name: str | None = None,
) -> Any:
    """Import the object an import path names.

    Raises:
        PlanResolutionError: When the module cannot be imported or the name is not in it.
    """
    where = f"node {node} ({node_name!r})" if node else f"plan {graph!r}"

    def fail(reason: str) -> PlanResolutionError:
        return PlanResolutionError(
            f"{where}: cannot resolve {path!r}: {reason}",
            graph=graph,
            node=node,
            node_name=node_name,
            path=path,
        )

    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise fail("an import path looks like 'package.module:name'")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise fail(
            "it was defined inside a function (or is a lambda), so no other process can import "
            "it; define it at module level"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"module {module_name!r} cannot be imported ({exc})") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise fail(f"{part!r} is not defined in {module_name!r} any more") from None
    return obj


def encode_type(annotation: Any) -> Any:
    """Return a JSON form of an annotation (see :func:`decode_type`)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return encode_type(typing.get_args(annotation)[0])
    if origin is Literal:
        return {"literal": [to_jsonable_python(v) for v in typing.get_args(annotation)]}
    if origin is not None:
        if origin is Union or type(annotation).__name__ == "UnionType":
            origin = Union
        args = typing.get_args(annotation)
        return {
            "origin": "typing:Union" if origin is Union else path_of(origin),
            "args": [
                [encode_type(x) for x in a] if isinstance(a, list) else encode_type(a) for a in args
            ],
        }
    if isinstance(annotation, type):
        return path_of(annotation)
    return "Any"


def decode_type(data: Any, *, graph: str | None = None, node: str | None = None) -> Any:
    """Rebuild an annotation encoded by :func:`encode_type`."""
    if data == "Any":
        return Any
    if data == "None":
        return None
    if data == "...":
        return Ellipsis
    if isinstance(data, str):
        return resolve(data, graph=graph, node=node)
    if isinstance(data, list):
        return [decode_type(x, graph=graph, node=node) for x in data]
    if "literal" in data:
        return Literal[tuple(data["literal"])]
    args = tuple(decode_type(a, graph=graph, node=node) for a in data["args"])
    if data["origin"] == "typing:Union":
        return Union[args]  # noqa: UP007 - built from a runtime tuple
    origin = resolve(data["origin"], graph=graph, node=node)
    return origin[args if len(args) != 1 else args[0]]


def jsonable(value: Any) -> Any:
    """Return the JSON form of a value, or an opaque marker naming its type.

    Sets become sorted lists, so the form does not depend on the process's hash seed.
    """
    try:
        return _stable(to_jsonable_python(_sorted_sets(value)))
    except (PydanticSerializationError, TypeError, ValueError):
        return {OPAQUE: path_of(type(value))}


def _sorted_sets(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        items = [to_jsonable_python(_sorted_sets(v)) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_sorted_sets(v) for v in value]
    if isinstance(value, dict):
        return {k: _sorted_sets(v) for k, v in value.items()}
    return value


def _stable(data: Any) -> Any:
    """Check the value has a JSON form (``json.dumps`` raises ``ValueError``/``TypeError``)."""
    json.dumps(data, allow_nan=False)
    return data


def is_opaque(data: Any) -> bool:
    """Tell whether a stored value is the marker of a value with no JSON form."""
    return isinstance(data, dict) and OPAQUE in data and len(data) == 1
