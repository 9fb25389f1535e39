"""Issue 11 on PostgreSQL: identity, a resume that never destroys a run, requeue, typed results.

Each defect of issue 11 that does not depend on SQLite's own faults has its test here too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from pydantic import BaseModel
from resume_cases import CRASH_ONCE_APP, hold, outer, shift

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


@mai.module
async def takes_doc(d: Doc, n: int) -> str:
    """A step whose input must be recorded cast."""
    return f"{d.title} x{n}"


async def test_run_input_is_recorded_cast_on_postgres(pg_url: str) -> None:
    """Positional input is recorded cast to the parameter types (defect 5, on PostgreSQL)."""
    async with mai.Runtime(pg_url) as rt:
        handle = await rt.start(takes_doc, {"title": "t"}, "3", run_id="cast")
        assert await handle.result() == "t x3"
        info = await rt.get("cast")
    assert info.input == {"args": [{"title": "t"}, 3], "kwargs": {}}


async def test_an_unnamed_inline_composite_is_refused_at_start_on_postgres(pg_url: str) -> None:
    """A composite built in a function without a name is refused at start; nothing is written."""

    @mai.module
    async def dbl(x: int) -> int:
        return x * 2

    async with mai.Runtime(pg_url) as rt:
        with pytest.raises(mai.WorkflowIdentityError, match=r"name=.*register"):
            await rt.start(inc >> dbl, 1, run_id="lost")
        assert await rt.list_runs() == []


class _Stop(Exception):
    """Leaves a runtime block abruptly (its runs are handed back)."""


async def test_a_step_input_that_is_not_json_is_checked_on_replay_on_postgres(pg_url: str) -> None:
    """A step input with a non-JSON part is still compared on replay (defect 7, PostgreSQL)."""
    shift[0] = 0
    hold["gate"], hold["entered"] = trio.Event(), trio.Event()

    async def interrupted() -> None:
        async with mai.Runtime(pg_url) as rt:
            await rt.start(outer, 1, run_id="nd")
            await hold["entered"].wait()
            raise _Stop

    with pytest.raises(_Stop):
        await interrupted()
    shift[0] = 1
    hold["gate"].set()
    async with mai.Runtime(pg_url, workflows=[outer]) as rt:
        handle = await rt.resume("nd")
        with pytest.raises(mai.NonDeterminismError, match=r"1\.1"):
            await handle.result()


async def test_non_blocking_delay_body_runs_once_under_retries_on_postgres(pg_url: str) -> None:
    """A NonBlockingDelay re-scheduled by a composite retry runs its body once (defect 9)."""
    bodies: list[str | None] = []
    failures = [1]
    notified, release = trio.Event(), trio.Event()

    @mai.module
    async def notify(x: int) -> int:
        bodies.append(mai.Context.get().idempotency_key)
        notified.set()
        await release.wait()  # still running when the sibling fails and the composite retries
        return x

    @mai.module
    async def flaky(x: int) -> int:
        await notified.wait()
        if failures[0]:
            failures[0] -= 1
            raise ValueError("fails once")
        release.set()
        return x + 1

    flow = mai.Sequential(mai.NonBlockingDelay(0.0, notify), flaky, name="nbd-retry").with_(
        retries=1
    )
    async with mai.Runtime(pg_url) as rt:
        assert await (await rt.start(flow, 1, run_id="nbd")).result() == 2
        names = [s.name for s in await rt.steps("nbd")]
    assert bodies == ["nbd/1.1.1"]
    assert names.count("notify") == 1


async def test_resume_of_a_live_run_never_steals_it_on_postgres(pg_url: str) -> None:
    """Resuming a live run never steals it (known workflow: waits; unknown: raises, untouched)."""
    entered, release = trio.Event(), trio.Event()

    @mai.module
    async def slow(x: int) -> int:
        entered.set()
        await release.wait()
        return x + 100

    flow = slow.with_(name="slow")
    async with mai.Runtime(pg_url) as owner, mai.Runtime(pg_url, workflows=[flow]) as other:
        handle = await owner.start(flow, 1, run_id="live")
        await entered.wait()
        before = (await owner.get("live")).record
        async with mai.Runtime(pg_url) as stranger:  # does not know the workflow: hands off
            with pytest.raises(mai.WorkflowNotFoundError):
                await stranger.resume("live")
            await stranger.recover()
        waiting = await other.resume("live")
        await other.recover()  # a sweep of this runtime leaves a live owner's run alone too
        during = (await other.get("live")).record
        assert (during.owner, during.epoch) == (before.owner, before.epoch)
        release.set()
        assert await waiting.result() == 101
        assert await handle.result() == 101
        assert (await other.get("live")).record.epoch == before.epoch


APP = CRASH_ONCE_APP


def test_mai_run_killed_then_mai_runs_resume_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """`mai run file.py:pipeline` killed by SIGKILL on PostgreSQL resumes from the directory."""
    (tmp_path / "flowapp.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if k != "MAI_DEBUG"}
    env["MAI_STORE"] = pg_url
    exe = str(Path(sys.executable).with_name("mai"))

    def mai_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    crashed = mai_cli("run", "flowapp.py:pipeline", "1", "--run-id", "r1", "--quiet")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = mai_cli("runs", "resume", "r1")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "20"
    assert (tmp_path / "ledger.txt").read_text().split() == ["first", "second"]
