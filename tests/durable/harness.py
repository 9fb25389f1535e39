"""Helpers for the crash tests: worker subprocesses, the side-effect ledger, store inspection.

The store is inspected with the standard library's ``sqlite3`` only (never through mai), so a
test sees exactly what a crash left in the file.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker_script.py"
REPO = HERE.parent.parent

WORKER_TIMEOUT = 30.0
"""Seconds any single worker process may take before the test fails (no test hangs forever)."""


@dataclass
class Worker:
    """One worker subprocess and what became of it."""

    proc: subprocess.Popen[bytes]
    spawned_at: float
    opened_at: float | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    @property
    def killed(self) -> bool:
        """True when the process died of SIGKILL."""
        return self.returncode == -signal.SIGKILL

    def summary(self) -> dict[str, Any]:
        """The JSON summary the worker prints on a clean exit."""
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def describe(self) -> str:
        """Return code and output, for assertion messages."""
        return (
            f"pid {self.pid} rc={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


@dataclass
class Cluster:
    """Runs worker processes on one database, one at a time, and remembers every pid."""

    db: Path
    ledger: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``worker_script.py DB *args`` with the ledger and extra environment."""
        full_env = {k: v for k, v in os.environ.items() if k not in {"MAI_CRASH_AT", "MAI_TRACE"}}
        full_env.update({"LEDGER": str(self.ledger), "PYTHONUNBUFFERED": "1"})
        full_env.update(self.env)
        full_env.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(self.db), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: wait_open reads byte by byte, communicate() the rest
            env=full_env,
            cwd=REPO,
        )
        worker = Worker(proc, time.time())
        self.workers.append(worker)
        return worker

    def wait_open(self, worker: Worker, timeout: float = WORKER_TIMEOUT) -> bool:
        """Wait for the worker's ``open`` line; ``False`` if it exited first."""
        assert worker.proc.stdout is not None
        fd = worker.proc.stdout.fileno()
        give_up = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(give_up - time.monotonic(), 0))
            if not ready:
                self.kill(worker)
                msg = f"worker printed no 'open' line within {timeout}s: {worker.describe()}"
                raise AssertionError(msg)
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
        worker.stdout += line.decode()
        if not line.startswith(b"open"):
            return False
        worker.opened_at = time.time()
        return True

    def finish(self, worker: Worker, timeout: float = WORKER_TIMEOUT) -> Worker:
        """Wait for the worker to exit (killing it and failing after ``timeout``)."""
        try:
            out, err = worker.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            out, err = worker.proc.communicate()
            worker.returncode = worker.proc.returncode
            worker.stdout += out.decode()
            worker.stderr += err.decode()
            msg = f"worker did not finish within {timeout}s: {worker.describe()}"
            raise AssertionError(msg) from None
        worker.returncode = worker.proc.returncode
        worker.stdout += out.decode()
        worker.stderr += err.decode()
        return worker

    def kill(self, worker: Worker) -> Worker:
        """SIGKILL the worker (if it still runs) and reap it."""
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGKILL)
        return self.finish(worker)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start a worker and wait for it to exit."""
        return self.finish(self.spawn(*args, env=env))

    def close(self) -> None:
        """Kill and reap any worker still running and close every pipe (test teardown)."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
            pipes = (worker.proc.stdout, worker.proc.stderr)
            if any(p is not None and not p.closed for p in pipes):
                worker.proc.communicate()

    @property
    def killed_pids(self) -> set[int]:
        """Pids of the workers that died of SIGKILL."""
        return {w.pid for w in self.workers if w.killed}


# -- the side-effect ledger ------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One step body execution, as the ledger recorded it."""

    run: str
    step_id: str
    pid: int
    key: str


def read_ledger(path: Path) -> list[Execution]:
    """Every line of the ledger, in the order the bodies ran."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        run, step_id, pid, key = line.split(",")
        out.append(Execution(run, step_id, int(pid), key))
    return out


def pid_of(worker: str | None) -> int:
    """The pid in a ``host:pid:incarnation`` worker identity."""
    assert worker is not None
    return int(worker.split(":")[1])


def check_ledger(
    ledger: list[Execution],
    committed: dict[str, dict[str, StepRow]],
    killed: set[int],
    fenced: dict[str, set[int]] | None = None,
) -> None:
    """Check the at-least-once / exactly-once rule for every step body in the ledger.

    For each (run, step): the process that committed the step executed it once; every other
    execution came from a process that was SIGKILLed, or that the store fenced on that run
    (``fenced``: run -> pids whose ``(owner, epoch)`` the store refused for it, as the workers
    logged), once per process. No execution comes after the committer's, except the last one
    of a process fenced on the run: it entered that step while it still held the lease and
    was stopped (SIGSTOP, a starved CPU) before the body's first effect, which it made on
    waking, and then it ran nothing more of the run. So no body ran again after its result was
    committed, and duplicates only come from interrupted attempts. Every committed ``step``
    row has an execution, and keys are ``run/step``.
    """
    runs: dict[tuple[str, str], list[int]] = defaultdict(list)
    last: dict[tuple[str, int], str] = {}
    for e in ledger:
        assert e.key == f"{e.run}/{e.step_id}", f"unstable idempotency key {e}"
        runs[e.run, e.step_id].append(e.pid)
        last[e.run, e.pid] = e.step_id
    for (run, step_id), pids in runs.items():
        row = committed.get(run, {}).get(step_id)
        assert row is not None, f"{run} step {step_id} ran (pids {pids}) but was never committed"
        committer = pid_of(row.worker)
        lost = fenced.get(run, set()) if fenced else set()
        assert committer in pids, f"{run} step {step_id} committed by {committer}, run by {pids}"
        after = pids[pids.index(committer) + 1 :]
        bad = [p for p in after if p not in lost or last[run, p] != step_id]
        assert not bad, (
            f"{run} step {step_id}: ran again in pid {bad[0]} after pid {committer} committed it"
            f" (executions {pids})"
        )
        assert len(set(pids)) == len(pids), f"{run} step {step_id} ran twice in one process {pids}"
        early = set(pids) - {committer} - killed - lost
        assert not early, f"{run} step {step_id}: duplicate execution by surviving pids {early}"
    for run, steps in committed.items():
        for step_id, row in steps.items():
            if row.name == "step":
                assert (run, step_id) in runs, f"{run} step {step_id} committed but never ran"


# -- plain-sqlite3 store inspection ------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    """A ``mai_steps`` row."""

    run_id: str
    step_id: str
    name: str
    kind: str
    input: str | None
    output: str
    started_at: float
    finished_at: float
    worker: str | None


@dataclass(frozen=True)
class RunRow:
    """The ``mai_runs`` columns the tests look at."""

    run_id: str
    workflow: str
    status: str
    output: str | None
    error: str | None
    attempts: int
    owner: str | None
    epoch: int
    lease_until: float | None
    created_at: float
    updated_at: float
    deadline: float | None


def connect(db: Path) -> sqlite3.Connection:
    """A plain connection to the database file."""
    return sqlite3.connect(db, timeout=5)


def tables(db: Path) -> set[str]:
    """The names of the tables in the file."""
    with closing(connect(db)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of the file."""
    with closing(connect(db)) as conn:
        return "\n".join(r[0] for r in conn.execute("PRAGMA integrity_check"))


def runs(db: Path) -> dict[str, RunRow]:
    """Every run in the file (none if the schema was never created)."""
    if "mai_runs" not in tables(db):
        return {}
    cols = ", ".join(RunRow.__dataclass_fields__)
    with closing(connect(db)) as conn:
        rows = conn.execute(f"SELECT {cols} FROM mai_runs").fetchall()  # noqa: S608
    return {r[0]: RunRow(*r) for r in rows}


def steps(db: Path) -> dict[str, dict[str, StepRow]]:
    """Every committed step in the file, by run then step id."""
    if "mai_steps" not in tables(db):
        return {}
    cols = ", ".join(StepRow.__dataclass_fields__)
    out: dict[str, dict[str, StepRow]] = defaultdict(dict)
    with closing(connect(db)) as conn:
        for r in conn.execute(f"SELECT {cols} FROM mai_steps"):  # noqa: S608
            out[r[0]][r[1]] = StepRow(*r)
    return dict(out)


def expected_steps(run: str, n: int) -> dict[str, tuple[str, int]]:
    """The ``step`` calls of a complete ``chain<n>`` run: step id -> (input JSON, output)."""
    return {
        f"1.{i + 1}": (
            json.dumps({"args": [run, i, i], "kwargs": {}}, separators=(",", ":")),
            i + 1,
        )
        for i in range(n)
    }


def check_prefix(run: str, rows: dict[str, StepRow], n: int) -> int:
    """Check a run's committed steps are a well-formed prefix of ``chain<n>``; return its length.

    Every row is complete (output, worker, timings); the ``step`` rows are ``1.1 .. 1.k`` with
    the right inputs and outputs; the workflow's own row ``1`` exists only once all n did.
    """
    want = expected_steps(run, n)
    calls = {sid: r for sid, r in rows.items() if sid != "1"}
    k = len(calls)
    assert set(calls) == set(list(want)[:k]), f"{run}: steps {sorted(calls)} are not a prefix"
    for sid, r in calls.items():
        assert (r.name, r.kind) == ("step", "call"), r
        assert (r.input, json.loads(r.output)) == want[sid], r
        assert r.worker is not None, r
        assert r.finished_at >= r.started_at > 0, r
    top = rows.get("1")
    if top is not None:
        assert k == n, f"{run}: the workflow's own step was committed after only {k} steps"
        assert json.loads(top.output) == n, top
    return k


def check_complete(db: Path, run_ids: list[str], n: int) -> None:
    """Every run SUCCEEDED with result n, exactly n correct steps, and no lease left behind."""
    check_succeeded(runs(db), steps(db), run_ids, n)
    for run in run_ids:
        assert "1" in steps(db)[run], f"{run}: the workflow's own step is missing"


def check_succeeded(
    all_runs: dict[str, RunRow],
    all_steps: dict[str, dict[str, StepRow]],
    run_ids: list[str],
    n: int,
) -> None:
    """Every run SUCCEEDED with result n, its steps a complete chain, no lease left (any store)."""
    bad = {r: all_runs[r].status for r in run_ids if all_runs[r].status != "SUCCEEDED"}
    assert not bad, f"{len(bad)} of {len(run_ids)} runs did not succeed: {bad}"
    for run in run_ids:
        row = all_runs[run]
        assert json.loads(row.output or "null") == n, row
        assert row.lease_until is None, row
        assert check_prefix(run, all_steps[run], n) == n


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    """Poll ``predicate()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > give_up:
            msg = f"timed out after {timeout}s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(interval)


# -- the store-call trace of a worker (``$MAI_TRACE``) -----------------------------------------


@dataclass
class Transaction:
    """One store transaction from a worker's trace: its writes and how it ended."""

    ops: list[tuple[str, ...]] = field(default_factory=list)
    end: str = "in-flight"  # "committed", "rolled back", "committing" or "in-flight"


def read_trace(path: Path) -> list[Transaction]:
    """The transactions of a worker's trace, in order."""
    out: list[Transaction] = []
    for line in path.read_text().splitlines():
        op = tuple(line.split(" "))
        if op[0] == "B":
            out.append(Transaction())
        elif op[0] == "C?":
            out[-1].end = "committing"
        elif op[0] == "C":
            out[-1].end = "committed"
        elif op[0] == "R":
            out[-1].end = "rolled back"
        else:
            out[-1].ops.append(op)
    return out


def visible(op: tuple[str, ...], run_rows: dict[str, RunRow], step_rows: Any) -> bool:
    """Whether the effect of one traced write is in the store."""
    kind, run_id = op[0], op[1]
    run = run_rows.get(run_id)
    if kind == "create":
        return run is not None
    if kind == "step":
        return op[2] in step_rows.get(run_id, {})
    if kind == "claim":
        return run is not None and run.owner == op[2]
    if kind in {"finish", "dead"}:
        return run is not None and run.status in {"SUCCEEDED", "FAILED", "CANCELLED", "DEAD"}
    msg = f"unknown trace op {op}"
    raise AssertionError(msg)


def check_before_or_after(db: Path, trace: Path) -> tuple[Transaction, list[bool]] | None:
    """Check the store holds every committed transaction of the trace and none of the rest.

    The last transaction, the one the crash interrupted, must be entirely absent (before-state)
    or, if its ``COMMIT`` had been issued, entirely absent or entirely present (after-state): a
    kill from another thread may land just after ``COMMIT`` returned and before the trace says
    so. Returns that transaction and which of its writes are visible (``None`` when the worker
    wrote nothing).
    """
    txns = read_trace(trace) if trace.exists() else []
    if not txns:
        return None
    run_rows, step_rows = runs(db), steps(db)
    seen: list[bool] = []
    for i, txn in enumerate(txns):
        seen = [visible(op, run_rows, step_rows) for op in txn.ops]
        if txn.end == "committed":
            assert all(seen), f"transaction {i} committed but lost {txn.ops} -> {seen}"
        elif i < len(txns) - 1:
            assert txn.end == "rolled back", f"transaction {i} neither committed nor rolled back"
        elif txn.end == "committing":
            assert all(seen) or not any(seen), f"interrupted commit is partial: {txn.ops} {seen}"
        else:
            assert not any(seen), f"uncommitted transaction {i} is visible: {txn.ops} {seen}"
    last = txns[-1]
    if len(txns) == 1 and not last.ops and last.end != "committed":  # an interrupted migration
        assert ("mai_runs" in tables(db)) == (schema_stamp(db) is not None), "partial migration"
    return last, seen


def schema_stamp(db: Path) -> str | None:
    """The ``schema_version`` stamped in ``mai_meta``, if any."""
    if "mai_meta" not in tables(db):
        return None
    with closing(connect(db)) as conn:
        row = conn.execute("SELECT value FROM mai_meta WHERE key = 'schema_version'").fetchone()
    return row[0] if row else None


def check_run_rows(db: Path, n: int) -> None:
    """Every run row is in a consistent state (whatever moment the crash hit)."""
    all_steps = steps(db)
    for run in runs(db).values():
        if run.status == "RUNNING":
            assert run.owner, run
            assert run.lease_until, run
            assert run.epoch >= 1, run
            assert run.attempts >= 1, run
        elif run.status == "PENDING":
            assert run.owner is None, run
            assert run.lease_until is None, run
        else:
            assert run.status == "SUCCEEDED", run
            assert json.loads(run.output or "null") == n, run
        check_prefix(run.run_id, all_steps.get(run.run_id, {}), n)
