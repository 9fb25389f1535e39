"""Modules and casting: the claims of the Concepts page, checked.

Run: ``python docs/examples/concepts_modules.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import trio
from pydantic import BaseModel

import mai


class Doc(BaseModel):
    title: str
    pages: int


class Shout(mai.Module):
    # The other way in: subclass Module and write ``forward``.
    def __init__(self, suffix: str = "!", **config: object) -> None:
        super().__init__(**config)
        self.suffix = suffix

    async def forward(self, text: str) -> str:
        return text.upper() + self.suffix


async def subclassing() -> None:
    shout = Shout(suffix="!!", timeout=1)  # framework keys go to Module.__init__
    assert shout.name == "Shout"
    assert shout.config.timeout == 1.0
    assert await shout("hi") == "HI!!"


# [start threads]
@mai.module
def thread_name() -> str:
    # A plain ``def`` body runs in a worker thread.
    return threading.current_thread().name


@mai.module(inline=True)
def inline_thread_name() -> str:
    # ``inline=True``: a cheap pure function runs in the caller's task, no thread hop.
    return threading.current_thread().name


async def sync_bodies() -> None:
    here = threading.current_thread().name
    assert await thread_name() != here
    assert await inline_thread_name() == here


# [end threads]


# [start casting]
@mai.module
async def total_pages(docs: list[Doc], bonus: int = 0) -> int:
    return sum(d.pages for d in docs) + bonus


@mai.module
async def echo(doc: Doc, note: Any, raw) -> tuple[Doc, Any, Any]:
    return doc, note, raw


async def casting() -> None:
    # Arguments are cast to the annotations: dicts become Docs, "2" becomes 2.
    assert await total_pages([{"title": "a", "pages": "2"}], bonus="1") == 3

    # A value whose type is exactly the annotation passes untouched (no pydantic call);
    # ``Any`` and unannotated parameters are never validated.
    doc = Doc(title="a", pages=2)
    sentinel = object()
    got_doc, got_note, got_raw = await echo(doc, sentinel, "anything")
    assert got_doc is doc
    assert got_note is sentinel
    assert got_raw == "anything"


# [end casting]


async def cast_error() -> None:
    try:
        await total_pages([], bonus="lots")
    except mai.CastError as err:
        print(err)
        assert str(err) == (
            "module 'total_pages': parameter 'bonus' expects int, received 'lots' (str): "
            "Input should be a valid integer, unable to parse string as an integer"
        )
        assert (err.module_name, err.parameter, err.value) == ("total_pages", "bonus", "lots")
        assert isinstance(err, TypeError)
        assert isinstance(err, ValueError)
    else:
        raise AssertionError("expected a CastError")

    # Inside a structure, pydantic's location of the bad field is kept.
    try:
        await total_pages([{"title": "a", "pages": "many"}])
    except mai.CastError as err:
        print(err)
        assert "received [{'title': 'a', 'pages': 'many'}] (list): 0.pages: " in str(err)
    else:
        raise AssertionError("expected a CastError")


def payload() -> None:
    schema = total_pages.payload.input_schema()
    assert schema["title"] == "TotalPagesInput"
    assert list(schema["properties"]) == ["docs", "bonus"]
    assert schema["required"] == ["docs"]
    assert total_pages.payload.output_schema() == {"type": "integer"}


def configuration() -> None:
    # with_() binds parameters and sets framework keys; it returns a new module.
    plus_ten = total_pages.with_(bonus=10, timeout=5, name="total_plus_ten")
    assert plus_ten.bound == {"bonus": 10}
    assert plus_ten.config.timeout == 5.0
    assert plus_ten.name == "total_plus_ten"
    assert total_pages.bound == {}  # the original is never changed
    assert total_pages.config.timeout is None

    # with_config() only ever sets framework keys.
    patient = total_pages.with_config(retries=2)
    assert patient.config.retries == 2

    # An unknown key is an error at with_() time that lists the valid keys.
    try:
        total_pages.with_(timout=5)
    except mai.ConfigError as err:
        print(err)
        assert str(err) == (
            "module 'total_pages': with_() got unknown key 'timout'; valid keys: name, "
            "timeout, retries, backoff, retry_on, max_concurrency, inline, docs, bonus"
        )
        assert err.key == "timout"
        assert isinstance(err, TypeError)
    else:
        raise AssertionError("expected a ConfigError")


@mai.module(inline=True)
def search(query: str, timeout: float = 1.0) -> str:
    return f"{query} within {timeout:g}s"


async def parameters_win() -> None:
    # ``timeout`` is a parameter of search, so with_(timeout=) binds the parameter ...
    bound = search.with_(timeout=5)
    assert bound.bound == {"timeout": 5.0}
    assert bound.config.timeout is None
    assert await bound("mai") == "mai within 5s"

    # ... and with_config(timeout=) sets the framework's timeout instead.
    limited = search.with_config(timeout=5)
    assert limited.bound == {}
    assert limited.config.timeout == 5.0
    assert await limited("mai") == "mai within 1s"


async def main() -> None:
    await subclassing()
    await sync_bodies()
    await casting()
    await cast_error()
    payload()
    configuration()
    await parameters_win()
    print("modules and casting: every claim holds")


if __name__ == "__main__":
    trio.run(main)
