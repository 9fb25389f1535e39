"""Typed results of durable runs: a recorded JSON result cast back to what the call returns.

A composite's declared ``output_type`` is not always the type of what it returns: a keyword
``Parallel`` returns ``{key: branch result}`` (declared ``dict[str, Any]``), a ``Conditional``
returns whichever route ran, a ``Race`` whichever branch won. The cast here follows the shape
of the composite, so a durable run returns the same typed values as an in-process call, and a
stored SUCCEEDED result never fails to come back (a value no route's type accepts is returned
as recorded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai._casting import caster_for
from mai._composites import (
    BlockingDelay,
    Composite,
    Conditional,
    Loop,
    Map,
    NonBlockingDelay,
    Parallel,
    Race,
    Sequential,
)
from mai._errors import CastError

if TYPE_CHECKING:
    from mai._module import Module


def _first(candidates: list[Module[..., Any]], value: Any) -> Any:
    """Cast with the first candidate whose type accepts ``value``; else return it as is."""
    for candidate in candidates:
        try:
            return cast_result(candidate, value)
        except CastError:
            continue
    return value


def _typed(annotation: Any, value: Any, name: str) -> Any:
    caster = caster_for(annotation)
    return value if caster is None else caster.cast(value, name, "return value")


def cast_result(module: Module[..., Any], value: Any) -> Any:
    """Cast a recorded result of ``module`` to the values an in-process call returns.

    Raises:
        CastError: When a plain module's recorded result no longer fits its return type.
    """
    if not isinstance(module, Composite):
        return module.cast_output(value)
    if isinstance(module, Sequential):
        return cast_result(module.steps[-1], value)
    if isinstance(module, Parallel):
        if module.keys is not None and isinstance(value, dict):
            routes = dict(zip(module.keys, module.branches, strict=True))
            return {k: cast_result(routes[k], v) if k in routes else v for k, v in value.items()}
        if isinstance(value, list | tuple) and len(value) == len(module.branches):
            return tuple(cast_result(b, v) for b, v in zip(module.branches, value, strict=True))
        return value
    if isinstance(module, Map):
        return [cast_result(module.fn, v) for v in value] if isinstance(value, list) else value
    if isinstance(module, Conditional):
        ways = [module.then, *([module.otherwise] if module.otherwise is not None else [])]
        return _first(ways, value)
    if isinstance(module, Race):
        return _first(list(module.branches), value)
    if isinstance(module, Loop):
        return cast_result(module.body, value)
    if isinstance(module, BlockingDelay | NonBlockingDelay):
        return value  # passes its input through: nothing says what type it was
    outputs = getattr(module, "_outputs", None)
    nodes = getattr(module, "_nodes", None)
    if outputs and nodes is not None and isinstance(value, dict):  # a graph's named outputs
        out: dict[str, Any] = {}
        for key, source in outputs:
            if key in value:
                node = nodes[source.value] if source.from_node else None
                out[key] = (
                    _typed(node.output_type, value[key], module.name)
                    if node is not None
                    else value[key]
                )
        return {**value, **out}
    try:
        return module.cast_output(value)
    except CastError:
        return value
