"""Graph validation: each build-time error, with the node and edge it names.

Run: ``python docs/examples/graph_validation.py``.
"""

from __future__ import annotations

import mai

calls: list[str] = []


@mai.module
async def fetch(url: str) -> bytes:
    calls.append("fetch")
    return url.encode()


@mai.module
async def summarize(text: str, words: int = 50) -> str:
    calls.append("summarize")
    return text[:words]


@mai.module
async def combine(a: str, b: str) -> str:
    return a + b


@mai.module
async def count_words(text: str) -> int:
    return len(text.split())


def expect(error: type[mai.GraphError], build) -> mai.GraphError:
    try:
        build()
    except error as err:
        print(f"{type(err).__name__}: {err}")
        return err
    raise AssertionError(f"expected {error.__name__}")


# [start unknown]
def unknown_parameter() -> None:
    with mai.Graph(name="news") as g:
        text = g.input("text", str)
        summarize(text, length=20)  # summarize has no parameter 'length'


def missing_input() -> None:
    with mai.Graph(name="news") as g:
        combine(g.input("text", str))  # 'b' is not connected


# [end unknown]


# [start types]
def unreachable_type() -> None:
    with mai.Graph(name="news") as g:
        page = fetch(g.input("url", str))
        words = count_words(summarize(page))  # bytes -> str: pydantic converts it (a cast)
        g.output(summarize(words))  # int -> str: pydantic does not


# [end types]


# [start cycle]
def cycle() -> None:
    with mai.Graph(name="news") as g:
        later = g.deferred("later")  # stands for a value declared below
        first = combine(g.input("text", str), later)
        second = summarize(first)
        later.set(second)  # second depends on first, which depends on second
        g.output(second)


# [end cycle]


# [start outputs]
def duplicate_output() -> None:
    with mai.Graph(name="news") as g:
        text = g.input("text", str)
        g.output(summary=summarize(text))
        g.output(summary=text)


# [end outputs]


def main() -> None:
    err = expect(mai.GraphInputError, unknown_parameter)
    assert str(err) == (
        "graph 'news': node n1 ('summarize') has no parameter 'length'; its parameters: text, words"
    )
    assert (err.node, err.parameter) == ("n1", "length")

    err = expect(mai.GraphInputError, missing_input)
    assert str(err) == "graph 'news': node n1 ('combine') is missing required input 'b'"

    err = expect(mai.GraphTypeError, unreachable_type)
    assert isinstance(err, mai.GraphTypeError)
    assert (err.producer, err.consumer, err.parameter) == ("n3", "n4", "text")
    assert (err.source_type, err.target_type) == ("int", "str")
    assert str(err.edge) == "n3 -> n4.text"

    err = expect(mai.GraphCycleError, cycle)
    assert isinstance(err, mai.GraphCycleError)
    assert err.cycle == ("n1", "n2", "n1")
    assert str(err.edge) == "n1 -> n2.text"

    err = expect(mai.GraphOutputError, duplicate_output)
    assert "output 'summary' is declared twice" in str(err)

    assert calls == []  # nothing ran: validation comes first
    print("graph validation: every claim holds")


if __name__ == "__main__":
    main()
