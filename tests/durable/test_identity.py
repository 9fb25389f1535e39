"""Workflow identity, a resume that never destroys a run, and requeueing DEAD or FAILED runs."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from resume_cases import CRASH_ONCE_APP

import mai
import mai.testing

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind."""
    if request.param == "memory":
        return f"memory://identity-{next(_names)}"
    return f"sqlite:///{tmp_path / 'identity.db'}"


calls: list[str] = []


@mai.module
async def inc(x: int) -> int:
    """A trivial step that leaves a trace."""
    calls.append(f"inc({x})")
    return x + 1


@mai.module
async def dbl(x: int) -> int:
    """Another trivial step."""
    calls.append(f"dbl({x})")
    return x * 2


#: Two unnamed composites at module level: each is named after its variable.
first_flow = inc >> dbl
second_flow = dbl >> inc
legacy = mai.Sequential(inc, inc)


@pytest.fixture(autouse=True)
def _clear() -> None:
    """Each test starts with an empty call log."""
    calls.clear()


async def test_unnamed_composites_at_module_level_are_told_apart(url: str) -> None:
    """Two default-named composites of one app get distinct names and refs, and both run."""
    async with mai.Runtime(url) as rt:
        assert await (await rt.start(first_flow, 1, run_id="a")).result() == 4
        assert await (await rt.start(second_flow, 1, run_id="b")).result() == 3
        a, b = await rt.get("a"), await rt.get("b")
    here = __name__
    assert (a.workflow, a.record.ref) == (f"{here}:first_flow", f"{here}:first_flow")
    assert (b.workflow, b.record.ref) == (f"{here}:second_flow", f"{here}:second_flow")


async def test_a_name_collision_is_an_error_at_registration_naming_both() -> None:
    """Registering two different workflows under one name fails, naming both definitions."""
    one = mai.Sequential(inc, dbl, name="checkout")
    two = mai.Sequential(dbl, inc, name="checkout")
    rt = mai.Runtime("memory://", workflows=[one])
    with pytest.raises(mai.WorkflowIdentityError) as info:
        rt.register(two)
    message = str(info.value)
    assert message.count("'checkout'") >= 3
    assert f"{id(one):#x}" in message
    assert f"{id(two):#x}" in message
    assert isinstance(info.value, ValueError)
    rt.register(one)  # the same workflow again is fine


async def test_a_workflow_that_could_never_be_found_again_is_refused_at_start(url: str) -> None:
    """An unnamed composite built in a function is refused at start, saying how to name it."""
    async with mai.Runtime(url) as rt:
        with pytest.raises(mai.WorkflowIdentityError, match=r"name=.*register") as info:
            await rt.start(inc >> dbl, 1, run_id="lost")
        assert "Sequential" in str(info.value)
        assert len(await rt.list_runs()) == 0
        named = await rt.start((inc >> dbl).with_(name="found"), 1, run_id="found")
        assert await named.result() == 4
        flow = inc >> dbl
        rt.register(flow, "registered")
        assert await (await rt.start(flow, 2, run_id="reg")).result() == 6
        assert (await rt.get("reg")).workflow == "registered"


async def test_runs_recorded_under_a_default_name_resume_once_registered(tmp_path: Path) -> None:
    """A run recorded as 'Sequential' with no reference (older releases) resumes once registered."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    async with mai.Runtime(url) as rt:
        await rt.submit(legacy, 1, run_id="old")
    with closing(sqlite3.connect(tmp_path / "old.db")) as conn, conn:
        conn.execute("UPDATE mai_runs SET workflow = 'Sequential', ref = NULL")
    async with mai.Runtime(url) as rt:
        await rt.recover()
        assert (await rt.get("old")).status == mai.RunStatus.PENDING  # unknown: left alone
    async with mai.Runtime(url, workflows=[legacy]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["old"].result() == 3


def _app(name: str) -> mai.Module[..., Any]:
    """A workflow only its own app knows (defined in a function: no importable reference)."""

    @mai.module
    async def step(x: int) -> str:
        calls.append(f"{name}({x})")
        return f"{name}:{x}"

    return step.with_(name=f"{name}-flow")


async def test_two_apps_sharing_a_store_recover_only_their_own_runs(tmp_path: Path) -> None:
    """Each app's recover() runs its own runs and leaves the other's untouched."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    app_a, app_b = _app("a"), _app("b")
    async with mai.Runtime(url) as rt:
        await rt.submit(app_a, 1, run_id="run-a")
        await rt.submit(app_b, 2, run_id="run-b")
        before = await rt.get("run-a")
    async with mai.Runtime(url, workflows=[app_b]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["run-b"].result() == "b:2"
        after = await rt.get("run-a")
    assert (after.status, after.owner, after.attempts, after.record.epoch) == (
        before.status,
        before.owner,
        before.attempts,
        before.record.epoch,
    )
    async with mai.Runtime(url, workflows=[app_a]) as rt:
        handles = {h.run_id: h for h in await rt.recover()}
        assert await handles["run-a"].result() == "a:1"
    assert calls == ["b(2)", "a(1)"]


async def test_resume_of_a_run_with_a_live_owner_waits_and_never_steals(url: str) -> None:
    """Resuming a run another live runtime executes leaves it to its owner and waits for it."""
    entered, release = trio.Event(), trio.Event()

    @mai.module
    async def slow(x: int) -> int:
        entered.set()
        await release.wait()
        return x + 100

    flow = slow.with_(name="slow")
    async with mai.Runtime(url) as owner, mai.Runtime(url, workflows=[flow]) as other:
        handle = await owner.start(flow, 1, run_id="live")
        await entered.wait()
        before = (await owner.get("live")).record
        waiting = await other.resume("live")
        during = (await other.get("live")).record
        assert (during.owner, during.epoch, during.status) == (
            before.owner,
            before.epoch,
            mai.RunStatus.RUNNING,
        )
        release.set()
        assert await waiting.result() == 101
        assert await handle.result() == 101
        assert (await other.get("live")).record.epoch == before.epoch


async def test_resume_takes_over_once_a_stopped_owner_lease_expires(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A run whose owner stopped answering is taken over when its lease expires (owner fenced)."""
    db = tmp_path / "stopped.db"
    url = f"sqlite:///{db}"
    flow = inc.with_(name="inc-flow")
    clock = mai.testing.VirtualClock(autojump_clock)
    async with mai.testing.virtual_runtime(url) as rt:
        await rt.submit(flow, 1, run_id="orphan")
    gone = "elsewhere:4242:stopped"  # another host: nobody here can tell whether it is alive
    lease_until = clock() + 600  # ten minutes of lease left, on the shared virtual clock
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE mai_runs SET status = 'RUNNING', owner = ?, epoch = 1, attempts = 1, "
            "lease_until = ?",
            (gone, lease_until),
        )
    async with mai.testing.virtual_runtime(url, workflows=[flow]) as rt:
        handle = await rt.resume("orphan")
        assert (await rt.get("orphan")).owner == gone  # not stolen while the lease holds
        assert await handle.result() == 2
        record = (await rt.get("orphan")).record
        (step,) = await rt.steps("orphan")
        assert record.owner == rt.owner
        assert record.epoch == 2
        assert step.started_at >= lease_until  # claimed only once the lease had expired
        late = mai.core.durable.StepRecord("orphan", "9", "late", "call", None, "1")
        with pytest.raises(mai.LeaseLostError):
            await rt.executor.write(rt.store.put_step, late, gone, 1)


async def test_retry_requeues_a_failed_run_keeping_its_id_and_steps(url: str) -> None:
    """A FAILED run is requeued: committed steps replay, history keeps the failure."""
    broken = [True]

    @mai.module
    async def check(x: int) -> int:
        calls.append(f"check({x})")
        if broken[0]:
            raise ValueError("not fixed yet")
        return x

    flow = mai.Sequential(inc, check, name="fixable")
    async with mai.Runtime(url) as rt:
        with pytest.raises(ValueError, match="not fixed yet"):
            await (await rt.start(flow, 1, run_id="r")).result()
        assert (await rt.get("r")).status == mai.RunStatus.FAILED
        broken[0] = False
        handle = await rt.retry("r")
        assert handle.run_id == "r"
        assert await handle.result() == 2
        info = await rt.get("r")
        history = await rt.history("r")
        with pytest.raises(mai.RunNotRetryableError, match="SUCCEEDED"):
            await rt.retry("r")
        with pytest.raises(mai.RunNotFoundError):
            await rt.retry("nope")
    assert info.status == mai.RunStatus.SUCCEEDED
    assert calls == ["inc(1)", "check(2)", "check(2)"]
    assert [h["status"] for h in history] == ["FAILED"]
    assert "not fixed yet" in history[0]["error"]["message"]


async def test_retry_brings_a_dead_run_back(url: str) -> None:
    """A dead-lettered run is requeued and completes; its dead-letter reason is history."""
    flow = inc.with_(name="revive")
    async with mai.Runtime(url) as rt:
        await rt.submit(flow, 1, run_id="dead")
        assert await rt.executor.write(rt.store.dead_letter, "dead", "poisoned for the test")
        assert await (await rt.retry("dead")).result() == 2
        history = await rt.history("dead")
    assert history[0]["status"] == "DEAD"
    assert "poisoned for the test" in str(history[0]["error"])


APP = CRASH_ONCE_APP


def _mai(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAI_STORE": f"sqlite:///{cwd}/cli.db"}
    env.pop("MAI_DEBUG", None)
    exe = Path(sys.executable).with_name("mai")
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("target", ["pipeline", "single", "graph"])
def test_mai_run_killed_then_mai_runs_resume_from_the_same_directory(
    tmp_path: Path, target: str
) -> None:
    """`mai run file.py:x` killed by SIGKILL is finished by `mai runs resume ID` (steps replay)."""
    (tmp_path / "flowapp.py").write_text(APP)
    crashed = _mai(tmp_path, "run", f"flowapp.py:{target}", "1", "--run-id", "r1", "--quiet")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = _mai(tmp_path, "runs", "resume", "r1")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "20"
    assert (tmp_path / "ledger.txt").read_text().split() == ["first", "second"]


def test_mai_runs_retry_requeues_a_dead_run(tmp_path: Path) -> None:
    """`mai runs retry ID` brings a dead-lettered run back; a finished one is refused."""
    (tmp_path / "flowapp.py").write_text(APP)
    (tmp_path / "crashed").write_text("x")
    done = _mai(tmp_path, "run", "flowapp.py:pipeline", "2", "--run-id", "ok", "--quiet")
    assert done.returncode == 0, done.stderr
    refused = _mai(tmp_path, "runs", "retry", "ok")
    assert refused.returncode != 0
    assert "SUCCEEDED" in refused.stderr
    with closing(sqlite3.connect(tmp_path / "cli.db")) as conn, conn:
        conn.execute("UPDATE mai_runs SET status = 'DEAD', error = 'made dead', output = NULL")
    again = _mai(tmp_path, "runs", "retry", "ok")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "30"
