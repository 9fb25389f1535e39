"""WorkflowPlan: JSON round trip, stable hash, execution in a fresh process, diff, Mermaid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import mai


class Doc(BaseModel):
    title: str
    text: str


@mai.module
async def retrieve(question: str, k: int = 2) -> list[Doc]:
    return [Doc(title=f"{question}#{i}", text=question * (i + 1)) for i in range(k)]


@mai.module
async def answer(question: str, docs: list[Doc]) -> str:
    return f"{question}: " + ", ".join(d.title for d in docs)


@mai.module
def count(docs: list[Doc]) -> int:
    return len(docs)


@mai.module
async def describe(n: float) -> str:
    return f"{n:g} docs"


@mai.module
async def rerank(docs: list[Doc]) -> list[Doc]:
    return sorted(docs, key=lambda d: d.title, reverse=True)


@mai.module
async def loud(text: str) -> str:
    return text.upper()


def is_short(text: str) -> bool:
    return len(text) < 5


def build_rag(*, rewired: bool = False, extra: bool = False, timeout: float | None = None):
    """The graph the plan tests share (also built in subprocesses)."""
    with mai.Graph(name="rag", timeout=timeout) as g:
        question = g.input("question", str)
        docs = retrieve.with_(k=3)(question)
        ranked = rerank(docs)
        summary = describe(count(ranked if rewired else docs))
        g.output(answer=answer(question, ranked), summary=summary)
        if extra:
            g.output(shout=loud(summary))
    return g


def _root() -> str:
    """The directory from which this test module imports under the same name."""
    depth = len(__name__.split("."))
    return str(Path(__file__).resolve().parents[depth - 1])


def _python(code: str, stdin: str = "", seed: str = "0") -> str:
    env = {**os.environ, "PYTHONPATH": _root(), "PYTHONHASHSEED": seed}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


# -- contents and JSON ---------------------------------------------------------------------------


def test_plan_contents():
    """A graph's plan lists nodes, edges, casts, inputs, outputs and the format version."""
    plan = mai.plan(build_rag())
    assert plan.format_version == 1
    assert (plan.kind, plan.name) == ("graph", "rag")
    data = plan.to_dict()
    assert data["module"] == "mai:Graph"
    assert [(n["id"], n["step"], n["name"], n["module"]) for n in plan.nodes] == [
        ("n1", "1", "retrieve", f"{__name__}:retrieve"),
        ("n2", "2", "rerank", f"{__name__}:rerank"),
        ("n3", "3", "count", f"{__name__}:count"),
        ("n4", "4", "describe", f"{__name__}:describe"),
        ("n5", "5", "answer", f"{__name__}:answer"),
    ]
    n1 = plan.nodes[0]
    assert n1["bound"] == {"k": 3}
    assert n1["mode"] == "async"
    assert plan.nodes[2]["mode"] == "thread"
    assert n1["config"]["timeout"] is None
    assert n1["input_schema"]["properties"] == {"question": {"title": "Question", "type": "string"}}
    assert n1["output_schema"]["type"] == "array"
    assert n1["params"] == {"question": "str"}
    assert n1["output_type"] == "list[Doc]"
    assert [(e["source"], e["target"], e["parameter"]) for e in plan.edges] == [
        ("input:question", "n1", "question"),
        ("n1", "n2", "docs"),
        ("n1", "n3", "docs"),
        ("n3", "n4", "n"),
        ("input:question", "n5", "question"),
        ("n2", "n5", "docs"),
    ]
    assert plan.casts == [
        {
            "id": "c1",
            "source": "n3",
            "target": "n4",
            "parameter": "n",
            "from": "int",
            "to": "float",
            "rule": "lax",
        }
    ]
    assert plan.inputs == [
        {
            "name": "question",
            "type": "str",
            "annotation": "builtins:str",
            "schema": {"type": "string"},
        }
    ]
    assert plan.outputs == [
        {"name": "answer", "source": "n5", "type": "str"},
        {"name": "summary", "source": "n4", "type": "str"},
    ]


def test_plan_json_round_trip():
    """to_json/from_json and to_dict/from_dict give back an equal plan (same hash)."""
    plan = mai.plan(build_rag())
    text = plan.to_json()
    assert json.loads(text) == plan.to_dict()
    again = mai.WorkflowPlan.from_json(text)
    assert again == plan
    assert again.hash == plan.hash
    assert mai.WorkflowPlan.from_dict(plan.to_dict()) == plan
    assert mai.WorkflowPlan.from_json(plan.to_json(indent=2)).hash == plan.hash
    assert text == json.dumps(plan.to_dict(), sort_keys=True, separators=(",", ":"))
    assert repr(plan) == f"<mai.WorkflowPlan graph 'rag' (5 nodes) {plan.hash[:12]}>"


def test_plan_is_immutable():
    """Changing what a plan hands out does not change the plan."""
    plan = mai.plan(build_rag())
    before = plan.hash
    plan.nodes[0]["name"] = "changed"
    plan.to_dict()["edges"].clear()
    assert plan.hash == before
    assert plan.nodes[0]["name"] == "retrieve"


def test_hash_is_the_same_in_another_process():
    """The same graph built in two processes (different hash seeds) has the same hash."""
    mine = mai.plan(build_rag()).hash
    code = f"import {__name__} as t, mai; print(mai.plan(t.build_rag()).hash)"
    assert _python(code, seed="1") == mine
    assert _python(code, seed="2") == mine


def test_one_changed_edge_changes_the_hash():
    """Rewiring one edge gives another hash; so does any configuration change."""
    base = mai.plan(build_rag())
    rewired = mai.plan(build_rag(rewired=True))
    assert rewired.hash != base.hash
    assert mai.plan(build_rag(timeout=5)).hash != base.hash
    assert mai.plan(build_rag()).hash == base.hash


def test_plan_of_a_with_copy_follows_its_configuration():
    """A graph's plan is cached, and a with_() copy gets its own plan."""
    g = build_rag()
    assert mai.plan(g) is mai.plan(g)
    bounded = g.with_(timeout=9)
    assert mai.plan(bounded).to_dict()["config"]["timeout"] == 9.0
    assert mai.plan(bounded).hash != mai.plan(g).hash


# -- executing a loaded plan -------------------------------------------------------------------


async def test_a_loaded_plan_rebuilds_the_same_graph():
    """plan.build() resolves the module paths; the rebuilt graph has the same plan and runs."""
    plan = mai.plan(build_rag())
    rebuilt = mai.WorkflowPlan.from_json(plan.to_json()).build()
    assert isinstance(rebuilt, mai.Graph)
    assert mai.plan(rebuilt) == plan
    assert await rebuilt("q") == await build_rag()("q")


def test_a_plan_executes_in_a_fresh_process():
    """A plan's JSON, loaded in a new process, rebuilds and runs the graph there."""
    plan = mai.plan(build_rag())
    code = (
        "import sys, mai\n"
        "plan = mai.WorkflowPlan.from_json(sys.stdin.read())\n"
        "print(mai.run(plan.build(), 'q'))\n"
    )
    out = _python(code, stdin=plan.to_json())
    assert out == str({"answer": "q: q#2, q#1, q#0", "summary": "3 docs"})


def test_unresolvable_path_is_a_clear_error():
    """A module path that no longer resolves names the node and the path."""
    data = mai.plan(build_rag()).to_dict()
    data["nodes"][1]["module"] = f"{__name__}:renamed_rerank"
    plan = mai.WorkflowPlan.from_dict(data)
    with pytest.raises(mai.PlanResolutionError) as info:
        plan.build()
    assert str(info.value) == (
        f"node n2 ('rerank'): cannot resolve '{__name__}:renamed_rerank': 'renamed_rerank' is "
        f"not defined in '{__name__}' any more"
    )
    assert (info.value.node, info.value.path) == ("n2", f"{__name__}:renamed_rerank")
    assert isinstance(info.value, LookupError)
    data["nodes"][1]["module"] = "no_such_package.agents:rerank"
    with pytest.raises(mai.PlanResolutionError, match=r"module 'no_such_package\.agents' cannot"):
        mai.WorkflowPlan.from_dict(data).build()


def test_locally_defined_modules_cannot_be_rebuilt():
    """A module defined inside a function has a path no process can import; the error says so."""

    @mai.module
    async def local(text: str) -> str:
        return text

    with mai.Graph(name="g") as g:
        g.output(local(g.input("t", str)))
    with pytest.raises(mai.PlanResolutionError, match="defined inside a function"):
        mai.plan(g).build()


def test_a_constant_with_no_json_form_is_marked_and_not_rebuildable():
    """Such a constant keeps the plan hashable, and rebuilding says what is missing."""

    @mai.module
    async def use(text: str, thing: object) -> str:
        return text

    class Thing:
        pass

    with mai.Graph(name="g") as g:
        g.output(use(g.input("t", str), Thing()))
    node = mai.plan(g).nodes[0]
    assert node["consts"] == [
        {"parameter": "thing", "value": {"$opaque": f"{__name__}:{Thing.__qualname__}"}}
    ]


def test_malformed_plans_are_refused():
    """Not JSON, an unknown version, a missing key or a dangling edge: PlanFormatError."""
    with pytest.raises(mai.PlanFormatError, match="must be JSON"):
        mai.WorkflowPlan.from_json("{nope")
    data = mai.plan(build_rag()).to_dict()
    with pytest.raises(mai.PlanFormatError, match="format version 2 is not supported"):
        mai.WorkflowPlan.from_dict({**data, "format_version": 2})
    with pytest.raises(mai.PlanFormatError, match="'edges' is missing"):
        mai.WorkflowPlan.from_dict({k: v for k, v in data.items() if k != "edges"})
    bad = json.loads(json.dumps(data))
    bad["edges"][0]["target"] = "n99"
    with pytest.raises(mai.PlanFormatError, match="unknown node 'n99'"):
        mai.WorkflowPlan.from_dict(bad)


def test_a_cycle_in_a_loaded_plan_is_refused():
    """A hand-edited plan whose edges form a cycle is a GraphCycleError naming the edge."""
    data = mai.plan(build_rag()).to_dict()
    data["edges"].append({"source": "n5", "target": "n2", "parameter": "docs"})
    with pytest.raises(mai.GraphCycleError) as info:
        mai.WorkflowPlan.from_dict(data)
    assert info.value.cycle == ("n2", "n5", "n2")
    assert str(info.value.edge) == "n2 -> n5.docs"


# -- diff ----------------------------------------------------------------------------------------


def test_identical_plans_have_no_differences():
    """Diffing a plan with itself lists nothing."""
    assert mai.plan(build_rag()).diff(mai.plan(build_rag())) == []


def test_an_appended_node_is_compatible():
    """A node added after the others (and its edges) is compatible with resuming."""
    changes = mai.plan(build_rag()).diff(mai.plan(build_rag(extra=True)))
    assert [(c.kind, c.node, c.step, c.compatible) for c in changes] == [
        ("node_added", "n6", "6", True),
        ("edge_added", "n6", "6", True),
        ("output_changed", None, None, True),
    ]
    assert str(changes[0]) == "[compatible] node n6 ('loud') was added"


def test_a_changed_edge_is_incompatible():
    """Rewiring an existing node's input is incompatible."""
    changes = mai.plan(build_rag()).diff(mai.plan(build_rag(rewired=True)))
    assert [(c.kind, c.node, c.compatible) for c in changes] == [("edge_changed", "n3", False)]
    assert changes[0].description == (
        "edge into n3.docs changed: edge n1 -> n3.docs is now edge n2 -> n3.docs"
    )


def test_a_removed_node_is_incompatible():
    """A node that is gone is incompatible (and named)."""
    changes = mai.plan(build_rag(extra=True)).diff(mai.plan(build_rag()))
    first = changes[0]
    assert (first.kind, first.node, first.step, first.compatible) == (
        "node_removed",
        "n6",
        "6",
        False,
    )
    assert [c.kind for c in changes] == ["node_removed", "output_changed"]


def test_a_changed_type_is_incompatible():
    """A node whose types changed is incompatible; a config change is compatible."""
    old = mai.plan(build_rag()).to_dict()
    new = json.loads(json.dumps(old))
    new["nodes"][3]["params"] = {"n": "int"}
    new["nodes"][3]["config"]["timeout"] = 5.0
    changes = mai.WorkflowPlan.from_dict(old).diff(mai.WorkflowPlan.from_dict(new))
    assert [(c.kind, c.node, c.compatible) for c in changes] == [
        ("type_changed", "n4", False),
        ("config_changed", "n4", True),
    ]
    assert "changed its parameter types from {'n': 'float'} to {'n': 'int'}" in str(changes[0])


def test_input_changes_are_classified():
    """A new input with a default is compatible; without one, or a removed input, is not."""
    with mai.Graph(name="rag") as g:
        q = g.input("question", str)
        g.output(loud(q))
    with mai.Graph(name="rag") as g2:
        q = g2.input("question", str)
        g2.input("lang", str, default="en")
        g2.output(loud(q))
    changes = mai.plan(g).diff(mai.plan(g2))
    assert [(c.kind, c.compatible) for c in changes] == [("input_added", True)]
    changes = mai.plan(g2).diff(mai.plan(g))
    assert [(c.kind, c.compatible) for c in changes] == [("input_removed", False)]


def test_changes_inside_a_nested_composite_name_the_nested_step():
    """A change inside a composite node is reported with a nested node id and step path."""
    old = mai.Sequential(loud, mai.Parallel(loud, loud))
    new = mai.Sequential(loud, mai.Parallel(loud, answer.with_(docs=[])))
    changes = mai.plan(old).diff(mai.plan(new))
    assert changes[0].kind == "module_changed"
    assert (changes[0].node, changes[0].step) == ("n2/n2", "2.2")
    assert not changes[0].compatible


# -- composites ----------------------------------------------------------------------------------


def test_every_composition_has_a_plan():
    """mai.plan works for leaf modules and every built-in composite, mirroring step ids."""
    leaf = mai.plan(loud)
    assert (leaf.kind, leaf.nodes[0]["step"], leaf.nodes[0]["module"]) == (
        "module",
        "",
        f"{__name__}:loud",
    )
    seq = mai.plan(mai.Sequential(retrieve, count, describe))
    assert [n["step"] for n in seq.nodes] == ["1", "2", "3"]
    assert [(c["source"], c["target"], c["rule"]) for c in seq.casts] == [("n2", "n3", "lax")]
    par = mai.plan(mai.Parallel(a=loud, b=loud))
    assert [o["name"] for o in par.outputs] == ["a", "b"]
    assert [(e["source"], e["target"]) for e in par.edges] == [
        ("input:text", "n1"),
        ("input:text", "n2"),
    ]
    mapped = mai.plan(mai.Map(loud, max_concurrency=4))
    assert mapped.nodes[0]["step"] == "*"
    assert mapped.to_dict()["options"] == {"max_concurrency": 4, "collect": "list"}
    cond = mai.plan(mai.Conditional(is_short, loud, answer.with_(docs=[])))
    assert cond.to_dict()["options"] == {"pred": f"{__name__}:is_short"}
    assert [n["step"] for n in cond.nodes] == ["1", "1"]
    loop = mai.plan(mai.Loop(loud, max_iterations=3))
    assert loop.to_dict()["options"] == {"max_iterations": 3}
    assert mai.plan(mai.Race(loud, loud)).to_dict()["options"] == {"collect": "first"}


async def test_composite_plans_rebuild_and_run():
    """A composite's plan rebuilds an equivalent composite (same hash, same result)."""
    for m in (
        mai.Sequential(loud, mai.Parallel(a=loud, b=loud)),
        mai.Map(loud, max_concurrency=2).with_(timeout=5),
        mai.Conditional(is_short, loud),
        mai.Loop(loud, max_iterations=2),
        mai.Race(loud, loud),
    ):
        plan = mai.plan(m)
        rebuilt = mai.WorkflowPlan.from_json(plan.to_json()).build()
        assert mai.plan(rebuilt) == plan
        arg = ["a", "b"] if isinstance(m, mai.Map) else "ab"
        assert await rebuilt(arg) == await m(arg)


async def test_graph_nested_in_a_sequential_has_a_nested_plan():
    """A graph inside a Sequential is a node holding the graph's own plan."""
    g = build_rag()
    plan = mai.plan(mai.Sequential(loud, g))
    node = plan.nodes[1]
    assert (node["kind"], node["module"], node["step"]) == ("graph", "mai:Graph", "2")
    assert [n["id"] for n in node["plan"]["nodes"]] == ["n1", "n2", "n3", "n4", "n5"]
    rebuilt = plan.build()
    assert mai.plan(rebuilt) == plan
    assert await rebuilt("q") == await mai.Sequential(loud, g)("q")


# -- Mermaid -------------------------------------------------------------------------------------


def test_mermaid_drawing():
    """to_mermaid() draws inputs, nodes, casts and outputs as a flowchart."""
    assert mai.plan(build_rag()).to_mermaid() == (
        "flowchart LR\n"
        '  in_question(["question: str"])\n'
        '  n1["retrieve"]\n'
        '  n2["rerank"]\n'
        '  n3["count"]\n'
        '  n4["describe"]\n'
        '  n5["answer"]\n'
        "  in_question --> n1\n"
        "  n1 --> n2\n"
        "  n1 --> n3\n"
        '  n3 -->|"cast int to float"| n4\n'
        "  in_question --> n5\n"
        "  n2 --> n5\n"
        '  out_0(["answer"])\n'
        "  n5 --> out_0\n"
        '  out_1(["summary"])\n'
        "  n4 --> out_1\n"
    )


def test_mermaid_draws_composites_and_fused_chains_as_subgraphs():
    """A composite node is a subgraph; a fused chain is a subgraph marked as one hop."""

    @mai.module
    def a(x: int) -> int:
        return x

    with mai.Graph(name="g") as g:
        x = g.input("x", int)
        g.output(mai.Parallel(loud, loud)(describe(a(a(x)))))
    text = mai.plan(g).to_mermaid()
    assert 'subgraph fused_1 ["fused: one thread hop"]' in text
    assert 'subgraph n4 ["Parallel (parallel)"]' in text
    assert '    n4_n1["loud"]' in text


def test_a_plan_is_computed_once_per_module_and_configuration(monkeypatch):
    """mai.plan reuses a module's plan; a with_() variant (a new module) gets its own."""
    from mai.core.graph import _describe

    builds = []
    original = _describe.Describer.plan

    def counting(self, module):
        builds.append(module)
        return original(self, module)

    monkeypatch.setattr(_describe.Describer, "plan", counting)

    @mai.module
    async def inc(x: int) -> int:
        return x + 1

    flow = mai.Sequential(inc, inc.with_(name="again"))
    first = mai.plan(flow)
    assert mai.plan(flow) is first
    assert len(builds) == 1
    renamed = flow.with_(name="renamed")
    assert mai.plan(renamed) is not first
    assert mai.plan(renamed).hash != first.hash
    assert len(builds) == 2
