"""Casting layers, fusion, plan diffs and running a plan loaded from JSON (docs/graphs.rst).

Run: ``python docs/examples/graph_plans.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio
from pydantic import BaseModel

import mai


class Doc(BaseModel):
    title: str
    pages: int


class Brief(BaseModel):
    title: str


@mai.module
async def load(title: str) -> Doc:
    return Doc(title=title, pages=12)


@mai.module
async def headline(brief: Brief) -> str:
    return brief.title.upper()


@mai.module
async def pages(doc: Doc) -> int:
    return doc.pages


@mai.module
async def scale(x: float) -> float:
    return x * 1.5


# [start casts]
with mai.Graph(name="casts") as casts:
    doc = load(casts.input("title", str))
    casts.output(
        headline=headline(doc),  # Doc -> Brief: a cast (rule model_dump)
        pages=pages(doc),  # Doc -> Doc: same type, no cast at all
        scaled=scale(pages(doc)),  # int -> float: a cast (rule lax)
    )
# [end casts]


# [start fusion]
@mai.module
def tokenize(text: str) -> list[str]:  # plain def: runs in a worker thread
    return text.split()


@mai.module
def lowercase(words: list[str]) -> list[str]:
    return [w.lower() for w in words]


@mai.module
def dedupe(words: list[str]) -> list[str]:
    return sorted(set(words))


with mai.Graph(name="clean") as clean:
    clean.output(dedupe(lowercase(tokenize(clean.input("text", str)))))
# [end fusion]


# [start v1]
@mai.module
async def draft(topic: str) -> str:
    return f"a draft about {topic}"


@mai.module
async def review(text: str) -> str:
    return f"{text}, reviewed"


@mai.module
async def publish(text: str) -> str:
    return f"published: {text}"


def writer(version: int) -> mai.Graph:
    with mai.Graph(name="writer") as g:
        topic = g.input("topic", str)
        text = draft(topic)
        if version == 1:
            g.output(review(text))
        elif version == 2:
            g.output(publish(review(text)))  # a node appended after the others
        else:
            g.output(review(topic))  # review's input rewired
    return g


# [end v1]


async def main() -> None:
    plan = mai.plan(casts)
    for c in plan.casts:
        print(f"cast {c['source']} -> {c['target']}.{c['parameter']}: {c['from']} to {c['to']}")
    # [start casts check]
    assert [(c["target"], c["from"], c["to"], c["rule"]) for c in plan.casts] == [
        ("n2", "Doc", "Brief", "model_dump"),
        ("n5", "int", "float", "lax"),
    ]
    assert await casts("trio") == {"headline": "TRIO", "pages": 12, "scaled": 18.0}
    # [end casts check]

    # [start fusion check]
    assert mai.plan(clean).to_dict()["fused"] == [["n1", "n2", "n3"]]
    assert await clean("B a b") == ["a", "b"]  # three sync nodes, one thread hop
    # [end fusion check]

    # [start diff]
    v1, v2, v3 = (mai.plan(writer(v)) for v in (1, 2, 3))
    for change in v1.diff(v2):
        print(change)
    assert [(c.kind, c.node, c.compatible) for c in v1.diff(v2)] == [
        ("node_added", "n3", True),
        ("edge_added", "n3", True),
        ("output_changed", None, True),
    ]
    for change in v1.diff(v3):
        print(change)
    assert [(c.kind, c.node, c.compatible) for c in v1.diff(v3)] == [
        ("edge_changed", "n2", False),
    ]
    # [end diff]


def fresh_process() -> None:
    v2 = mai.plan(writer(2))
    # [start fresh process]
    code = (
        "import sys, mai\n"
        "plan = mai.WorkflowPlan.from_json(sys.stdin.read())\n"
        "print(mai.run(plan.build(), 'graphs'))\n"
    )
    here = Path(__file__).resolve().parent
    data = v2.to_dict()
    for node in data["nodes"]:  # this script is __main__ here, graph_plans over there
        node["module"] = node["module"].replace("__main__:", "graph_plans:")
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code],
        input=mai.WorkflowPlan.from_dict(data).to_json(),
        capture_output=True,
        text=True,
        check=True,
        cwd=here,
    ).stdout
    print(out.strip())
    assert out.strip() == "published: a draft about graphs, reviewed"
    # [end fresh process]

    # [start resolution]
    data["nodes"][1]["module"] = "graph_plans:gone"
    try:
        mai.WorkflowPlan.from_dict(data).build()
    except mai.PlanResolutionError as err:
        print(err)
        assert err.node == "n2"
        assert err.path == "graph_plans:gone"
    # [end resolution]
    else:
        raise AssertionError("expected PlanResolutionError")


if __name__ == "__main__":
    trio.run(main)
    fresh_process()
    print("graph plans: every claim holds")
