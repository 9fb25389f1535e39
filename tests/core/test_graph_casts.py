"""Casting layers (where types differ, and only there) and fusion of sync chains."""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pytest
import trio
from pydantic import AfterValidator, BaseModel

import mai
from mai._backend import Backend
from mai.core.graph._reach import Rule, Unreachable, cast_rule

validations: list[int] = []


def _counted(value: list[int]) -> list[int]:
    validations.append(len(value))
    return value


Counted = Annotated[list[int], AfterValidator(_counted)]


@mai.module
async def produce(n: int) -> Counted:
    return list(range(n))


@mai.module
async def consume(values: Counted) -> int:
    return sum(values)


class Doc(BaseModel):
    title: str
    pages: int = 1


class Brief(BaseModel):
    title: str


@mai.module
async def make_doc(title: str) -> Doc:
    return Doc(title=title, pages=3)


@mai.module
async def as_brief(brief: Brief) -> str:
    return f"brief:{brief.title}"


@mai.module
async def keys(data: dict[str, Any]) -> list[str]:
    return sorted(data)


@mai.module
async def half(n: int) -> float:
    return n / 2


@mai.module
async def whole(n: int) -> int:
    assert type(n) is int
    return n


@mai.module
async def untyped(x):  # an unannotated producer
    return x


# -- casting layers ------------------------------------------------------------------------------


async def test_no_cast_runs_where_types_match():
    """An edge whose types are equal has no cast in the plan and validates nothing at run time."""
    with mai.Graph(name="g") as g:
        g.output(consume(produce(g.input("n", int))))
    assert mai.plan(g).casts == []
    assert all("cast" not in e for e in mai.plan(g).edges)
    validations.clear()
    assert await g(4) == 6
    assert validations == [4]  # the producer's own return value, never the edge
    validations.clear()
    assert await mai.Sequential(produce, consume)(4) == 6
    assert validations == [4, 4]  # the kernel validates the argument again


async def test_a_cast_is_inserted_where_types_differ_and_runs_once():
    """A differing but reachable pair gets a cast in the plan and is converted once."""
    with mai.Graph(name="g") as g:
        g.output(whole(half(g.input("n", int))))
    plan = mai.plan(g)
    assert plan.casts == [
        {
            "id": "c1",
            "source": "n1",
            "target": "n2",
            "parameter": "n",
            "from": "float",
            "to": "int",
            "rule": "lax",
        }
    ]
    assert [e.get("cast") for e in plan.edges] == [None, "c1"]
    assert await g(8) == 4
    with pytest.raises(mai.CastError, match="module 'whole': parameter 'n' expects int"):
        await g(3)  # 1.5 is not a whole number: the cast fails at run time, naming the consumer


async def test_model_to_model_and_model_to_dict_casts():
    """A model reaches another model with its required fields, and a dict, by dumping."""
    with mai.Graph(name="g") as g:
        doc = make_doc(g.input("title", str))
        g.output(brief=as_brief(doc), keys=keys(doc))
    assert [(c["from"], c["to"], c["rule"]) for c in mai.plan(g).casts] == [
        ("Doc", "Brief", "model_dump"),
        ("Doc", "dict[str, Any]", "model_dump"),
    ]
    assert await g("t") == {"brief": "brief:t", "keys": ["pages", "title"]}


class Celsius(float):
    pass


@mai.module
async def read(x: int) -> Celsius:
    return Celsius(x)


@mai.module
async def label(text: str) -> str:
    return f"<{text}>"


async def test_registered_caster_makes_a_pair_reachable():
    """mai.register_caster makes an otherwise unreachable edge valid (rule: adapter)."""
    with pytest.raises(mai.GraphTypeError), mai.Graph() as g:
        label(read(g.input("x", int)))
    mai.register_caster(Celsius, str, lambda c: f"{float(c):.1f}C")
    try:
        with mai.Graph() as g:
            g.output(label(read(g.input("x", int))))
        assert mai.plan(g).casts[0]["rule"] == "adapter"
        assert await g(20) == "<20.0C>"
    finally:
        mai.unregister_caster(Celsius, str)


async def test_untyped_producer_is_cast_when_the_value_arrives():
    """An Any producer gets a runtime cast; a bad value fails naming consumer and parameter."""
    with mai.Graph(name="g") as g:
        g.output(whole(untyped(g.input("x"))))
    assert mai.plan(g).casts[0]["rule"] == "runtime"
    assert await g("12") == 12
    with pytest.raises(mai.CastError, match="module 'whole': parameter 'n'"):
        await g("twelve")


class Color(enum.Enum):
    RED = "red"


class Base:
    pass


class Child(Base):
    pass


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        (int, int, None),
        (int, Any, None),
        (Any, int, "runtime"),
        (int, float, "lax"),
        (str, int, "lax"),
        (int, str, Unreachable),
        (bool, int, "subclass"),
        (Child, Base, "subclass"),
        (Base, Child, Unreachable),
        (int, int | None, "union"),
        (int | None, float | None, "union"),
        (str | None, int, Unreachable),
        (list[int], list[float], "items"),
        (list[int], tuple[int, ...], "items"),
        (tuple[int, str], list[str], Unreachable),
        (list[int], Sequence[int], "items"),
        (dict[str, int], Mapping[str, float], "items"),
        (dict[str, Any], Doc, "dict_to_model"),
        (Doc, dict[str, Any], "model_dump"),
        (Doc, Brief, "model_dump"),
        (Brief, Doc, "model_dump"),
        (str, Color, "enum"),
        (int, Color, Unreachable),
        (str, Literal["a", "b"], "literal"),
        (int, Literal["a"], Unreachable),
        (int, Annotated[int, "meta"], "annotated"),
        (Annotated[int, "meta"], int, None),
        (dt.date, dt.datetime, "lax"),
        (dt.datetime, dt.date, "subclass"),
        (dt.date, str, Unreachable),
    ],
)
def test_reachability_rules(src, dst, expected):
    """The documented rule table decides where casts go and which edges are refused."""
    if expected is Unreachable:
        with pytest.raises(Unreachable):
            cast_rule(src, dst)
    elif expected is None:
        assert cast_rule(src, dst) is None
    else:
        rule = cast_rule(src, dst)
        assert isinstance(rule, Rule)
        assert rule.name == expected


def test_model_missing_required_fields_is_unreachable():
    """A model cannot reach one whose required fields it lacks."""

    class Needs(BaseModel):
        title: str
        author: str

    with pytest.raises(Unreachable):
        cast_rule(Doc, Needs)


# -- fusion --------------------------------------------------------------------------------------


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the kernel's thread hops (Backend.run_in_thread calls)."""
    calls: list[int] = []
    original = Backend.run_in_thread

    async def counting(self: Backend, fn: Any, *args: Any) -> Any:
        calls.append(1)
        return await original(self, fn, *args)

    monkeypatch.setattr(Backend, "run_in_thread", counting)
    return calls


seen: list[tuple[str, str, int]] = []


def _sync(name: str) -> mai.Module:
    def body(x: int) -> int:
        seen.append((name, mai.Context.get().step_id, threading.get_ident()))
        return x + 1

    body.__name__ = name
    return mai.module(body)


s1, s2, s3, s4 = (_sync(f"s{i}") for i in range(1, 5))


def _chain() -> mai.Graph:
    with mai.Graph(name="chain") as g:
        g.output(s4(s3(s2(s1(g.input("x", int))))))
    return g


async def test_a_chain_of_sync_nodes_costs_one_thread_hop(hops):
    """Four consecutive sync nodes are fused: one thread hop, not four."""
    g = _chain()
    assert mai.plan(g).to_dict()["fused"] == [["n1", "n2", "n3", "n4"]]
    seen.clear()
    assert await g(0) == 4
    assert len(hops) == 1
    assert [(n, s) for n, s, _ in seen] == [
        ("s1", "1.1"),
        ("s2", "1.2"),
        ("s3", "1.3"),
        ("s4", "1.4"),
    ]
    assert len({ident for _, _, ident in seen}) == 1
    assert threading.get_ident() not in {ident for _, _, ident in seen}


async def test_without_fusion_each_sync_node_hops(hops):
    """The same chain as a Sequential (no fusion) pays one hop per node."""
    assert await mai.Sequential(s1, s2, s3, s4)(0) == 4
    assert len(hops) == 4


async def test_fusion_is_skipped_when_the_run_has_interceptors(hops):
    """Under tracing (an interceptor), every node is its own call and its own hop."""
    g = _chain()
    result, trace = await mai.trace(g, 0)
    assert result == 4
    assert len(hops) == 4
    assert [s.name for s in trace] == ["chain", "s1", "s2", "s3", "s4"]


async def test_fusion_stops_at_fan_out_and_at_async_nodes(hops):
    """A node feeding two others, an output, or an async node ends a chain."""

    @mai.module
    async def bump(x: int) -> int:
        return x + 1

    with mai.Graph(name="g") as g:
        a = s1(g.input("x", int))
        left = s3(s2(a))  # a feeds two nodes: not fused with either; s2 -> s3 is a chain
        right = s4(bump(a))
        g.output(left=left, right=right)
    assert mai.plan(g).to_dict()["fused"] == [["n2", "n3"]]
    assert await g(0) == {"left": 3, "right": 3}
    assert len(hops) == 3  # s1, then s2+s3 together, then s4


async def test_a_cancelled_fused_chain_stops_before_its_next_node():
    """At the deadline the caller is released and the thread runs no further node."""
    release = threading.Event()
    done = threading.Event()
    ran = []

    @mai.module
    def wait(x: int) -> int:
        while not mai.is_cancelled():
            time.sleep(0.001)
        release.set()
        return x

    @mai.module
    def after(x: int) -> int:
        ran.append(x)
        return x

    @mai.module
    def last(x: int) -> int:
        done.set()
        return x

    with mai.Graph(name="g", timeout=0.05) as g:
        g.output(last(after(wait(g.input("x", int)))))
    with pytest.raises(mai.DeadlineExceeded):
        await g(1)
    assert await trio.to_thread.run_sync(release.wait, 5)
    await trio.sleep(0.05)
    assert ran == []
    assert not done.is_set()
