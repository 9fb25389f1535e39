"""pymai quickstart: a small agent-style pipeline built from plain functions.

Run it with ``make demo`` or ``python examples/quickstart.py``. It shows typed modules (casting
on the way in and out), a Sequential pipeline, a Map fan-out with a concurrency limit, a
Parallel of two analyses, a Conditional route, a flaky step retried with backoff, and a
deadline that cuts off a slow branch.
"""

from __future__ import annotations

import re
from collections import Counter

import trio
from pydantic import BaseModel

import mai

CORPUS = [
    "Trio makes structured concurrency the default: every task has a parent nursery.",
    "A deadline is a cancel scope; when it expires, everything inside it is cancelled.",
    "Durable workflows record each step so a crash does not lose finished work.",
    "Plain functions become typed, composable modules with a single decorator.",
    "Retries with backoff turn a flaky network call into a dependable step.",
]


class Summary(BaseModel):
    """What the pipeline returns."""

    words: int
    top_terms: list[str]
    route: str


@mai.module
def tokenize(text: str) -> list[str]:
    """Split a sentence into lowercase words (a sync body: runs in a worker thread)."""
    return re.findall(r"[a-z]+", text.lower())


@mai.module(inline=True)
def count(words: list[str]) -> int:
    """Count words (cheap and pure: runs inline, no thread hop)."""
    return len(words)


_attempts = Counter[str]()


@mai.module(retries=3, backoff=0.01)
async def flaky_lookup(term: str) -> str:
    """Fail twice, then succeed: the retries absorb the flakiness."""
    _attempts[term] += 1
    if _attempts[term] < 3:
        raise ConnectionError(f"lookup of {term!r} failed (attempt {_attempts[term]})")
    return term.upper()


@mai.module(timeout=0.05)
async def slow_enrichment(words: list[str]) -> list[str]:
    """A branch that takes too long: its deadline cuts it off."""
    await trio.sleep(10)
    return words


@mai.module
async def top_terms(words: list[list[str]]) -> list[str]:
    """The three most frequent long words across all sentences."""
    counts = Counter(w for ws in words for w in ws if len(w) > 5)
    return [w for w, _ in counts.most_common(3)]


async def main() -> None:
    """Run each piece, then the whole pipeline."""
    # A sync module runs in a worker thread; the result is cast to list[str].
    words = await tokenize(CORPUS[0])
    print("tokenize ->", words[:5], "...")
    print("count    ->", await count(words))

    # Map with a concurrency limit: at most 2 sentences are tokenized at once.
    per_sentence = await mai.Map(tokenize, max_concurrency=2)(CORPUS)
    print("map      ->", [len(ws) for ws in per_sentence], "words per sentence")

    # Parallel: two analyses of the same input at once; a dict out.
    stats = await mai.Parallel(terms=top_terms, sentences=mai.module(len))(per_sentence)
    print("parallel ->", stats)

    # A flaky step, retried with exponential backoff.
    print("retry    ->", await flaky_lookup("trio"), f"after {_attempts['trio']} attempts")

    # A deadline that cuts off a slow branch; the error names the module.
    try:
        await slow_enrichment(words)
    except mai.DeadlineExceeded as err:
        print("deadline ->", err)

    # A conditional route inside a pipeline built with >>.
    def is_long(text: str) -> bool:
        return len(text) > 75

    def long_route(text: str) -> str:
        return f"long ({len(text)} chars)"

    def short_route(text: str) -> str:
        return f"short ({len(text)} chars)"

    route = mai.Conditional(is_long, mai.module(long_route), mai.module(short_route))
    pipeline = tokenize >> count
    n = await pipeline(CORPUS[1])
    summary = Summary(words=n, top_terms=stats["terms"], route=await route(CORPUS[1]))
    print("summary  ->", summary.model_dump())


if __name__ == "__main__":
    trio.run(main)
