"""A small pymai plugin: a counting tracer, a str -> Document adapter and a dict store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Every call the tracer saw, as (module name, step id).
SEEN: list[tuple[str, str]] = []

#: Not an interceptor: the broken entry point in mai.tracers points here.
NOT_A_TRACER = 42


class CountingTracer:
    """A tracer plugin: the entry point names the class, a factory of interceptors."""

    async def __call__(self, call: Any, proceed: Any) -> Any:
        SEEN.append((call.name, call.step_id))
        return await proceed()


@dataclass
class Document:
    """A user type pydantic cannot build from a str."""

    text: str
    words: int

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = len(text.split())


def _to_document(text: str) -> Document:
    return Document(text)


#: A casting adapter as a (source, target, fn) tuple.
STR_TO_DOCUMENT = (str, Document, _to_document)


@dataclass
class DictStore:
    """A stand-in store: remembers the URL it was opened with."""

    url: str
    data: dict[str, Any] = field(default_factory=dict)


def open_store(url: str) -> DictStore:
    """The store factory for the testmem:// scheme."""
    return DictStore(url)
