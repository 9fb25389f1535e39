"""Tools from modules: a module (or a plain function) described for a model.

A :class:`Tool` reads everything it tells the model from the module itself: the name, a
description and per-parameter descriptions from the docstring (Google, NumPy or Sphinx style,
parsed by ``docstring_parser``), and the JSON Schema of the typed input. Parameters marked as
run-scoped dependencies (``Dep[...]``) and parameters bound with ``with_()`` never appear in the
schema; the agent fills the dependencies from the run's ``deps`` mapping, by parameter name.

The same definitions serve agents (``Agent(tools=[...])``) and anything else that describes
modules to a model or a protocol (the MCP server): :func:`tool_definition` is the one entry.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from mai._errors import ConfigError
from mai._module import Module, module

from ._errors import ToolArgumentsError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

T = TypeVar("T")


class _DepMarker:
    """The metadata that marks an ``Annotated`` parameter as a run-scoped dependency."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Dep"


DEP = _DepMarker()

#: Marks a tool parameter as a run-scoped dependency: ``client: Dep[httpx.AsyncClient]``.
#: It is left out of the tool's schema and filled, by its name, from ``agent.run(..., deps=)``.
Dep = Annotated[T, DEP]

DocstringFormat = Literal["auto", "google", "numpy", "sphinx"]
OnError = Literal["model", "raise"]

_STYLES = {
    "auto": docstring_parser.DocstringStyle.AUTO,
    "google": docstring_parser.DocstringStyle.GOOGLE,
    "numpy": docstring_parser.DocstringStyle.NUMPYDOC,
    "sphinx": docstring_parser.DocstringStyle.REST,
}


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """What a model (or an MCP client) is told about one tool.

    Attributes:
        name: The tool's name.
        description: What the tool does (from the docstring), or ``None``.
        parameters: JSON Schema (an object) of the arguments; the strict variant when
            ``strict`` is set.
        strict: Whether ``parameters`` is the strict-schema variant (every property required,
            no additional properties; optional parameters nullable).
        output_schema: JSON Schema of the tool's result, ``None`` when untyped.
        kind: ``"function"`` for a tool, ``"output"`` for the final-result tool of an agent.
    """

    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool = False
    output_schema: dict[str, Any] | None = None
    kind: Literal["function", "output"] = "function"


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    annotation: Any
    default: Any
    description: str | None = None
    dep: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def is_dep(annotation: Any) -> bool:
    """Whether ``annotation`` is ``Dep[...]`` (a run-scoped dependency)."""
    return typing.get_origin(annotation) is Annotated and any(
        m is DEP for m in getattr(annotation, "__metadata__", ())
    )


def _docstring(mod: Module[..., Any]) -> str | None:
    fn = getattr(mod, "function", None)
    if fn is not None:
        return inspect.getdoc(fn)
    described = getattr(mod, "description", None)
    if isinstance(described, str):
        return described
    cls = type(mod)
    if not cls.__module__.startswith("mai."):
        doc = inspect.getdoc(cls.forward) if "forward" in vars(cls) else None
        return doc or inspect.getdoc(cls)
    return None


def _title(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.replace(".", "_").split("_")) or "Tool"


class Tool:
    """A module (or plain function) as a tool a model can call.

    Every module already is a tool: ``Agent(tools=[search])`` wraps it with the defaults. Make a
    ``Tool`` (or use :func:`tool`) to change what the model sees or how errors are handled::

        agent = mai.Agent(model, tools=[mai.tool(search, max_retries=3, strict=True)])

    The module's own ``timeout``, ``retries`` and ``max_concurrency`` apply unchanged to every
    call; ``max_retries`` is the other budget: how many consecutive retry prompts (bad
    arguments, :class:`~mai.ModelRetry`, errors sent back) this tool may send the model before
    the run fails with :class:`~mai.agents.ToolRetriesExceeded`.

    Args:
        obj: A module, or a function (wrapped with :func:`mai.module`).
        name: The name the model sees (default: the module's name).
        description: What the model is told the tool does (default: from the docstring).
        strict: Send the strict-schema variant (OpenAI's ``strict`` function calling).
        max_retries: Consecutive retry prompts allowed (default: the agent's ``tool_retries``).
        on_error: What an exception other than :class:`~mai.ModelRetry` does: ``"model"`` (the
            default) sends its type and message back to the model as the call's error result;
            ``"raise"`` fails the run with it.
        docstring_format: ``"auto"``, ``"google"``, ``"numpy"`` or ``"sphinx"``.

    Raises:
        ConfigError: When ``obj`` is neither a module nor a function.
    """

    __slots__ = (
        "_args_model",
        "_definition",
        "_dep_names",
        "_fields",
        "_nullable",
        "_positional",
        "description",
        "max_retries",
        "module",
        "name",
        "on_error",
        "strict",
    )

    def __init__(
        self,
        obj: Module[..., Any] | Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        max_retries: int | None = None,
        on_error: OnError = "model",
        docstring_format: DocstringFormat = "auto",
    ) -> None:
        """Describe ``obj`` as a tool."""
        mod: Module[..., Any] = obj if isinstance(obj, Module) else module(obj)
        if on_error not in ("model", "raise"):
            raise ValueError(f"Tool on_error= expects 'model' or 'raise', received {on_error!r}")
        if max_retries is not None and (isinstance(max_retries, bool) or max_retries < 0):
            raise ValueError(f"Tool max_retries= expects an integer >= 0, received {max_retries!r}")
        self.module = mod
        self.name = name or mod.name
        self.strict = strict
        self.max_retries = max_retries
        self.on_error: OnError = on_error
        doc = _docstring(mod)
        parsed = docstring_parser.parse(doc, _STYLES[docstring_format]) if doc else None
        if description is None and parsed is not None:
            parts = [p for p in (parsed.short_description, parsed.long_description) if p]
            description = "\n\n".join(parts) or None
        self.description = description
        described = {p.arg_name: p.description for p in parsed.params} if parsed else {}
        params: list[_Param] = []
        for pname, (ann, default) in mod.payload.parameters.items():
            params.append(_Param(pname, ann, default, described.get(pname), dep=is_dep(ann)))
        self._dep_names = tuple(p.name for p in params if p.dep)
        fields: dict[str, Any] = {}
        for p in params:
            if p.dep:
                continue
            ann = Any if p.annotation is inspect.Parameter.empty else p.annotation
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (ann, Field(default, description=p.description))
        self._fields = fields
        self._nullable = frozenset(
            n for n, (_, f) in fields.items() if f.is_required() is False and f.default is not None
        )
        self._args_model: type[BaseModel] = create_model(
            f"{_title(self.name)}Args",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        self._definition: ToolDefinition | None = None
        sig = mod.__signature__.parameters.values()
        self._positional: tuple[str, ...] | None = (
            tuple(p.name for p in sig)
            if all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in sig)
            else None
        )

    # -- description ---------------------------------------------------------------------------

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Names of the parameters filled from the run's ``deps`` (left out of the schema)."""
        return self._dep_names

    @property
    def args_model(self) -> type[BaseModel]:
        """The pydantic model the arguments are validated with (dependencies excluded)."""
        return self._args_model

    @property
    def definition(self) -> ToolDefinition:
        """The :class:`ToolDefinition` sent to the model (built once)."""
        d = self._definition
        if d is None:
            payload = self.module.payload
            declared = payload.declared_schema  # the module brings its own schemas (MCP tools)
            schema = payload.input_schema() if declared else parameters_schema(self._args_model)
            if self.strict:
                schema = strict_schema(schema)
            out_type = self.module.output_type
            out = None
            if declared or (
                out_type is not Any and out_type is not None and out_type is not type(None)
            ):
                out = payload.output_schema() or None
            d = self._definition = ToolDefinition(
                self.name, self.description, schema, self.strict, out
            )
        return d

    # -- calling -------------------------------------------------------------------------------

    def validate_args(self, args: str | bytes | Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate a model's arguments (JSON text or a mapping) into keyword arguments.

        In strict mode a ``null`` for a parameter that has a non-``None`` default means "use the
        default" (strict schemas make every parameter required and optional ones nullable).

        Raises:
            ToolArgumentsError: Naming each field that does not fit (the message is the
                retry prompt the model receives).
        """
        try:
            if args is None or args in ("", b""):
                model = self._args_model.model_validate({})
            elif isinstance(args, str | bytes):
                if self.strict and self._nullable:
                    import json  # noqa: PLC0415 - strict tools with defaults only

                    data = json.loads(args)
                    model = self._args_model.model_validate(self._drop_nulls(data))
                else:
                    model = self._args_model.model_validate_json(args)
            else:
                model = self._args_model.model_validate(self._drop_nulls(dict(args)))
        except ValidationError as exc:
            lines = tuple(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: " + "; ".join(lines),
                tool_name=self.name,
                errors=lines,
            ) from None
        except ValueError as exc:  # json.loads of text that is not JSON
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: not JSON ({exc})",
                tool_name=self.name,
                errors=(f"(arguments): not JSON ({exc})",),
            ) from None
        return {name: getattr(model, name) for name in self._fields}

    def _drop_nulls(self, data: Any) -> Any:
        if not self.strict or not isinstance(data, dict) or not self._nullable:
            return data
        return {k: v for k, v in data.items() if not (v is None and k in self._nullable)}

    def call(
        self, arguments: Mapping[str, Any], deps: Mapping[str, Any] | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Start the module call with validated ``arguments`` and the dependencies it takes.

        The call's step id is fixed when this is called (in the calling task), so call it in
        program order and await the coroutines wherever (a nursery, for instance).

        Raises:
            ConfigError: When a dependency the tool takes is not in ``deps`` (a programming
                error, not a retry: the message names the parameter).
        """
        if self._positional is not None and not self._dep_names:
            # every parameter can be passed by position: the module's fast path (no binding)
            try:
                return self.module(*[arguments[n] for n in self._positional])
            except KeyError:
                pass  # an argument left to its default: bind by keyword
        kwargs = dict(arguments)
        for name in self._dep_names:
            if deps is None or name not in deps:
                raise ConfigError(
                    f"tool {self.name!r} takes the dependency {name!r}, but the run's deps "
                    f"{'are empty' if not deps else 'have only ' + ', '.join(map(repr, deps))}; "
                    f"pass deps={{{name!r}: ...}} to the agent run",
                    key=name,
                )
            kwargs[name] = deps[name]
        return self.module(**kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Call the underlying module directly."""
        return self.module(*args, **kwargs)

    def __repr__(self) -> str:
        """Return ``<mai.Tool name>``."""
        return f"<mai.Tool {self.name!r}>"


def tool(
    obj: Module[..., Any] | Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    max_retries: int | None = None,
    on_error: OnError = "model",
    docstring_format: DocstringFormat = "auto",
) -> Any:
    """Make a :class:`Tool` from a module or function; usable bare or as a decorator.

    Example::

        @mai.tool(max_retries=3, strict=True)
        async def search(query: str, limit: int = 5) -> list[str]: ...  # documented as usual

    Args:
        obj: The module or function.
        name: See :class:`Tool`.
        description: See :class:`Tool`.
        strict: See :class:`Tool`.
        max_retries: See :class:`Tool`.
        on_error: See :class:`Tool`.
        docstring_format: See :class:`Tool`.

    Returns:
        A :class:`Tool` (or, without ``obj``, a decorator that makes one).
    """
    opts: dict[str, Any] = {
        "name": name,
        "description": description,
        "strict": strict,
        "max_retries": max_retries,
        "on_error": on_error,
        "docstring_format": docstring_format,
    }
    if obj is None:
        return lambda o: Tool(o, **opts)
    return Tool(obj, **opts)


def as_tool(obj: Tool | Module[..., Any] | Callable[..., Any]) -> Tool:
    """Return ``obj`` if it is a :class:`Tool`, else a Tool with the defaults."""
    return obj if isinstance(obj, Tool) else Tool(obj)


def tool_definition(obj: Tool | Module[..., Any] | Callable[..., Any]) -> ToolDefinition:
    """Return the :class:`ToolDefinition` of a tool, module or function."""
    return as_tool(obj).definition


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of an arguments model, as a tool's ``parameters`` (no title)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return the strict variant of a JSON Schema (OpenAI structured outputs' subset).

    Every object gets ``additionalProperties: false`` and lists all its properties as required;
    a property that was optional becomes nullable (``anyOf`` with ``null``) and loses its
    ``default``. The input is not changed.
    """
    import copy  # noqa: PLC0415

    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                props = node.setdefault("properties", {})
                required = set(node.get("required", ()))
                for pname, prop in list(props.items()):
                    if pname not in required and isinstance(prop, dict):
                        prop.pop("default", None)
                        if not _nullable(prop):
                            props[pname] = {"anyOf": [prop, {"type": "null"}]}
                            if "description" in prop:
                                props[pname]["description"] = prop.pop("description")
                node["required"] = list(props)
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


def _nullable(prop: dict[str, Any]) -> bool:
    if prop.get("type") == "null":
        return True
    return any(isinstance(o, dict) and o.get("type") == "null" for o in prop.get("anyOf", ()))
