"""`mai runs resume` against real processes: a live owner, a stopped owner, two apps on one file.

Real subprocesses on a real SQLite file: the owner is a script that starts a run with a short
lease, ``mai runs resume`` is the installed console script run from the app's directory, and a
ledger file outside the store records which process executed which step body. Nothing waits on
the wall clock: each test waits for a line in the ledger, a line on stderr or a process's exit,
a stopped owner's lease "passes" by moving its recorded end (as in test_crash), and the tests
check orderings of recorded times, never durations.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest
from harness import wait_until

# Real processes judged by leases: one at a time beside the rest of the suite (like test_crash).
pytestmark = pytest.mark.xdist_group("sqlite-crash")

TIMEOUT = 60.0
"""Seconds any process here may take before the test fails (no test hangs forever)."""

FLOWAPP = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import trio

    import mai

    HERE = Path(__file__).parent


    def ledger(what):
        with open(HERE / "ledger.txt", "a") as f:
            f.write(f"{what} {os.getpid()}\\n")


    @mai.module
    async def first(n: int) -> int:
        ledger("first")
        return n + 1


    @mai.module
    async def until_go(n: int) -> int:
        ledger("second-start")
        while not (HERE / "go").exists():
            await trio.sleep(0.02)
        ledger("second-end")
        return n * 10


    pipeline = first >> until_go
    """
)

OWNER = textwrap.dedent(
    """
    import json
    import sys

    import trio

    import mai
    from flowapp import pipeline


    async def main():
        async with mai.Runtime(sys.argv[1], lease=float(sys.argv[2])) as rt:
            handle = await rt.start(pipeline, 1, run_id="r1")
            try:
                print(json.dumps({"result": await handle.result()}), flush=True)
            except mai.LeaseLostError as exc:
                print(json.dumps({"lost": str(exc)}), flush=True)
                sys.exit(3)


    trio.run(main)
    """
)


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MAI_DEBUG", "MAI_CRASH_AT"}}
    return {**env, "MAI_STORE": f"sqlite:///{db}", "PYTHONUNBUFFERED": "1"}


def _mai_exe() -> str:
    return str(Path(sys.executable).with_name("mai"))


def _ledger(app: Path) -> list[tuple[str, int]]:
    path = app / "ledger.txt"
    if not path.exists():
        return []
    return [
        (what, int(pid))
        for what, pid in (line.split() for line in path.read_text().split("\n") if line)
    ]


def _run_row(db: Path, run_id: str) -> dict[str, object]:
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM mai_runs WHERE run_id = ?", (run_id,)).fetchone()
    return dict(row)


def _step_rows(db: Path, run_id: str) -> dict[str, dict[str, object]]:
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM mai_steps WHERE run_id = ?", (run_id,)).fetchall()
    return {r["step_id"]: dict(r) for r in rows}


def _read_stderr_until(proc: subprocess.Popen[bytes], needle: str) -> str:
    """Read the process's stderr until a line contains ``needle``; fail after TIMEOUT."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    give_up = time.monotonic() + TIMEOUT
    seen = b""
    while needle.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(give_up - time.monotonic(), 0))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            proc.kill()
            pytest.fail(f"no {needle!r} on stderr: {seen.decode(errors='replace')}")
        seen += chunk
    return seen.decode()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A directory holding the app module, the owner script and (later) the store and ledger."""
    (tmp_path / "flowapp.py").write_text(FLOWAPP)
    (tmp_path / "owner.py").write_text(OWNER)
    return tmp_path


def _start_owner(app: Path, lease: float) -> subprocess.Popen[bytes]:
    """Start the owner script; return once its run is inside the second step."""
    db = app / "cli.db"
    owner = subprocess.Popen(
        [sys.executable, str(app / "owner.py"), f"sqlite:///{db}", str(lease)],
        cwd=app,
        env=_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: ("second-start", owner.pid) in _ledger(app), TIMEOUT, "the second step")
    return owner


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out.decode(), err.decode()


def _stop_outside_a_transaction(db: Path, proc: subprocess.Popen[bytes]) -> None:
    """SIGSTOP ``proc`` at a moment it holds no SQLite write lock (a heartbeat is short)."""
    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        with closing(sqlite3.connect(db, timeout=0, isolation_level=None)) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # stopped mid-heartbeat: let it finish, try again
                proc.send_signal(signal.SIGCONT)
                continue
            conn.execute("ROLLBACK")
            return
    pytest.fail("the owner always held the write lock when stopped")


def test_resume_of_a_live_run_says_who_owns_it_and_waits(app: Path) -> None:
    """`mai runs resume ID` on a run a healthy process executes names the owner and never steals."""
    db = app / "cli.db"
    owner = _start_owner(app, lease=30.0)
    try:
        before = _run_row(db, "r1")
        resume = subprocess.Popen(
            [_mai_exe(), "runs", "resume", "r1"],
            cwd=app,
            env=_env(db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        said = _read_stderr_until(resume, "owned by")
        assert str(before["owner"]) in said
        assert f":{owner.pid}:" in str(before["owner"])
        (app / "go").write_text("x")
        code, out, err = _finish(resume)
        assert code == 0, err
        assert out.strip() == "20"
        assert _finish(owner)[:2] == (0, '{"result": 20}\n')
    finally:
        owner.kill()
        owner.communicate()
    after = _run_row(db, "r1")
    assert (after["status"], after["epoch"], after["attempts"]) == ("SUCCEEDED", before["epoch"], 1)
    assert {pid for _, pid in _ledger(app)} == {owner.pid}  # the resume ran no body
    assert {r["worker"] for r in _step_rows(db, "r1").values()} == {before["owner"]}


def test_resume_takes_a_stopped_owner_run_after_its_lease_and_fences_it(app: Path) -> None:
    """SIGSTOP the owner: `mai runs resume` claims the run after its lease; late writes fail."""
    db = app / "cli.db"
    owner = _start_owner(app, lease=30.0)
    try:
        _stop_outside_a_transaction(db, owner)
        stopped = _run_row(db, "r1")  # the owner can no longer renew: this is its last lease
        (app / "go").write_text("x")
        resume = subprocess.Popen(
            [_mai_exe(), "runs", "resume", "r1"],
            cwd=app,
            env=_env(db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        said = _read_stderr_until(resume, "owned by")
        assert str(stopped["owner"]) in said
        assert _run_row(db, "r1") == stopped  # waiting: not taken while the lease holds
        # The rest of the lease passes while the owner stays stopped (its recorded end moves to
        # now, as in test_crash): the waiting resume claims the run at its next look.
        lease_end = time.time()
        with closing(sqlite3.connect(db, timeout=5)) as conn, conn:
            conn.execute("UPDATE mai_runs SET lease_until = ? WHERE run_id = 'r1'", (lease_end,))
        code, out, err = _finish(resume)
        assert code == 0, err
        assert out.strip() == "20"
        done = _run_row(db, "r1")
        committed = _step_rows(db, "r1")
        owner.send_signal(signal.SIGCONT)  # the old owner wakes up, finishes its body, is fenced
        code, out, err = _finish(owner)
    finally:
        owner.send_signal(signal.SIGCONT)
        owner.kill()
        owner.communicate()
    assert code == 3, (out, err)
    assert "lost" in json.loads(out.strip().splitlines()[-1])
    assert (done["status"], done["epoch"]) == ("SUCCEEDED", int(str(stopped["epoch"])) + 1)
    assert _run_row(db, "r1") == done  # nothing the old owner did afterwards landed
    assert _step_rows(db, "r1") == committed
    second = committed["1.2"]
    assert second["started_at"] >= lease_end, "claimed before the lease expired"
    assert str(second["worker"]) != str(stopped["owner"])
    assert committed["1.1"]["worker"] == stopped["owner"]  # replayed, not run again
    ledger = _ledger(app)
    assert [pid for what, pid in ledger if what == "first"] == [owner.pid]
    resumer = {pid for what, pid in ledger if what == "second-end" and pid != owner.pid}
    assert len(resumer) == 1  # the body in flight in the fenced owner ran once more, elsewhere


def test_two_apps_sharing_a_store_file_resume_only_their_own_runs(tmp_path: Path) -> None:
    """`mai runs resume` from one app's directory leaves the other app's run untouched."""
    db = tmp_path / "shared.db"
    apps = {}
    for name in ("a", "b"):
        app = tmp_path / f"app_{name}"
        app.mkdir()
        (app / f"flow_{name}.py").write_text(FLOWAPP.replace("pipeline =", f"pipeline_{name} ="))
        apps[name] = app
        crashed = subprocess.Popen(
            [_mai_exe(), "run", f"flow_{name}.py:pipeline_{name}", "1", "--run-id", f"r{name}"],
            cwd=app,
            env=_env(db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_until(
            lambda a=app, p=crashed.pid: ("second-start", p) in _ledger(a), TIMEOUT, "step two"
        )
        crashed.kill()  # SIGKILL inside the second step: the first is committed, the run unfinished
        crashed.communicate()
        (app / "go").write_text("x")
    untouched = _run_row(db, "rb")
    refused = subprocess.run(
        [_mai_exe(), "runs", "resume", "rb"],
        cwd=apps["a"],
        env=_env(db),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert refused.returncode != 0
    assert "flow_b" in refused.stderr
    assert "the run is left as it is" in refused.stderr, refused.stderr
    assert _run_row(db, "rb") == untouched
    for name in ("a", "b"):
        resumed = subprocess.run(
            [_mai_exe(), "runs", "resume", f"r{name}"],
            cwd=apps[name],
            env=_env(db),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == "20"
        if name == "a":
            assert _run_row(db, "rb") == untouched  # app a's resume never touched b's run
    for name in ("a", "b"):
        firsts = [what for what, _ in _ledger(apps[name]) if what == "first"]
        assert firsts == ["first"]  # committed before the kill: replayed, never run again
