"""Whether a value of one type can reach another type: the rules that place casting layers.

For every edge the graph compares the producer's type ``P`` (a module's return annotation, or a
graph input's declared type) with the consumer's parameter type ``C``. :func:`cast_rule` gives
``None`` when no cast is needed, a :class:`Rule` naming how the value is converted when a cast
is needed, or raises :class:`Unreachable`. The rules, first match wins:

1. ``C`` is ``Any`` or missing, or ``object``: no cast.
2. ``P == C``: no cast.
3. A casting adapter is registered for exactly ``(P, C)``: ``adapter``.
4. ``P`` is ``Any``, missing or ``object``: ``runtime`` (the value is checked when it arrives).
5. ``Annotated[T, ...]``: the metadata of ``P`` is ignored; the constraints of ``C`` make a cast
   (``annotated``) even when the underlying types are equal.
6. ``C`` is a union: ``P`` must reach one member (``union``). ``P`` is a union: every member must
   reach ``C`` (``union``).
7. ``Literal[...]``: ``P``'s values must have a type the literal's values have (``literal``).
8. Classes: ``P`` a subclass of ``C`` (``subclass``); a ``str``/``int`` into an ``Enum`` whose
   values have that type (``enum``); a pydantic model into a ``dict``/``Mapping``
   (``model_dump``); a ``dict``/``Mapping`` into a model, dataclass or TypedDict
   (``dict_to_model``); a model into another model whose required fields it has
   (``model_dump``); a pair that pydantic's lax mode converts (``lax``, table :data:`LAX`).
9. Containers: sequences (``list``, ``tuple``, ``set``, ``frozenset``, ``Sequence``, ...) into
   sequences, mappings into mappings, and any other generic into the same generic, when every
   item type reaches its counterpart (``items``).
10. Anything else is unreachable.

"Reachable" is decided from types only: a cast that is reachable can still fail for a particular
value at run time (``"abc"`` does not become an ``int``), with the kernel's ``CastError``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import types
import typing
import uuid
from collections import abc
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

from mai._casting import find_adapter, is_uncast
from mai.core._records import record

_NONE = type(None)


class Unreachable(Exception):
    """No rule takes the producer's type to the consumer's type."""


@record
class Rule:
    """How a cast converts a value.

    Attributes:
        name: The rule that made the pair reachable (``lax``, ``subclass``, ``model_dump``, ...).
        dump: Whether pydantic models in the value are dumped to dicts before validation.
    """

    name: str
    dump: bool = False


#: Pairs pydantic 2's lax mode converts between (source type -> target types), measured.
LAX: dict[type, frozenset[type]] = {
    int: frozenset({float, bool, decimal.Decimal, dt.datetime, dt.date, dt.time} | {dt.timedelta}),
    float: frozenset({int, bool, decimal.Decimal, dt.datetime, dt.time, dt.timedelta}),
    str: frozenset(
        {int, float, bool, bytes, decimal.Decimal, dt.datetime, dt.date}
        | {dt.time, dt.timedelta, uuid.UUID, pathlib.Path}
    ),
    bool: frozenset({int, float}),
    bytes: frozenset({int, float, str, bool}),
    decimal.Decimal: frozenset({int, float, bool}),
    dt.datetime: frozenset({dt.date}),
    dt.date: frozenset({dt.datetime}),
}

_SEQUENCES: frozenset[Any] = frozenset(
    {list, tuple, set, frozenset, collections.deque}
    | {abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet, abc.Collection, abc.Iterable}
)
_MAPPINGS: frozenset[Any] = frozenset(
    {dict, collections.OrderedDict, collections.defaultdict, abc.Mapping, abc.MutableMapping}
)
_UNIONS = (Union, types.UnionType)
_FIXED = object()


def cast_rule(src: Any, dst: Any) -> Rule | None:
    """Return ``None`` when no cast is needed, else the rule that converts ``src`` to ``dst``.

    Raises:
        Unreachable: When no rule applies.
    """
    if is_uncast(dst) or dst is object:
        return None
    if src is None:
        src = _NONE
    if dst is None:
        dst = _NONE
    if src == dst:
        return None
    if isinstance(src, type) and find_adapter(src, dst) is not None:
        return Rule("adapter")
    if is_uncast(src) or src is object:
        return Rule("runtime")
    src_origin, dst_origin = typing.get_origin(src), typing.get_origin(dst)
    if src_origin is Annotated:
        return cast_rule(typing.get_args(src)[0], dst)
    if dst_origin is Annotated:
        return cast_rule(src, typing.get_args(dst)[0]) or Rule("annotated")
    if src_origin in _UNIONS:
        rules = [cast_rule(m, dst) for m in typing.get_args(src)]
        return Rule("union", any(r is not None and r.dump for r in rules))
    if dst_origin in _UNIONS:
        return _into_union(src, typing.get_args(dst))
    if dst_origin is Literal:
        return _into_literal(src, typing.get_args(dst))
    if src_origin is Literal:
        rules = [cast_rule(type(v), dst) for v in typing.get_args(src)]
        return Rule("literal", any(r is not None and r.dump for r in rules))
    if isinstance(src, type) and isinstance(dst, type):
        return _classes(src, dst)
    return _generic(src, dst)


def _into_union(src: Any, members: tuple[Any, ...]) -> Rule:
    rules: list[Rule] = []
    for m in members:
        try:
            r = cast_rule(src, m)
        except Unreachable:
            continue
        if r is None:
            return Rule("union")
        rules.append(r)
    if not rules:
        raise Unreachable
    return Rule("union", any(r.dump for r in rules))


def _into_literal(src: Any, values: tuple[Any, ...]) -> Rule:
    if typing.get_origin(src) is Literal:
        wanted = typing.get_args(src)
    elif isinstance(src, type):
        wanted = tuple(v for v in values if isinstance(v, src))
    else:
        wanted = ()
    if any(v in values for v in wanted):
        return Rule("literal")
    raise Unreachable


def _is_model(t: type) -> bool:
    return issubclass(t, BaseModel)


def _is_record(t: type) -> bool:
    return _is_model(t) or dataclasses.is_dataclass(t) or typing.is_typeddict(t)


def _classes(src: type, dst: type) -> Rule:
    if issubclass(src, dst):
        return Rule("subclass")
    if issubclass(dst, enum.Enum):
        if any(isinstance(m.value, src) for m in dst):
            return Rule("enum")
        raise Unreachable
    if _is_model(src) and (dst in _MAPPINGS):
        return Rule("model_dump", dump=True)
    if src in _MAPPINGS and _is_record(dst):
        return Rule("dict_to_model")
    if _is_model(src) and _is_model(dst):
        have = set(src.model_fields)  # type: ignore[attr-defined]
        need = {n for n, f in dst.model_fields.items() if f.is_required()}  # type: ignore[attr-defined]
        if need <= have:
            return Rule("model_dump", dump=True)
        raise Unreachable
    if dst in LAX.get(src, ()):
        return Rule("lax")
    raise Unreachable


def _shape(t: Any) -> tuple[Any, tuple[Any, ...]]:
    """Return ``(origin, item types)``: ``list`` -> ``(list, (Any,))``, ``dict`` -> 2 items."""
    origin = typing.get_origin(t)
    if origin is None:
        origin = t
        args: tuple[Any, ...] = ()
    else:
        args = typing.get_args(t)
    if not args:
        args = (Any, Any) if origin in _MAPPINGS else (Any,)
    return origin, args


def _item(t: Any) -> Any:
    """The item type of a sequence; ``_FIXED`` for a fixed-length tuple (handled pairwise)."""
    origin, args = _shape(t)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return _FIXED
    return args[0]


def _generic(src: Any, dst: Any) -> Rule:
    src_origin, src_args = _shape(src)
    dst_origin, dst_args = _shape(dst)
    if _is_model_type(src) and dst_origin in _MAPPINGS:
        return Rule("model_dump", dump=True)
    if src_origin in _MAPPINGS and _is_model_type(dst):
        return Rule("dict_to_model")
    if src_origin in _SEQUENCES and dst_origin in _SEQUENCES:
        pairs = _sequence_pairs(src, src_args, dst, dst_args)
    elif (src_origin in _MAPPINGS and dst_origin in _MAPPINGS) or (
        src_origin == dst_origin and len(src_args) == len(dst_args)
    ):
        pairs = list(zip(src_args, dst_args, strict=True))
    else:
        raise Unreachable
    rules = [cast_rule(a, b) for a, b in pairs]
    return Rule("items", any(r is not None and r.dump for r in rules))


def _is_model_type(t: Any) -> bool:
    return isinstance(t, type) and _is_model(t)


def _sequence_pairs(
    src: Any, src_args: tuple[Any, ...], dst: Any, dst_args: tuple[Any, ...]
) -> list[tuple[Any, Any]]:
    src_item, dst_item = _item(src), _item(dst)
    if src_item is _FIXED and dst_item is _FIXED:
        if len(src_args) != len(dst_args):
            raise Unreachable
        return list(zip(src_args, dst_args, strict=True))
    if src_item is _FIXED:
        return [(a, dst_item) for a in src_args]
    if dst_item is _FIXED:
        return [(src_item, b) for b in dst_args]
    return [(src_item, dst_item)]


def dump_models(value: Any) -> Any:
    """Replace pydantic models in ``value`` (and in its lists, tuples, sets, dicts) by dicts."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(dump_models(v) for v in value)
    if isinstance(value, dict):
        return {k: dump_models(v) for k, v in value.items()}
    return value
