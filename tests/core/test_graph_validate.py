"""Build-time validation: every error names the graph, node and edge; nothing runs before it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import mai
from mai.core.graph import Edge

ran: list[str] = []


@mai.module
async def count(text: str) -> int:
    ran.append("count")
    return len(text)


@mai.module
async def shout(text: str) -> str:
    ran.append("shout")
    return text.upper()


@mai.module
async def add(a: int, b: int) -> int:
    ran.append("add")
    return a + b


class Doc(BaseModel):
    title: str


@mai.module
async def titles(docs: list[Doc]) -> list[str]:
    return [d.title for d in docs]


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def build(body, name: str = "g") -> mai.Graph:
    """Build a graph: ``body(g)`` declares its contents inside the with block."""
    with mai.Graph(name=name) as g:
        body(g)
    return g


def test_unknown_parameter_names_node_and_edge():
    """Calling a node with a parameter it does not have names the node, parameter and edge."""

    def body(g):
        text = g.input("text", str)
        n = count(text)
        add(n, c=n)

    with pytest.raises(mai.GraphInputError) as info:
        build(body)
    err = info.value
    assert str(err) == ("graph 'g': node n2 ('add') has no parameter 'c'; its parameters: a, b")
    assert (err.graph, err.node, err.node_name, err.parameter) == ("g", "n2", "add", "c")
    assert err.edge == Edge("n1", "n2", "c")
    assert str(err.edge) == "n1 -> n2.c"
    assert isinstance(err, ValueError)
    assert isinstance(err, mai.MaiError)


def test_missing_input_names_node_and_parameter():
    """A node whose required parameter is not connected is an error naming both."""

    def body(g):
        add(count(g.input("text", str)))

    with pytest.raises(mai.GraphInputError) as info:
        build(body)
    assert str(info.value) == "graph 'g': node n2 ('add') is missing required input 'b'"
    assert (info.value.node, info.value.parameter) == ("n2", "b")


def test_too_many_positional_arguments():
    """More positional arguments than parameters is an error naming the node."""

    def body(g):
        t = g.input("t", str)
        shout(t, t)

    with pytest.raises(mai.GraphInputError, match=r"node n1 \('shout'\) takes 1 positional"):
        build(body)


def test_reference_from_another_graph_is_unknown_here():
    """A reference that belongs to another graph is an unknown input, named with its node."""
    with mai.Graph(name="outer") as outer:
        text = outer.input("text", str)

        def body(_):
            shout(text)

        with pytest.raises(mai.GraphInputError) as info:
            build(body, "inner")
        assert "graph 'inner': node n1 ('shout') parameter 'text' received <mai.Ref " in str(
            info.value
        )
        assert "from graph 'outer', which is unknown here" in str(info.value)
        outer.output(text)


def test_reference_inside_a_container_is_refused():
    """A list holding references is refused with advice to pass them one by one."""

    def body(g):
        t = g.input("t", str)
        shout([t])

    with pytest.raises(mai.GraphInputError, match="container holding references"):
        build(body)


def test_cycle_names_every_node_and_the_closing_edge():
    """A cycle (only possible through deferred references) names its nodes and an edge."""

    def body(g):
        later = g.deferred("later", int)
        first = add(g.input("x", int), later)
        second = add(first, 1)
        later.set(second)
        g.output(second)

    with pytest.raises(mai.GraphCycleError) as info:
        build(body, "loop")
    err = info.value
    assert str(err) == (
        "graph 'loop': cycle n1 ('add') -> n2 ('add') -> n1 ('add'); edge n1 -> n2.a closes it"
    )
    assert err.cycle == ("n1", "n2", "n1")
    assert err.edge == Edge("n1", "n2", "a")
    assert err.node == "n2"


def test_deferred_reference_wires_a_later_node():
    """A deferred reference set to a later node is an ordinary edge (no cycle)."""
    with mai.Graph(name="g") as g:
        later = g.deferred("total")
        shouted = shout(g.input("text", str))
        g.output(add(later, 1))
        later.set(count(shouted))
    assert mai.run(g, "abc") == 4


def test_deferred_reference_never_set():
    """A deferred reference that is never set is a missing input naming its user."""

    def body(g):
        g.output(add(g.input("x", int), g.deferred("y")))

    with pytest.raises(mai.GraphInputError) as info:
        build(body)
    assert str(info.value) == (
        "graph 'g': deferred 'y' is used by node n1 ('add') parameter 'b' but never set; call "
        ".set(ref) on it before the with block ends"
    )


def test_type_that_cannot_be_cast_names_producer_consumer_parameter_and_types():
    """An edge whose types no rule connects is a GraphTypeError naming all four."""

    def body(g):
        text = g.input("text", str)
        titles(shout(text))

    with pytest.raises(mai.GraphTypeError) as info:
        build(body)
    err = info.value
    assert str(err) == (
        "graph 'g': edge n1 -> n2.docs: node n2 ('titles') parameter 'docs' expects list[Doc], "
        "but n1 ('shout') produces str; no pydantic conversion or registered casting adapter "
        "turns one into the other (insert a module that converts it, or register a caster "
        "with mai.register_caster)"
    )
    assert (err.producer, err.consumer, err.parameter) == ("n1", "n2", "docs")
    assert (err.source_type, err.target_type) == ("str", "list[Doc]")
    assert err.edge == Edge("n1", "n2", "docs")
    assert isinstance(err, TypeError)
    assert isinstance(err, ValueError)


def test_graph_input_type_is_checked_like_a_node_output():
    """An input declared as int feeding a str parameter is unreachable (pydantic won't)."""

    def body(g):
        shout(g.input("n", int))

    with pytest.raises(mai.GraphTypeError) as info:
        build(body)
    assert info.value.producer == "input:n"
    assert info.value.edge == Edge("input:n", "n1", "text")


def test_constant_that_does_not_fit_its_parameter():
    """A constant argument is cast once at build time; one that does not fit is an error."""

    def body(g):
        add(g.input("a", int), "lots")

    with pytest.raises(mai.GraphTypeError, match=r"node n1 \('add'\) parameter 'b': the constant"):
        build(body)
    with mai.Graph(name="g") as ok:
        ok.output(add(ok.input("a", int), "2"))
    assert mai.run(ok, 1) == 3


def test_duplicate_outputs_are_refused():
    """The same output declared twice, or unnamed and named mixed, is a GraphOutputError."""

    def body(g):
        text = g.input("text", str)
        g.output(answer=shout(text))
        g.output(answer=count(text))

    with pytest.raises(mai.GraphOutputError) as info:
        build(body)
    assert str(info.value) == (
        "graph 'g': output 'answer' is declared twice (first from n1 ('shout'), now from "
        "n2 ('count'))"
    )
    assert (info.value.output, info.value.node) == ("answer", "n2")

    def body(g):
        text = g.input("text", str)
        g.output(text)
        g.output(text)

    with pytest.raises(mai.GraphOutputError, match="unnamed output is declared twice"):
        build(body)

    def body(g):
        text = g.input("text", str)
        g.output(text)
        g.output(other=text)

    with pytest.raises(mai.GraphOutputError, match="not both"):
        build(body)


def test_a_graph_needs_an_output():
    """A graph without an output is refused when its block ends."""

    def body(g):
        shout(g.input("t", str))

    with pytest.raises(mai.GraphOutputError, match="graph 'g' has no output"):
        build(body)


def test_bad_input_declarations():
    """Input names must be identifiers, unique, and defaults come last."""

    def body(g):
        g.input("not ok")

    with pytest.raises(mai.GraphInputError, match="not a Python identifier"):
        build(body, "Graph")

    def body(g):
        g.input("a")
        g.input("a")

    with pytest.raises(mai.GraphInputError, match="declared twice"):
        build(body, "Graph")

    def body(g):
        g.input("a", default=1)
        g.input("b")

    with pytest.raises(mai.GraphInputError, match="declare inputs with defaults last"):
        build(body, "Graph")


async def test_nothing_runs_before_validation_passes():
    """No module body runs while building, and a graph that failed validation never runs."""

    g = mai.Graph(name="broken")

    def declare():
        with g:
            shout(count(g.input("text", str)))

    with pytest.raises(mai.GraphTypeError):
        declare()
    assert ran == []
    with pytest.raises(mai.GraphError, match="graph 'broken' is not built"):
        await g("x")
    assert ran == []


def test_a_graph_is_built_once_and_used_only_when_built():
    """Re-entering a built graph, or using one before its block ends, is refused."""
    with mai.Graph(name="g") as g:
        g.output(shout(g.input("t", str)))
    with pytest.raises(mai.GraphError, match="already built"), g:
        pass

    def body(s):
        s(s.input("t", str))

    with pytest.raises(mai.GraphError, match="calls the graph itself"):
        build(body, "self")
    inner = mai.Graph(name="inner")

    def body(outer):
        inner(outer.input("t", str))

    with pytest.raises(mai.GraphError, match="before its with block ended"):
        build(body, "outer")


def test_builder_methods_outside_the_block_are_refused():
    """g.input() and g.output() only work inside the graph's with block."""
    g = mai.Graph(name="g")
    with pytest.raises(mai.GraphError, match=r"g.input\(\) is only possible inside"):
        g.input("x")


def test_error_tree():
    """The graph errors subclass MaiError and the fitting builtins."""
    assert issubclass(mai.GraphError, mai.MaiError)
    assert issubclass(mai.GraphError, ValueError)
    for cls in (
        mai.GraphInputError,
        mai.GraphCycleError,
        mai.GraphTypeError,
        mai.GraphOutputError,
        mai.PlanFormatError,
        mai.PlanResolutionError,
    ):
        assert issubclass(cls, mai.GraphError)
    assert issubclass(mai.GraphTypeError, TypeError)
    assert issubclass(mai.PlanResolutionError, LookupError)


def test_graph_errors_pickle_with_their_edge():
    """A validation error crosses process boundaries with its node, edge and types."""
    import pickle

    def body(g):
        titles(shout(g.input("text", str)))

    with pytest.raises(mai.GraphTypeError) as info:
        build(body)
    back = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own data
    assert type(back) is mai.GraphTypeError
    assert str(back) == str(info.value)
    assert back.edge == Edge("n1", "n2", "docs")
    assert (back.producer, back.target_type) == ("n1", "list[Doc]")
