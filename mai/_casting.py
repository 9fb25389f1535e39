"""Casting values to annotations, and the Payload description of a module's input and output.

Each annotated parameter gets a :class:`Caster`: a cached ``pydantic.TypeAdapter`` behind an
exact-type fast path (a value whose type is exactly the annotation is passed through untouched,
without calling pydantic). ``Any`` and unannotated parameters get no caster at all.

Casting adapters (convert type A to type B where pydantic cannot) are looked up before pydantic:
an exact ``(source type, target annotation)`` adapter wins, then pydantic's own validation.
"""

from __future__ import annotations

import inspect
import math
import threading
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from ._errors import CastError, short_repr

if TYPE_CHECKING:
    from collections.abc import Callable

RETURN = "return value"


class _Never:
    """A type no value has: the exact-type fast path never matches it."""


_adapters: dict[tuple[type, Any], Callable[[Any], Any]] = {}
_adapter_lock = threading.Lock()


def register_adapter(source: type, target: Any, fn: Callable[[Any], Any]) -> None:
    """Register ``fn`` to convert values of exactly ``source`` to the annotation ``target``.

    Adapters take precedence over pydantic: an exact ``(type(value), target)`` match is used
    first, then pydantic validation.
    """
    with _adapter_lock:
        _adapters[(source, target)] = fn


def unregister_adapter(source: type, target: Any) -> None:
    """Remove the adapter registered for ``(source, target)``; missing pairs are ignored."""
    with _adapter_lock:
        _adapters.pop((source, target), None)


def find_adapter(source: type, target: Any) -> Callable[[Any], Any] | None:
    """Return the adapter registered for exactly ``(source, target)``, if any."""
    return _adapters.get((source, target)) if _adapters else None


def type_name(annotation: Any) -> str:
    """Return a readable name for an annotation (``int``, ``list[Doc]``, ...)."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def make_type_adapter(annotation: Any) -> TypeAdapter[Any]:
    """Build a TypeAdapter, allowing arbitrary classes (checked with ``isinstance``)."""
    try:
        return TypeAdapter(annotation)
    except (PydanticSchemaGenerationError, PydanticUserError):
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))


def is_uncast(annotation: Any) -> bool:
    """Tell whether an annotation means "do not validate" (missing or ``Any``)."""
    return annotation is inspect.Parameter.empty or annotation is Any


class Caster:
    """Casts values to one annotation; the adapter is built on first use and cached."""

    __slots__ = ("_adapter", "annotation", "exact")

    def __init__(self, annotation: Any) -> None:
        """Prepare a caster; nothing is built until the first non-exact value arrives."""
        self.annotation = annotation
        self._adapter: TypeAdapter[Any] | None = None
        if annotation is None:
            annotation = type(None)
        if isinstance(annotation, type) and not typing.get_args(annotation):
            self.exact: type = annotation
        else:
            self.exact = _Never

    @property
    def adapter(self) -> TypeAdapter[Any]:
        """The cached ``pydantic.TypeAdapter`` for the annotation."""
        adapter = self._adapter
        if adapter is None:
            adapter = self._adapter = make_type_adapter(self.annotation)
        return adapter

    def cast(self, value: Any, module: str, parameter: str, step_id: str | None = None) -> Any:
        """Return ``value`` cast to the annotation, or raise :class:`CastError`."""
        if type(value) is self.exact:
            return value
        if _adapters:
            fn = _adapters.get((type(value), self.annotation))
            if fn is not None:
                try:
                    return fn(value)
                except Exception as exc:
                    raise self._error(value, module, parameter, step_id, str(exc)) from exc
        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            detail = "; ".join(
                (".".join(str(p) for p in e["loc"]) + ": " if e["loc"] else "") + e["msg"]
                for e in exc.errors()[:3]
            )
            raise self._error(value, module, parameter, step_id, detail) from None

    def _error(
        self, value: Any, module: str, parameter: str, step_id: str | None, detail: str
    ) -> CastError:
        expected = type_name(self.annotation)
        where = "return value" if parameter == RETURN else f"parameter {parameter!r}"
        return CastError(
            f"module {module!r}: {where} expects {expected}, received {short_repr(value)}: "
            f"{detail}",
            module_name=module,
            step_id=step_id,
            parameter=parameter,
            value=value,
            expected=expected,
        )


def caster_for(annotation: Any) -> Caster | None:
    """Return a caster for ``annotation``, or ``None`` when it is missing or ``Any``."""
    return None if is_uncast(annotation) else Caster(annotation)


#: JSON Schema types of the builtin scalars: written out, exactly as pydantic writes them, so that
#: a plan of plain ``int``/``str`` steps builds no TypeAdapter (a fresh process's first one costs
#: tens of milliseconds: pydantic scans every installed distribution for plugins).
_SCALARS: dict[Any, str] = {int: "integer", str: "string", float: "number", bool: "boolean"}


def _scalar(annotation: Any) -> str | None:
    return _SCALARS.get(annotation) if type(annotation) is type else None


def _plain_default(value: Any) -> bool:
    """A default pydantic writes into a schema unchanged (JSON's own scalars)."""
    if value is None or type(value) in (bool, int, str):
        return True
    return type(value) is float and math.isfinite(value)


def json_schema(annotation: Any) -> dict[str, Any]:
    """Return the JSON Schema of an annotation (``{}`` for ``Any``; a note when impossible)."""
    if is_uncast(annotation):
        return {}
    scalar = _scalar(annotation)
    if scalar is not None:
        return {"type": scalar}
    try:
        return make_type_adapter(annotation).json_schema()
    except Exception:
        return {"description": f"{type_name(annotation)} (no JSON Schema)"}


class Payload:
    """The typed description of a module's input and output.

    ``input_model`` is a pydantic model generated with one field per parameter; ``output_type``
    is the return annotation. Their JSON Schemas, returned by the *methods*
    :meth:`input_schema` and :meth:`output_schema`, go into plans, durable records and LLM tool
    definitions.

    Attributes:
        name: The module's name.
        parameters: ``{name: (annotation, default)}`` for each parameter not bound by ``with_``.
        output_type: The return annotation.
    """

    __slots__ = ("_input_model", "name", "output_type", "parameters")

    #: True when :meth:`input_schema` and :meth:`output_schema` are schemas the module declares
    #: itself (an MCP server's tool), not derived from annotations: tool definitions use them as is.
    declared_schema = False

    def __init__(self, name: str, parameters: dict[str, tuple[Any, Any]], output_type: Any) -> None:
        """Describe a module: ``parameters`` maps names to ``(annotation, default)``."""
        self.name = name
        self.parameters = parameters
        self.output_type = output_type
        self._input_model: type[BaseModel] | None = None

    def _title(self) -> str:
        name = self.name.replace(".", "_").split("_")
        return ("".join(p.capitalize() for p in name) or "Module") + "Input"

    @property
    def input_model(self) -> type[BaseModel]:
        """A pydantic model with one field per parameter (built on first use)."""
        model = self._input_model
        if model is None:
            fields: dict[str, Any] = {
                pname: (
                    Any if is_uncast(ann) else ann,
                    ... if default is inspect.Parameter.empty else default,
                )
                for pname, (ann, default) in self.parameters.items()
            }
            model = create_model(
                self._title(),
                __config__=ConfigDict(arbitrary_types_allowed=True),
                **fields,
            )
            self._input_model = model
        return model

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the input model."""
        fast = self._scalar_input_schema()
        if fast is not None:
            return fast
        try:
            return self.input_model.model_json_schema()
        except Exception:
            return {
                "title": self.input_model.__name__,
                "type": "object",
                "properties": {p: json_schema(a) for p, (a, _) in self.parameters.items()},
            }

    def _scalar_input_schema(self) -> dict[str, Any] | None:
        """The input schema pydantic would write, when every parameter is a builtin scalar."""
        properties: dict[str, Any] = {}
        required = []
        for pname, (ann, default) in self.parameters.items():
            scalar = _scalar(ann)
            if scalar is None or pname.startswith(("_", "model_")) or hasattr(BaseModel, pname):
                return None  # not a scalar, or a name pydantic treats specially
            field: dict[str, Any] = {}
            if default is inspect.Parameter.empty:
                required.append(pname)
            elif _plain_default(default):
                field["default"] = default
            else:
                return None
            field["title"] = pname.title().replace("_", " ")
            field["type"] = scalar
            properties[pname] = field
        schema: dict[str, Any] = {"properties": properties}
        if required:
            schema["required"] = required
        schema["title"] = self._title()
        schema["type"] = "object"
        return schema

    def output_schema(self) -> dict[str, Any]:
        """JSON Schema of the output type."""
        return json_schema(self.output_type)
