"""What a graph records while it is built: inputs, nodes and where each argument comes from."""

from __future__ import annotations

import inspect
import types
import typing
from typing import TYPE_CHECKING, Any

from mai._casting import Caster, type_name

if TYPE_CHECKING:
    from mai._module import Module

    from ._reach import Rule

MISSING: Any = inspect.Parameter.empty

# Where an argument comes from.
INPUT, NODE, CONST, DEFERRED = 0, 1, 2, 3


class Source:
    """The origin of one argument: a graph input, a node's output, a constant or a deferral."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: int, value: Any) -> None:
        """``value`` is the input name, the node index, the constant, or the deferred ref."""
        self.kind = kind
        self.value = value

    @property
    def from_node(self) -> bool:
        """Whether the argument is another node's output (``value`` is then the node's index)."""
        return self.kind == NODE


class InputSpec:
    """A graph input: name, annotation, default and the caster applied on entry."""

    __slots__ = ("annotation", "caster", "default", "name")

    def __init__(self, name: str, annotation: Any, default: Any, caster: Caster | None) -> None:
        """Describe one input."""
        self.name = name
        self.annotation = annotation
        self.default = default
        self.caster = caster

    @property
    def id(self) -> str:
        """The input's id in edges and plans: ``input:<name>``."""
        return f"input:{self.name}"


class Arg:
    """One argument of a node: the parameter it fills and where its value comes from.

    ``key`` is the parameter name; ``"xs[0]"`` for an item of ``*xs``; ``"kw.key"`` for a key of
    ``**kw``; ``"args[0]"`` (with ``position``) for a positional argument of a composite.
    """

    __slots__ = ("annotation", "key", "position", "rule", "source")

    def __init__(self, key: str, position: int | None, source: Source, annotation: Any) -> None:
        """Describe one argument."""
        self.key = key
        self.position = position
        self.source = source
        self.annotation = annotation
        self.rule: Rule | None = None


class NodeSpec:
    """One node: a module call recorded by the builder."""

    __slots__ = ("args", "index", "module", "output_type", "passthrough")

    def __init__(
        self,
        index: int,
        module: Module[..., Any],
        args: list[Arg],
        output_type: Any,
        passthrough: bool,
    ) -> None:
        """Describe one node (``index`` counts from 0 in creation order)."""
        self.index = index
        self.module = module
        self.args = args
        self.output_type = output_type
        self.passthrough = passthrough

    @property
    def id(self) -> str:
        """The node's stable id: ``n1``, ``n2``, ... in creation order."""
        return f"n{self.index + 1}"

    @property
    def name(self) -> str:
        """The node's module name."""
        return self.module.name

    def label(self) -> str:
        """``n2 ('answer')``, for messages."""
        return f"{self.id} ({self.name!r})"


def describe_type(annotation: Any) -> str:
    """A readable type name: ``int``, ``list[Doc]``, ``str | None``; ``Any`` when missing."""
    if annotation is MISSING or annotation is Any:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None or not args:
        return type_name(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is typing.Annotated:
        return describe_type(args[0])
    name = getattr(origin, "__qualname__", None) or type_name(origin)
    inner = ", ".join(
        f"[{', '.join(describe_type(x) for x in a)}]" if isinstance(a, list) else describe_type(a)
        for a in args
    )
    return f"{name}[{inner}]"
