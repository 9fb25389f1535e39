"""Context: the claims of the Concepts page about Context, metadata and step ids, checked.

Run: ``python docs/examples/concepts_context.py``.
"""

from __future__ import annotations

from typing import Any

import trio

import mai
from mai import Context


@mai.module
async def whoami(label: str) -> dict[str, Any]:
    ctx = Context.get()
    return {
        "label": label,
        "step_id": ctx.step_id,
        "parent_step_id": ctx.parent_step_id,
        "module_name": ctx.module_name,
        "metadata": dict(ctx.metadata),
    }


@mai.module
async def agent(task: str) -> list[dict[str, Any]]:
    first = await whoami(task)
    token = Context.set(metadata={"user": "ada"})
    try:
        second = await whoami("second")  # sees the metadata set just above
    finally:
        Context.reset(token)
    third = await whoami("third")  # the metadata is gone again
    return [first, second, third]


async def set_get_reset() -> None:
    outside = Context.get()
    assert outside.step_id == ""
    assert outside.module_name is None

    token = Context.set(metadata={"tenant": "acme"})
    try:
        first, second, third = await agent("plan a trip")
    finally:
        Context.reset(token)
    assert Context.get().metadata == {}

    # Step ids: the top-level call is "1", the calls it makes are "1.1", "1.2", "1.3".
    assert [r["step_id"] for r in (first, second, third)] == ["1.1", "1.2", "1.3"]
    assert {r["parent_step_id"] for r in (first, second, third)} == {"1"}
    assert first["module_name"] == "whoami"
    # Metadata is merged over what the caller had.
    assert first["metadata"] == {"tenant": "acme"}
    assert second["metadata"] == {"tenant": "acme", "user": "ada"}
    assert third["metadata"] == {"tenant": "acme"}

    top = await whoami("top")
    assert top["step_id"] == "1"
    assert top["parent_step_id"] is None


# [start isolation]
@mai.module
async def branch(label: str) -> dict[str, Any]:
    # No reset needed: a change made in a module body ends with the call.
    Context.set(metadata={"branch": label})
    await trio.sleep(0.01)  # let the other branch run in between
    return await whoami(label)


async def isolation() -> None:
    both = mai.Parallel(left=branch, right=branch)
    result = await both("x")
    assert result["left"]["metadata"] == {"branch": "x"}
    assert result["left"]["step_id"] == "1.1.1"
    assert result["right"]["step_id"] == "1.2.1"
    assert result["right"]["parent_step_id"] == "1.2"
    assert Context.get().metadata == {}  # nothing leaked to the caller


# [end isolation]


async def main() -> None:
    await set_get_reset()
    await isolation()
    print("context: every claim holds")


if __name__ == "__main__":
    trio.run(main)
