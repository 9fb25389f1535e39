"""Issue 11 on PostgreSQL: identity, a resume that never destroys a run, requeue, typed results."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio
from pydantic import BaseModel

import mai

calls: list[str] = []


class Doc(BaseModel):
    """A typed value that must come back typed."""

    title: str


@mai.module
async def to_doc(x: int) -> Doc:
    """A step with a pydantic output."""
    return Doc(title=f"doc {x}")


@mai.module
async def to_text(x: int) -> str:
    """A step with a text output."""
    return f"text {x}"


@mai.module
async def inc(x: int) -> int:
    """A trivial step that leaves a trace."""
    calls.append(f"inc({x})")
    return x + 1


@pytest.fixture(autouse=True)
def _clear() -> None:
    """Each test starts with an empty call log."""
    calls.clear()


def _app(name: str) -> mai.Module[..., Any]:
    """A workflow only its own app knows."""

    @mai.module
    async def step(x: int) -> str:
        calls.append(f"{name}({x})")
        return f"{name}:{x}"

    return step.with_(name=f"{name}-flow")


async def test_two_apps_sharing_a_database_recover_only_their_own_runs(pg_url: str) -> None:
    """Each app's recover() runs its own runs and leaves the other's untouched."""
    app_a, app_b = _app("a"), _app("b")
    async with mai.Runtime(pg_url) as rt:
        await rt.submit(app_a, 1, run_id="run-a")
        await rt.submit(app_b, 2, run_id="run-b")
        before = (await rt.get("run-a")).record
    async with mai.Runtime(pg_url, workflows=[app_b]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["run-b"].result() == "b:2"
        after = (await rt.get("run-a")).record
        with pytest.raises(mai.WorkflowNotFoundError, match="a-flow"):
            await rt.resume("run-a")
    assert (after.status, after.owner, after.epoch, after.attempts) == (
        before.status,
        before.owner,
        before.epoch,
        before.attempts,
    )
    async with mai.Runtime(pg_url, workflows=[app_a]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["run-a"].result() == "a:1"


async def test_resume_takes_over_once_the_owner_lease_expires_by_the_database_clock(
    pg_url: str,
) -> None:
    """A run owned by a stopped process is claimed when its lease expires; the owner is fenced."""
    flow = inc.with_(name="inc-flow")
    async with mai.Runtime(pg_url) as rt:
        await rt.submit(flow, 1, run_id="orphan")
    gone = "elsewhere:4242:stopped"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE mai_runs SET status = 'RUNNING', owner = %s, epoch = 1, attempts = 1, "
            "lease_until = extract(epoch from now()) + 0.5",
            (gone,),
        )
    async with mai.Runtime(pg_url, workflows=[flow]) as rt:
        handle = await rt.resume("orphan")
        with trio.fail_after(30):
            assert await handle.result() == 2
        record = (await rt.get("orphan")).record
        assert (record.owner, record.epoch) == (rt.owner, 2)
        late = mai.core.durable.StepRecord("orphan", "9", "late", "call", None, "1")
        with pytest.raises(mai.LeaseLostError):
            await rt.executor.write(rt.store.put_step, late, gone, 1)


async def test_retry_requeues_a_failed_run_keeping_its_steps(pg_url: str) -> None:
    """A FAILED run is requeued on PostgreSQL: committed steps replay, history keeps it."""
    broken = [True]

    @mai.module
    async def check(x: int) -> int:
        calls.append(f"check({x})")
        if broken[0]:
            raise ValueError("not fixed yet")
        return x

    flow = mai.Sequential(inc, check, name="fixable")
    async with mai.Runtime(pg_url) as rt:
        with pytest.raises(ValueError, match="not fixed yet"):
            await (await rt.start(flow, 1, run_id="r")).result()
        broken[0] = False
        assert await (await rt.retry("r")).result() == 2
        history = await rt.history("r")
        assert (await rt.get("r")).status == mai.RunStatus.SUCCEEDED
    assert calls == ["inc(1)", "check(2)", "check(2)"]
    assert [h["status"] for h in history] == ["FAILED"]


async def test_typed_results_of_every_shape_on_postgres(pg_url: str) -> None:
    """A keyword Parallel and a Conditional read back from another runtime are typed."""
    par = mai.Parallel(a=to_doc, b=to_text, name="kw")
    cond = mai.Conditional(lambda x: x > 0, to_doc, to_text, name="cond")
    async with mai.Runtime(pg_url) as rt:
        await (await rt.start(par, 1, run_id="p")).result()
        await (await rt.start(cond, -1, run_id="c")).result()
    async with mai.Runtime(pg_url, workflows=[par, cond]) as other:
        assert await mai.RunHandle(other, "p").result() == {"a": Doc(title="doc 1"), "b": "text 1"}
        assert await mai.RunHandle(other, "c").result() == "text -1"
