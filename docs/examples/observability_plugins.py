"""Plugins registered in code: a casting adapter, a tracer and a store factory.

Run: ``python docs/examples/observability_plugins.py``. Installed plugin distributions declare the
same objects as entry points instead (see tests/plugins/mai-testplugin).
"""

from __future__ import annotations

import trio

import mai


# [start caster]
class Document:
    """A user type pydantic cannot build from a str."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = len(text.split())


@mai.module
async def transcribe(audio: bytes) -> str:
    return audio.decode()


@mai.module
async def word_count(doc: Document) -> int:
    return doc.words


mai.register_caster(str, Document, Document)  # str -> Document, wherever one is expected
pipeline = transcribe >> word_count  # the Sequential casts between the steps by itself
# [end caster]


# [start tracer]
class CallCounter:
    """A tracer: an interceptor, wrapping every module call of every run."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def __call__(self, call, proceed) -> object:
        self.calls[call.name] = self.calls.get(call.name, 0) + 1
        return await proceed()


counter = CallCounter()
mai.register_tracer("call-counter", counter)
# [end tracer]


# [start store]
def open_dict_store(url: str) -> dict[str, str]:
    return {"url": url}


mai.register_store("dict", open_dict_store)
# [end store]


async def main() -> None:
    assert await pipeline(b"three short words") == 3
    assert counter.calls == {"Sequential": 1, "transcribe": 1, "word_count": 1}
    factory = mai.store_factory("dict://anywhere")
    assert factory is not None
    assert factory("dict://anywhere") == {"url": "dict://anywhere"}
    # [start list]
    for info in mai.plugins():
        print(info.group, info.name, info.status, info.origin, info.value)
    # [end list]
    mine = [i for i in mai.plugins() if i.origin == "code"]  # installed distributions aside
    listed = [f"{i.group} {i.name} {i.status} {i.origin} {i.value}" for i in mine]
    assert "\n".join(listed) + "\n" == LISTED
    mai.unregister_tracer("call-counter")
    mai.unregister_caster(str, Document)
    mai.unregister_store("dict")


LISTED = """\
mai.tracers call-counter ok code __main__:CallCounter
mai.casters str->Document ok code __main__:Document
mai.stores dict ok code __main__:open_dict_store
"""


if __name__ == "__main__":
    trio.run(main)
