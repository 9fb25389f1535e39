"""Frozen record classes that cost less to define: ``@record`` instead of a frozen dataclass.

``@dataclass(frozen=True, slots=True)`` writes the source of six methods for each class and
compiles each one when the module is imported: ``__init__``, ``__repr__``, ``__eq__``,
``__hash__``, ``__setattr__`` and ``__delattr__``, 0.3-0.8 ms a class. A fresh process that runs
one durable step defines about a dozen records, which was a tenth of what it spent beyond its
imports. ``@record`` still makes a dataclass (``dataclasses.fields``, ``replace``, ``asdict``,
``__match_args__``, pickling and frozenness are the dataclass's own), but its ``repr``, ``==``
and ``hash`` are three functions written once, here, that give what the generated ones give:
``Name(field=value, ...)`` over the fields with ``repr=True``; equal when of the same class with
equal compared fields; the hash of those fields' tuple. A method the class defines itself is
kept. Only ``__dataclass_params__`` tells them apart (``repr`` and ``eq`` read ``False``).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")


def _key_of(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the tuple of ``cls``'s compared fields (what ``==`` and hash use)."""
    names = [f.name for f in dataclasses.fields(cls) if f.compare]
    if len(names) >= 2:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda _obj: ()


def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self._record_key
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self._record_key(self))


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen, slotted dataclass with shared ``repr``, ``==`` and hash."""
    made: Any = dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)(cls)
    made._record_key = staticmethod(_key_of(made))
    for name, method in (("__repr__", _repr), ("__eq__", _eq), ("__hash__", _hash)):
        if name not in cls.__dict__:
            setattr(made, name, method)
    return made  # type: ignore[no-any-return]
