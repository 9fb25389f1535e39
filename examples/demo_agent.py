"""The demo's workflow: a research agent that reads this repository and writes a report.

Real work on real data that ships with the repository: every document and source file is read,
routed (code or prose), analysed, summarised and cross-referenced against a glossary. It shows a
fan-out with a concurrency limit, a deadline that cuts off a slow branch, a retried flaky step
and a conditional route. ``examples/demo.py`` runs it durably and crashes it on purpose.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from pathlib import Path

import trio
from pydantic import BaseModel

import mai

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")
STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "with",
        "that",
        "this",
        "from",
        "not",
        "but",
        "you",
        "can",
        "its",
        "has",
        "have",
        "was",
        "were",
        "will",
        "when",
        "which",
        "into",
        "each",
        "one",
        "all",
        "any",
        "than",
        "then",
        "them",
        "they",
        "their",
        "there",
        "what",
        "who",
        "how",
        "use",
        "used",
        "uses",
        "none",
        "self",
        "return",
        "true",
        "false",
        "import",
        "def",
        "class",
        "str",
        "int",
        "none",
        "also",
        "only",
        "more",
        "must",
        "may",
        "see",
    ]
)
GLOSSARY = {
    "nursery": "a Trio scope that owns child tasks",
    "deadline": "an absolute time after which work is cancelled",
    "durable": "recorded so that it survives a crash",
    "step": "one module call inside a durable run",
    "replay": "returning a recorded result instead of running again",
    "lease": "time-limited ownership of a run by one process",
}
_lookups: Counter[str] = Counter()


class Document(BaseModel):
    """A file of the repository, read."""

    path: str
    kind: str
    text: str


class Analysis(BaseModel):
    """What the agent learned about one file."""

    path: str
    kind: str
    words: int
    units: int
    terms: list[str]
    summary: str
    summary_kind: str
    glossary: dict[str, str]


class Report(BaseModel):
    """The agent's final report."""

    files: int
    code_files: int
    prose_files: int
    words: int
    top_terms: list[str]
    deep_summaries: int
    cut_off: int
    largest: list[str]


def corpus() -> list[str]:
    """The files the agent reads: the docs, the package and the examples."""
    paths = sorted(
        [*ROOT.glob("docs/*.rst"), *ROOT.glob("mai/**/*.py"), *ROOT.glob("examples/*.py")]
    )
    return [str(p.relative_to(ROOT)) for p in paths if p.stat().st_size > 200]


@mai.module
def read(path: str) -> Document:
    """Read one file (a sync body: it runs in a worker thread)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return Document(path=path, kind="code" if path.endswith(".py") else "prose", text=text)


@mai.module(inline=True)
def is_code(doc: Document) -> bool:
    """The route: Python source or prose."""
    return doc.kind == "code"


def _terms(text: str, n: int = 5) -> list[str]:
    words = [w.lower() for w in WORD.findall(text)]
    counts = Counter(w for w in words if w not in STOP)
    return [w for w, _ in counts.most_common(n)]


@mai.module
async def analyse_code(doc: Document) -> Analysis:
    """Count functions and classes with the ast module; find the vocabulary of identifiers."""
    await trio.sleep(0.02)  # an LLM would take this long to read the file
    tree = ast.parse(doc.text)
    units = sum(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in ast.walk(tree)
    )
    docstring = ast.get_docstring(tree) or ""
    return Analysis(
        path=doc.path,
        kind="code",
        words=len(WORD.findall(doc.text)),
        units=units,
        terms=_terms(doc.text),
        summary=docstring.split("\n\n")[0].replace("\n", " ")[:160],
        summary_kind="docstring",
        glossary={},
    )


@mai.module
async def analyse_prose(doc: Document) -> Analysis:
    """Count sections and words of a reStructuredText page."""
    await trio.sleep(0.02)
    sections = len(re.findall(r"^[=\-~]{3,}\s*$", doc.text, flags=re.MULTILINE))
    return Analysis(
        path=doc.path,
        kind="prose",
        words=len(WORD.findall(doc.text)),
        units=sections,
        terms=_terms(doc.text),
        summary="",
        summary_kind="",
        glossary={},
    )


@mai.module(timeout=0.15)
async def deep_summary(doc: Document) -> str:
    """A slow "model" whose latency grows with the text: long files hit the deadline."""
    await trio.sleep(len(doc.text) / 100_000)
    sentences = re.split(r"(?<=[.!?])\s+", doc.text.strip())
    scores = Counter(w.lower() for w in WORD.findall(doc.text))
    best = max(sentences, key=lambda s: sum(math.log1p(scores[w.lower()]) for w in WORD.findall(s)))
    return " ".join(best.split())[:160]


@mai.module
async def summarise(doc: Document) -> tuple[str, str]:
    """Try the deep summary; when its deadline cuts it off, fall back to the first sentence."""
    try:
        return await deep_summary(doc), "deep"
    except mai.DeadlineExceeded:
        first = re.split(r"(?<=[.!?])\s+", " ".join(doc.text.split()))[0]
        return first[:160], "cut off by deadline: first sentence"


@mai.module(retries=4, backoff=0.01)
async def lookup(term: str) -> str:
    """A flaky glossary service: every request fails twice before it answers."""
    _lookups[term] += 1
    if mai.Context.get().retry_count < 2:
        raise ConnectionError(f"glossary service unavailable for {term!r}")
    return GLOSSARY[term]


@mai.module
async def study(path: str) -> Analysis:
    """Everything the agent does with one file."""
    doc = await read(path)
    route = mai.Conditional(is_code, analyse_code, analyse_prose)
    analysis: Analysis = await route(doc)
    summary, kind = await summarise(doc)
    found = [t for t in GLOSSARY if t in doc.text.lower()][:2]
    glossary = {t: await lookup(t) for t in found}
    text = analysis.summary or summary
    return analysis.model_copy(update={"summary": text, "summary_kind": kind, "glossary": glossary})


@mai.module
async def report(analyses: list[Analysis]) -> Report:
    """Combine the per-file analyses."""
    terms = Counter(t for a in analyses for t in a.terms)
    return Report(
        files=len(analyses),
        code_files=sum(a.kind == "code" for a in analyses),
        prose_files=sum(a.kind == "prose" for a in analyses),
        words=sum(a.words for a in analyses),
        top_terms=[t for t, _ in terms.most_common(8)],
        deep_summaries=sum(a.summary_kind == "deep" for a in analyses),
        cut_off=sum(a.summary_kind.startswith("cut off") for a in analyses),
        largest=[a.path for a in sorted(analyses, key=lambda a: -a.words)[:3]],
    )


agent = mai.Sequential(mai.Map(study, max_concurrency=4), report, name="research_agent")


if __name__ == "__main__":
    # Run the agent once, in memory and without durability (examples/demo.py runs it durably).
    print(mai.run(agent, corpus()).model_dump_json(indent=2))
