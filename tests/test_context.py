"""Context: set/get/reset, isolation between branches, metadata flow and step ids."""

import math
import random

import pytest
import trio

import mai


async def test_set_returns_a_token_and_get_sees_the_change():
    """Context.set returns a token and Context.get reflects what was set."""
    token = mai.Context.set(metadata={"user": "ada"})
    try:
        assert token is not None
        assert mai.Context.get().metadata == {"user": "ada"}
    finally:
        mai.Context.reset(token)


async def test_reset_restores_exactly():
    """Context.reset(token) restores exactly the context current before the matching set."""
    before = mai.Context.get()
    t1 = mai.Context.set(metadata={"a": 1})
    mid = mai.Context.get()
    t2 = mai.Context.set(metadata={"b": 2}, deadline=trio.current_time() + 100)
    assert mai.Context.get().metadata == {"a": 1, "b": 2}
    assert mai.Context.get().deadline < math.inf
    mai.Context.reset(t2)
    assert mai.Context.get() == mid
    assert mai.Context.get().metadata == {"a": 1}
    assert mai.Context.get().deadline == before.deadline
    mai.Context.reset(t1)
    assert mai.Context.get() == before


async def test_reset_restores_exactly_inside_a_module():
    """Inside a module body, set/reset restores the call's own context (step id included)."""
    seen = {}

    @mai.module
    async def body() -> None:
        before = mai.Context.get()
        token = mai.Context.set(metadata={"k": "v"})
        seen["during"] = mai.Context.get()
        mai.Context.reset(token)
        seen["before"], seen["after"] = before, mai.Context.get()

    await body()
    assert seen["after"] == seen["before"]
    assert seen["during"].metadata == {"k": "v"}
    assert seen["during"].step_id == seen["before"].step_id


def test_context_is_immutable():
    """A Context snapshot cannot be changed in place."""
    ctx = mai.Context.get()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        ctx.retry_count = 3
    with pytest.raises(TypeError):
        ctx.metadata["x"] = 1


def test_set_unknown_key_is_a_config_error():
    """Context.set with a key it cannot set raises ConfigError listing the valid keys."""
    with pytest.raises(mai.ConfigError) as info:
        mai.Context.set(retry_count=3)
    assert "metadata" in str(info.value)


async def test_parallel_branch_context_changes_do_not_leak(autojump_clock):
    """A Parallel branch that sets its Context changes nothing for its siblings or its parent."""
    seen = {}

    @mai.module
    async def setter() -> str:
        mai.Context.set(metadata={"who": "setter"})  # never reset: must still not leak
        await trio.sleep(2)
        return mai.Context.get().metadata["who"]

    @mai.module
    async def sibling() -> object:
        await trio.sleep(1)  # the setter has set its context by now
        return mai.Context.get().metadata.get("who")

    @mai.module
    async def parent() -> None:
        mai.Context.set(metadata={"who": "parent"})
        seen["branches"] = await mai.Parallel(setter, sibling)()
        seen["parent_after"] = mai.Context.get().metadata["who"]

    await parent()
    assert seen["branches"] == ("setter", "parent")
    assert seen["parent_after"] == "parent"
    assert "who" not in mai.Context.get().metadata


async def test_sync_branch_context_changes_do_not_leak():
    """A sync branch that sets Context in its worker thread leaks nothing to siblings or caller."""

    @mai.module
    def setter() -> str:
        mai.Context.set(metadata={"who": "setter"})
        return mai.Context.get().metadata["who"]

    @mai.module
    async def sibling() -> object:
        await trio.sleep(0.05)
        return mai.Context.get().metadata.get("who")

    assert await mai.Parallel(setter, sibling)() == ("setter", None)
    assert "who" not in mai.Context.get().metadata


async def test_metadata_flows_down_into_nested_modules():
    """Metadata set by a caller, and added by a module, is seen by every module nested below."""

    @mai.module
    def leaf() -> dict:
        return dict(mai.Context.get().metadata)

    @mai.module
    async def middle() -> dict:
        mai.Context.set(metadata={"layer": "middle"})
        (seen,) = await mai.Parallel(mai.Sequential(leaf))()
        return seen

    @mai.module
    async def top() -> dict:
        return await middle()

    token = mai.Context.set(metadata={"user": "ada", "layer": "caller"})
    try:
        assert await top() == {"user": "ada", "layer": "middle"}
    finally:
        mai.Context.reset(token)


async def test_every_call_has_its_own_step_id_and_sees_its_parents():
    """Each module call gets a distinct step_id and can read its parent's id as parent_step_id."""
    calls = []

    @mai.module
    def leaf() -> None:
        ctx = mai.Context.get()
        calls.append(("leaf", ctx.step_id, ctx.parent_step_id))

    @mai.module
    async def inner() -> None:
        ctx = mai.Context.get()
        calls.append(("inner", ctx.step_id, ctx.parent_step_id))
        await leaf()
        await leaf()

    @mai.module
    async def outer() -> None:
        ctx = mai.Context.get()
        calls.append(("outer", ctx.step_id, ctx.parent_step_id))
        await inner()
        await inner()
        await leaf()

    await outer()
    names = [name for name, _, _ in calls]
    assert names == ["outer", "inner", "leaf", "leaf", "inner", "leaf", "leaf", "leaf"]
    ids = [sid for _, sid, _ in calls]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    parents = [parent for _, _, parent in calls]
    outer_id, inner1, inner2 = ids[0], ids[1], ids[4]
    assert parents == [None, outer_id, inner1, inner1, outer_id, inner2, inner2, outer_id]


async def test_step_ids_restart_for_each_top_level_call():
    """Two separate top-level calls of the same module see the same step id."""
    ids = []

    @mai.module
    async def body() -> None:
        ids.append(mai.Context.get().step_id)

    await body()
    await body()
    assert ids[0] == ids[1]
    assert ids[0]


async def test_parallel_step_ids_are_deterministic(autojump_clock):
    """Step ids inside a Parallel do not depend on scheduling: 20 runs, identical ids."""
    rng = random.Random(1234)  # noqa: S311 - scheduling noise, not crypto

    def branch(label: str) -> mai.Module:
        @mai.module(name=label)
        async def run(x: int) -> list:
            await trio.sleep(rng.random())
            ctx = mai.Context.get()
            nested = await leaf(x)
            return [(label, ctx.step_id, ctx.parent_step_id), nested]

        return run

    @mai.module
    async def leaf(x: int) -> tuple:
        await trio.sleep(rng.random())
        ctx = mai.Context.get()
        return ("leaf", ctx.step_id, ctx.parent_step_id)

    par = mai.Parallel(branch("a"), branch("b"), mai.Sequential(branch("c"), lambda r: r))
    runs = [await par(1) for _ in range(20)]
    assert all(r == runs[0] for r in runs)
    flat = [entry for result in runs[0] for entry in (result[0], result[1])]
    step_ids = [sid for _, sid, _ in flat]
    assert len(set(step_ids)) == len(step_ids)


# ---------------------------------------------------------------------------------------------
# issue 10: the context dumps like any pydantic model
# ---------------------------------------------------------------------------------------------


async def test_context_dumps_inside_a_module_a_thread_and_a_branch():
    """Context.get().model_dump() and model_dump_json() work in a module, a thread and a branch."""
    dumps = []

    @mai.module
    async def in_task(x: int) -> int:
        ctx = mai.Context.get()
        dumps.append((ctx.model_dump(), ctx.model_dump_json()))
        return x

    @mai.module
    def in_thread(x: int) -> int:
        ctx = mai.Context.get()
        dumps.append((ctx.model_dump(), ctx.model_dump_json()))
        return x

    token = mai.Context.set(metadata={"user": "ada"})
    try:
        await mai.Parallel(in_task, in_thread)(1)
    finally:
        mai.Context.reset(token)
    assert len(dumps) == 2
    for data, text in dumps:
        assert data["metadata"] == {"user": "ada"}
        assert data["step_id"] in {"1.1", "1.2"}
        assert '"user":"ada"' in text
    assert mai.Context.get().model_dump()["step_id"] == ""


def test_context_with_a_span_object_dumps_to_json():
    """A context carrying a tracer's span object still dumps to JSON (the span as its repr)."""

    class SpanLike:
        def __repr__(self) -> str:
            return "<span 7>"

    token = mai.Context.set(span=SpanLike())
    try:
        assert '"span":"<span 7>"' in mai.Context.get().model_dump_json()
    finally:
        mai.Context.reset(token)
