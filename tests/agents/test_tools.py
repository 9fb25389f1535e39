"""Tools from modules: names, descriptions, schemas, strict variant, dependencies."""

from __future__ import annotations

import pydantic
import pytest

import mai
from mai.agents import Dep, Tool, ToolArgumentsError, strict_schema, tool, tool_definition


class Hit(pydantic.BaseModel):
    title: str
    score: float


@mai.module
async def search(query: str, client: Dep[dict], limit: int = 5) -> list[Hit]:
    """Search the index.

    Results are sorted by score.

    Args:
        query: What to look for.
        client: The search client (a run-scoped dependency).
        limit: How many hits to return.
    """
    return [Hit(title=f"{client['prefix']}{query}", score=1.0)] * limit


def numpy_style(city: str, days: int) -> str:
    """Forecast the weather.

    Parameters
    ----------
    city : str
        The city name.
    days : int
        How many days ahead.
    """
    return f"{city}:{days}"


def sphinx_style(a: int, b: int) -> int:
    """Add two numbers.

    :param a: The first number.
    :param b: The second number.
    """
    return a + b


def test_google_docstring_gives_description_and_parameter_descriptions():
    """Name, description and per-parameter descriptions come from a Google docstring."""
    d = tool_definition(search)
    assert d.name == "search"
    assert d.description == "Search the index.\n\nResults are sorted by score."
    props = d.parameters["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"]["description"] == "How many hits to return."
    assert props["limit"]["default"] == 5
    assert d.parameters["required"] == ["query"]
    assert d.parameters["additionalProperties"] is False


def test_dependencies_are_left_out_of_the_schema():
    """A Dep[...] parameter is not in the schema and is listed as a dependency."""
    t = Tool(search)
    assert "client" not in t.definition.parameters["properties"]
    assert t.dependencies == ("client",)


def test_numpy_and_sphinx_docstrings_are_parsed():
    """NumPy and Sphinx docstring styles give the same kind of descriptions."""
    n = tool_definition(numpy_style)
    assert n.description == "Forecast the weather."
    assert n.parameters["properties"]["city"]["description"] == "The city name."
    assert n.parameters["properties"]["days"]["description"] == "How many days ahead."
    s = tool_definition(sphinx_style)
    assert s.description == "Add two numbers."
    assert s.parameters["properties"]["b"]["description"] == "The second number."


def test_output_schema_is_the_module_output_type():
    """The tool's output schema is the JSON Schema of the module's return type."""
    d = tool_definition(search)
    assert d.output_schema is not None
    assert d.output_schema["type"] == "array"
    assert d.output_schema["items"] == {"$ref": "#/$defs/Hit"}
    assert tool_definition(lambda x: x).output_schema is None


def test_bound_parameters_are_not_in_the_schema():
    """Parameters bound with with_() are neither in the schema nor required."""
    d = tool_definition(mai.module(sphinx_style).with_(a=1))
    assert list(d.parameters["properties"]) == ["b"]


def test_strict_variant_requires_everything_and_makes_optionals_nullable():
    """strict=True: every property required, optional ones nullable, no defaults."""
    d = Tool(search, strict=True).definition
    assert d.strict is True
    assert d.parameters["required"] == ["query", "limit"]
    limit = d.parameters["properties"]["limit"]
    assert limit["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert "default" not in str(limit)
    nested = strict_schema(
        {"type": "object", "properties": {"o": {"type": "object", "properties": {"x": {}}}}}
    )
    assert nested["properties"]["o"]["anyOf"][0]["additionalProperties"] is False


def test_strict_null_means_the_default():
    """In strict mode a null for a defaulted parameter gives the default."""
    t = Tool(search, strict=True)
    assert t.validate_args('{"query": "q", "limit": null}') == {"query": "q", "limit": 5}


def test_bad_arguments_name_each_field():
    """Arguments that do not fit raise ToolArgumentsError naming every wrong field."""
    t = Tool(search)
    with pytest.raises(ToolArgumentsError) as info:
        t.validate_args('{"query": 3, "extra": 1}')
    assert info.value.tool_name == "search"
    assert any(e.startswith("query:") for e in info.value.errors)
    assert any(e.startswith("extra:") for e in info.value.errors)
    with pytest.raises(ToolArgumentsError, match=r"not JSON|Invalid JSON"):
        t.validate_args("{not json")
    with pytest.raises(ToolArgumentsError, match="query"):
        t.validate_args(None)


async def test_call_fills_dependencies_by_name():
    """Tool.call passes validated arguments plus the run's dependencies to the module."""
    t = Tool(search)
    hits = await t.call(t.validate_args('{"query": "q", "limit": 2}'), {"client": {"prefix": ">"}})
    assert hits == [Hit(title=">q", score=1.0)] * 2
    with pytest.raises(mai.ConfigError, match="dependency 'client'"):
        t.call({"query": "q"}, {})


def test_tool_decorator_and_options():
    """@tool(...) makes a Tool with the given name, description and policies."""

    @tool(name="lookup", description="Look it up.", max_retries=3, on_error="raise")
    def look(key: str) -> str:
        return key

    assert isinstance(look, Tool)
    assert look.definition.name == "lookup"
    assert look.definition.description == "Look it up."
    assert look.max_retries == 3
    assert look.on_error == "raise"
    with pytest.raises(ValueError, match="on_error"):
        Tool(look.module, on_error="ignore")  # type: ignore[arg-type]


def test_subclass_module_uses_its_forward_docstring():
    """A Module subclass is described by its forward docstring (or its class docstring)."""

    class Translate(mai.Module):
        async def forward(self, text: str, lang: str = "fr") -> str:
            """Translate text.

            Args:
                text: The text.
                lang: Target language code.
            """
            return text

    d = tool_definition(Translate())
    assert d.name == "Translate"
    assert d.description == "Translate text."
    assert d.parameters["properties"]["lang"]["description"] == "Target language code."
