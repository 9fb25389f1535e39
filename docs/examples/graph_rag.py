"""Graphs: build, run, nest and draw a small retrieval pipeline (the claims of docs/graphs.rst).

Run: ``python docs/examples/graph_rag.py``.
"""

from __future__ import annotations

import json

import trio
import trio.testing
from pydantic import BaseModel

import mai


# [start modules]
class Doc(BaseModel):
    title: str
    text: str


@mai.module
async def retrieve(question: str, k: int = 2) -> list[Doc]:
    await trio.sleep(1)  # pretend to query an index
    return [Doc(title=f"doc{i}", text=f"about {question}") for i in range(k)]


@mai.module
async def search_web(question: str) -> list[Doc]:
    await trio.sleep(2)  # pretend to call a search API
    return [Doc(title="web", text=f"{question} on the web")]


@mai.module
async def answer(question: str, docs: list[Doc], web: list[Doc]) -> str:
    titles = ", ".join(d.title for d in [*docs, *web])
    return f"{question} -> {titles}"


@mai.module
def word_count(docs: list[Doc]) -> int:
    return sum(len(d.text.split()) for d in docs)


# [end modules]


# [start build]
with mai.Graph(name="rag") as rag:
    question = rag.input("question", str)
    docs = retrieve.with_(k=3)(question)  # with_() binds k for this node
    web = search_web(question)  # independent of retrieve: runs concurrently
    rag.output(answer=answer(question, docs, web), words=word_count(docs))
# [end build]


async def run_it() -> None:
    # [start run]
    start = trio.current_time()
    result = await rag("What is Trio?")
    elapsed = trio.current_time() - start
    # [end run]
    print(result, f"in {elapsed:g}s")
    assert result == {
        "answer": "What is Trio? -> doc0, doc1, doc2, web",
        "words": 12,
    }
    assert elapsed == 2.0  # max(1, 2): the branches overlapped

    # [start nest]
    pipeline = mai.Sequential(rag, mai.module(lambda out: out["answer"].upper(), inline=True))
    assert await pipeline("trio") == "TRIO -> DOC0, DOC1, DOC2, WEB"
    bounded = rag.with_(timeout=1.5)  # a new graph: every node is bounded by 1.5 s
    try:
        await bounded("trio")
    except mai.DeadlineExceeded as err:
        print(err)
        assert err.module_name == "rag"
    # [end nest]
    else:
        raise AssertionError("expected DeadlineExceeded")


# [start mermaid]
EXPECTED_MERMAID = """\
flowchart LR
  in_question(["question: str"])
  n1["retrieve"]
  n2["search_web"]
  n3["answer"]
  n4["word_count"]
  in_question --> n1
  in_question --> n2
  in_question --> n3
  n1 --> n3
  n2 --> n3
  n1 --> n4
  out_0(["answer"])
  n3 --> out_0
  out_1(["words"])
  n4 --> out_1
"""
# [end mermaid]


def plan_it() -> None:
    # [start plan]
    plan = mai.plan(rag)
    data = plan.to_dict()
    print(json.dumps(data["nodes"][0], indent=2)[:400], "...")
    print("hash:", plan.hash)
    assert [n["id"] for n in data["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert data["nodes"][0]["module"] == "__main__:retrieve"
    assert data["nodes"][0]["bound"] == {"k": 3}
    assert data["edges"][0] == {"source": "input:question", "target": "n1", "parameter": "question"}
    assert data["casts"] == []  # every edge's types match: no casting layer
    assert mai.WorkflowPlan.from_json(plan.to_json()) == plan
    # [end plan]
    text = plan.to_mermaid()
    print(text)
    assert text == EXPECTED_MERMAID


def main() -> None:
    trio.run(run_it, clock=trio.testing.MockClock(autojump_threshold=0))
    plan_it()
    print("graphs: every claim holds")


if __name__ == "__main__":
    main()
