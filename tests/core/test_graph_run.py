"""mai.Graph as a module: building, dataflow execution, failures, deadlines, nesting, tracing."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import mai


@mai.module
async def shout(text: str) -> str:
    return text.upper()


@mai.module
async def exclaim(text: str) -> str:
    return text + "!"


@mai.module
async def pair(a: str, b: str) -> str:
    return f"{a}|{b}"


def _sleeper(name: str, seconds: float, log: list | None = None) -> mai.Module:
    """A module that sleeps, logs ``(name, start, end)`` and returns its input with its name."""

    @mai.module(name=name)
    async def body(x: str) -> str:
        start = trio.current_time()
        await trio.sleep(seconds)
        if log is not None:
            log.append((name, start, trio.current_time()))
        return f"{x}>{name}"

    return body


# -- building and calling --------------------------------------------------------------------


async def test_builder_records_calls_and_the_graph_runs():
    """Module calls inside the with block are recorded; awaiting the graph runs them."""
    with mai.Graph(name="greet") as g:
        text = g.input("text", str)
        g.output(pair(shout(text), exclaim(text)))
    assert [m.name for m in g.children()] == ["shout", "exclaim", "pair"]
    assert g.inputs == ("text",)
    assert await g("hi") == "HI|hi!"
    assert await g(text="yo") == "YO|yo!"


async def test_inputs_bind_by_position_by_name_and_default():
    """Graph inputs bind like parameters: positionally, by name, with defaults, cast on entry."""
    with mai.Graph(name="g") as g:
        a = g.input("a", str)
        b = g.input("b", str, default="7")
        g.output(pair(a, b))
    assert await g("x") == "x|7"
    assert await g("x", "y") == "x|y"
    assert await g(b="q", a="p") == "p|q"
    with pytest.raises(mai.ArgumentError, match="missing input 'a'"):
        await g()
    with pytest.raises(mai.ArgumentError, match="has no input 'c'"):
        await g("x", c=1)
    with pytest.raises(mai.ArgumentError, match="two values for input 'a'"):
        await g("x", a="y")


async def test_input_values_are_cast_to_the_declared_type():
    """A graph input is cast to its annotation when the graph is called."""

    @mai.module
    async def double(x: int) -> int:
        return 2 * x

    with mai.Graph() as g:
        g.output(double(g.input("x", int)))
    assert await g("21") == 42
    with pytest.raises(mai.CastError, match="'x' expects int"):
        await g("many")


async def test_named_outputs_return_a_dict_and_an_output_may_be_an_input():
    """g.output(name=ref, ...) makes the graph return a dict; an input can be an output."""
    with mai.Graph() as g:
        text = g.input("text", str)
        g.output(loud=shout(text), raw=text)
        g.output(happy=exclaim(text))
    assert await g("a") == {"loud": "A", "raw": "a", "happy": "a!"}
    assert g.output_type == dict[str, Any]


async def test_constants_keywords_bound_values_and_varargs():
    """Nodes take constants, keyword arguments, with_() bindings and *args items."""

    @mai.module
    async def fmt(template: str, *parts: str, sep: str = ",") -> str:
        return template.format(sep.join(parts))

    @mai.module
    async def wrap(text: str, left: str, right: str) -> str:
        return left + text + right

    with mai.Graph() as g:
        a = g.input("a", str)
        joined = fmt("<{}>", a, shout(a), sep="+")
        g.output(wrap.with_(right="]")(joined, left="["))
    assert await g("x") == "[<x+X>]"


async def test_a_node_whose_output_is_unused_still_runs():
    """Every node runs, even one whose output nobody consumes (a side effect)."""
    seen = []

    @mai.module
    async def note(text: str) -> None:
        seen.append(text)

    with mai.Graph() as g:
        text = g.input("text", str)
        note(text)
        g.output(shout(text))
    assert await g("a") == "A"
    assert seen == ["a"]


async def test_graph_built_inside_a_running_module_records_instead_of_running():
    """A graph built inside a module body records its calls (the run's frame is set aside)."""

    @mai.module
    async def outer(text: str) -> str:
        with mai.Graph(name="inner") as g:
            g.output(exclaim(shout(g.input("t", str))))
        return await g(text)

    assert await outer("a") == "A!"


def test_refs_have_no_value_while_the_graph_is_built():
    """Using a reference as a value (truth, length, iteration) is a clear GraphError."""
    with mai.Graph(name="g") as g:
        text = g.input("text", str)
        for use in (bool, len, iter):
            with pytest.raises(mai.GraphError, match="symbolic reference"):
                use(text)
        assert repr(text) == "<mai.Ref input:text>"
        g.output(text)


async def test_awaiting_a_recorded_call_inside_the_builder_is_refused():
    """`await module(ref)` inside a with block is an error: calls there are recorded."""
    with mai.Graph(name="g") as g:
        text = g.input("text", str)
        with pytest.raises(mai.GraphError, match="cannot be awaited"):
            await shout(text)
        g.output(text)


# -- dataflow ------------------------------------------------------------------------------------


async def test_independent_branches_run_concurrently(autojump_clock):
    """Two independent branches run at the same time without the author asking."""
    log: list = []
    a, b, c = _sleeper("a", 1, log), _sleeper("b", 2, log), _sleeper("c", 3, log)
    with mai.Graph() as g:
        x = a(g.input("x", str))
        g.output(pair(b(x), c(x)))
    start = trio.current_time()
    assert await g("go") == "go>a>b|go>a>c"
    assert trio.current_time() - start == 4.0  # 1 + max(2, 3), not 1 + 2 + 3
    assert {(n, s - start, e - start) for n, s, e in log} == {
        ("a", 0.0, 1.0),
        ("b", 1.0, 3.0),
        ("c", 1.0, 4.0),
    }


async def test_a_node_starts_as_soon_as_its_inputs_exist(autojump_clock):
    """A node waits only for its own inputs, not for unrelated slower nodes."""
    log: list = []
    slow, fast, after = (
        _sleeper("slow", 5, log),
        _sleeper("fast", 1, log),
        _sleeper("after", 1, log),
    )
    with mai.Graph() as g:
        x = g.input("x", str)
        g.output(slow=slow(x), after=after(fast(x)))
    start = trio.current_time()
    await g("x")
    starts = {n: s - start for n, s, _ in log}
    assert starts == {"slow": 0.0, "fast": 0.0, "after": 1.0}
    assert trio.current_time() - start == 5.0


async def test_node_step_ids_follow_creation_order_not_completion_order(autojump_clock):
    """Node k is child step k of the graph call, whatever order the nodes finish in."""
    seen: dict[str, str] = {}

    def make(name: str, seconds: float) -> mai.Module:
        @mai.module(name=name)
        async def body(x: str) -> str:
            await trio.sleep(seconds)
            seen[name] = mai.Context.get().step_id
            return x

        return body

    with mai.Graph() as g:
        x = g.input("x", str)
        g.output(first=make("first", 3)(x), second=make("second", 2)(x), third=make("third", 1)(x))
    await g("x")
    assert seen == {"first": "1.1", "second": "1.2", "third": "1.3"}


async def test_first_failure_cancels_the_other_nodes(autojump_clock):
    """The first failing node cancels the rest; the caller sees that node's own exception."""
    log: list = []

    @mai.module
    async def boom(x: str) -> str:
        await trio.sleep(1)
        raise ValueError("boom")

    with mai.Graph(name="g") as g:
        x = g.input("x", str)
        g.output(a=boom(x), b=_sleeper("slow", 10, log)(x))
    start = trio.current_time()
    with pytest.raises(ValueError, match="boom"):
        await g("x")
    assert trio.current_time() - start == 1.0
    assert log == []  # the slow node never finished


async def test_a_failure_stops_downstream_nodes_from_starting(autojump_clock):
    """Nodes downstream of a failed node never run."""
    ran = []

    @mai.module
    async def fail(x: str) -> str:
        raise RuntimeError("first")

    @mai.module
    async def downstream(x: str) -> str:
        ran.append(x)
        return x

    with mai.Graph() as g:
        g.output(downstream(fail(g.input("x", str))))
    with pytest.raises(RuntimeError, match="first"):
        await g("x")
    assert ran == []


async def test_the_graph_deadline_bounds_every_node(autojump_clock):
    """A graph's timeout is the deadline of every node; expiry names the graph."""
    with mai.Graph(name="bounded", timeout=2) as g:
        x = g.input("x", str)
        g.output(pair(_sleeper("quick", 1)(x), _sleeper("slow", 10)(x)))
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded) as info:
        await g("x")
    assert trio.current_time() - start == 2.0
    assert info.value.module_name == "bounded"
    assert isinstance(info.value, TimeoutError)


async def test_with_timeout_on_a_graph_returns_a_bounded_copy(autojump_clock):
    """g.with_(timeout=...) bounds a copy of the graph; the original is unchanged."""
    with mai.Graph(name="g") as g:
        g.output(_sleeper("slow", 10)(g.input("x", str)))
    bounded = g.with_(timeout=3)
    assert g.config.timeout is None
    assert bounded.config.timeout == 3.0
    start = trio.current_time()
    with pytest.raises(mai.DeadlineExceeded, match=r"'g'.*timeout of 3s"):
        await bounded("x")
    assert trio.current_time() - start == 3.0
    assert await g("x") == "x>slow"
    assert trio.current_time() - start == 13.0


async def test_node_timeouts_and_retries_apply_inside_a_graph(autojump_clock):
    """A node's own timeout and retries work in a graph as anywhere else."""
    attempts = []

    @mai.module(retries=2, backoff=1)
    async def flaky(x: str) -> str:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ConnectionError("flaky")
        return x

    with mai.Graph() as g:
        x = g.input("x", str)
        g.output(ok=flaky(x), late=_sleeper("late", 5).with_(timeout=1)(x))
    with pytest.raises(mai.DeadlineExceeded, match="'late'"):
        await g("x")
    with mai.Graph() as g2:
        g2.output(flaky(g2.input("x", str)))
    attempts.clear()
    assert await g2("y") == "y"
    assert len(attempts) == 3


# -- a graph is a module -------------------------------------------------------------------------


async def test_a_graph_nests_in_a_sequential_and_in_another_graph():
    """A graph composes like any module: inside Sequential, Parallel and other graphs."""
    with mai.Graph(name="inner") as inner:
        text = inner.input("text", str)
        inner.output(pair(shout(text), exclaim(text)))
    pipeline = mai.Sequential(exclaim, inner, shout)
    assert await pipeline("a") == "A!|A!!"
    with mai.Graph(name="outer") as outer:
        text = outer.input("text", str)
        outer.output(pair(inner(text), inner(text=exclaim(text))))
    assert await outer("b") == "B|b!|B!|b!!"
    assert await mai.Parallel(inner, exclaim)("c") == ("C|c!", "c!")


async def test_nested_graph_steps_are_hierarchical():
    """Nodes of a graph nested in a Sequential have step ids under the graph's own step."""
    seen = []

    @mai.module
    async def where(x: str) -> str:
        seen.append(mai.Context.get().step_id)
        return x

    with mai.Graph() as g:
        g.output(where(where(g.input("x", str))))
    await mai.Sequential(where, g)("x")
    assert seen == ["1.1", "1.2.1", "1.2.2"]


async def test_a_graph_is_traced_like_any_module():
    """mai.trace records a span for the graph and one per node, parented and stepped."""
    with mai.Graph(name="greet") as g:
        text = g.input("text", str)
        g.output(pair(shout(text), exclaim(text)))
    result, trace = await mai.trace(g, "hi")
    assert result == "HI|hi!"
    assert [(s.name, s.step_id) for s in trace] == [
        ("greet", "1"),
        ("shout", "1.1"),
        ("exclaim", "1.2"),
        ("pair", "1.3"),
    ]
    root = trace.root
    assert {s.name for s in trace.children(root)} == {"shout", "exclaim", "pair"}


def test_a_graph_runs_under_asyncio():
    """The graph runs on the asyncio backend too (through the kernel's backend facade)."""
    with mai.Graph() as g:
        text = g.input("text", str)
        g.output(pair(shout(text), exclaim(text)))
    assert mai.run(g, "a", backend="asyncio") == "A|a!"
    assert mai.run(g, "a") == "A|a!"


async def test_a_graph_deadline_names_the_nodes_still_running(autojump_clock):
    """A graph's timeout names each node it cut off (DeadlineExceeded.running_calls)."""

    @mai.module
    async def slow(x: int) -> int:
        await trio.sleep(10)
        return x

    @mai.module
    async def slower(x: int) -> int:
        await trio.sleep(20)
        return x

    with mai.Graph(name="g", timeout=1) as g:
        x = g.input("x", int)
        g.output(a=slow(x), b=slower(x))
    with pytest.raises(mai.DeadlineExceeded) as info:
        await g(1)
    assert [name for _, name in info.value.running_calls] == ["slow", "slower"]
    assert "still running: 'slow'" in str(info.value)
