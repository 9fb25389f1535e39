"""Helpers for the PostgreSQL fault tests: worker processes, the ledger, store inspection.

The store is inspected with plain psycopg (never through mai). The side-effect ledger and its
rule (``check_ledger``) are the ones of the SQLite crash tests (``tests/durable/harness.py``):
each step body appends ``run,step_id,pid,key`` to a file outside the store before it returns.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
DURABLE = HERE.parent / "durable"
sys.path.insert(0, str(DURABLE))

from harness import (  # noqa: E402 - after the path set-up above
    Execution,
    RunRow,
    StepRow,
    check_ledger,
    check_succeeded,
    read_ledger,
    wait_until,
)

__all__ = [
    "Execution",
    "Fleet",
    "Proc",
    "RunRow",
    "StepRow",
    "check_ledger",
    "check_succeeded",
    "locked_runs",
    "read_ledger",
    "runs",
    "sessions",
    "steps",
    "submit",
    "wait_until",
]

WORKER = HERE / "pg_worker.py"
SUBMIT = HERE / "pg_submit.py"
REPO = HERE.parent.parent
TIMEOUT = 60.0


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run a read on a fresh connection, retrying while the server restarts."""
    give_up = time.monotonic() + TIMEOUT
    while True:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                return conn.execute(sql.encode()).fetchall()
        except psycopg.OperationalError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)


def runs(url: str) -> dict[str, RunRow]:
    """Every run in the database."""
    cols = ", ".join(RunRow.__dataclass_fields__)
    return {r[0]: RunRow(*r) for r in _query(url, f"SELECT {cols} FROM mai_runs")}  # noqa: S608


def steps(url: str) -> dict[str, dict[str, StepRow]]:
    """Every committed step, by run then step id."""
    cols = ", ".join(StepRow.__dataclass_fields__)
    out: dict[str, dict[str, StepRow]] = defaultdict(dict)
    for r in _query(url, f"SELECT {cols} FROM mai_steps"):  # noqa: S608
        out[r[0]][r[1]] = StepRow(*r)
    return dict(out)


def sessions(url: str) -> str:
    """The database's other sessions and their locks, one per line (for failure messages).

    A session holding row locks while its client is stopped shows here: its state
    (``idle in transaction``, or ``active`` waiting on ``ClientRead``), when its transaction
    started, and the relation locks it holds.
    """
    rows = _query(
        url,
        "SELECT a.pid, a.state, a.wait_event, "
        "round(extract(epoch from now() - a.xact_start)::numeric, 1), left(a.query, 60), "
        "(SELECT string_agg(DISTINCT l.mode || ' ' || coalesce(l.relation::regclass::text, "
        "l.locktype), ', ') FROM pg_locks l WHERE l.pid = a.pid) "
        "FROM pg_stat_activity a WHERE a.datname = current_database() "
        "AND a.pid <> pg_backend_pid() ORDER BY a.pid",
    )
    head = "pid | state | wait_event | transaction age (s) | query | locks"
    return "\n".join([head, *(" | ".join(map(str, r)) for r in rows)])


def locked_runs(url: str) -> set[str]:
    """The runs whose rows another session has locked (those ``SKIP LOCKED`` passes over)."""
    free = _query(url, "SELECT run_id FROM mai_runs FOR UPDATE SKIP LOCKED")
    return set(runs(url)) - {r[0] for r in free}


def submit(url: str, workflow: str, run_ids: list[str], queue: str = "default") -> None:
    """Enqueue ``workflow(run_id)`` for each id, from a client process (``pg_submit.py``)."""
    subprocess.run(
        [sys.executable, str(SUBMIT), url, workflow, queue, *run_ids],
        check=True,
        timeout=TIMEOUT,
        cwd=REPO,
    )


@dataclass
class Proc:
    """One worker process and what became of it."""

    proc: subprocess.Popen[bytes]
    name: str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def describe(self) -> str:
        """Return code and output, for assertion messages."""
        return f"{self.name} pid {self.pid} rc={self.returncode}\n{self.stdout}\n{self.stderr}"


@dataclass
class Fleet:
    """Worker processes on one database, with the ledger and every pid that was killed."""

    url: str
    ledger: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)

    def spawn(
        self, name: str, *args: str, wait: bool = True, env: dict[str, str] | None = None
    ) -> Proc:
        """Start ``pg_worker.py URL --name NAME *args`` (``env``: this one's extra variables)."""
        full = {k: v for k, v in os.environ.items() if k not in {"MAI_CRASH_AT", "MAI_PAUSE_AT"}}
        full.update(
            {"LEDGER": str(self.ledger), "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        )
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), self.url, "--name", name, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=full,
            cwd=REPO,
        )
        worker = Proc(proc, name)
        self.procs.append(worker)
        if wait:
            self.wait_open(worker)
        return worker

    def wait_open(self, worker: Proc) -> None:
        """Wait for the worker's ``open`` line (fail after a bound)."""
        assert worker.proc.stdout is not None
        fd = worker.proc.stdout.fileno()
        give_up = time.monotonic() + TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(give_up - time.monotonic(), 0))
            if not ready:
                self.kill(worker)
                raise AssertionError(f"worker never opened: {worker.describe()}")
            byte = os.read(fd, 1)
            if not byte:
                self.reap(worker)
                raise AssertionError(f"worker exited before opening: {worker.describe()}")
            line += byte
        worker.stdout += line.decode()

    def opened(self, worker: Proc) -> bool:
        """Whether the worker printed its ``open`` line yet (reads what is there; never waits)."""
        assert worker.proc.stdout is not None
        fd = worker.proc.stdout.fileno()
        while "\n" not in worker.stdout and select.select([fd], [], [], 0)[0]:
            byte = os.read(fd, 1)
            if not byte:
                break
            worker.stdout += byte.decode()
        return worker.stdout.startswith("open")

    def signal(self, worker: Proc, signum: int) -> None:
        """Send ``signum`` to the worker."""
        worker.proc.send_signal(signum)

    def kill(self, worker: Proc) -> Proc:
        """SIGKILL the worker (if alive), remember its pid, reap it."""
        if worker.alive():
            worker.proc.send_signal(signal.SIGKILL)
            self.killed.add(worker.pid)
        return self.reap(worker)

    def reap(self, worker: Proc, timeout: float = TIMEOUT) -> Proc:
        """Wait for the worker to exit; collect its output."""
        try:
            out, err = worker.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            self.killed.add(worker.pid)
            out, err = worker.proc.communicate()
            worker.returncode = worker.proc.returncode
            worker.stdout += out.decode()
            worker.stderr += err.decode()
            raise AssertionError(
                f"worker did not exit in {timeout}s: {worker.describe()}"
            ) from None
        worker.returncode = worker.proc.returncode
        worker.stdout += out.decode()
        worker.stderr += err.decode()
        return worker

    def stop_all(self) -> None:
        """SIGTERM every live worker and reap it (SIGKILL after the bound)."""
        for worker in self.procs:
            if worker.alive():
                worker.proc.send_signal(signal.SIGTERM)
                worker.proc.send_signal(signal.SIGCONT)  # a paused one must hear it too
        for worker in self.procs:
            if worker.returncode is None:
                self.reap(worker)


def wait_terminal(url: str, run_ids: list[str], timeout: float, fleet: Fleet | None = None) -> None:
    """Wait until every run is terminal (bounded), failing with the workers' output."""

    def done() -> bool:
        rows = runs(url)
        return all(r in rows and rows[r].status not in {"PENDING", "RUNNING"} for r in run_ids)

    try:
        wait_until(done, timeout, "every run to finish", interval=0.1)
    except AssertionError:
        if fleet is not None:
            fleet.stop_all()
            details = "\n".join(w.describe()[-3000:] for w in fleet.procs)
            raise AssertionError(f"runs did not finish in {timeout}s\n{details}") from None
        raise


def check_all_succeeded(url: str, run_ids: list[str], n: int) -> None:
    """Every run SUCCEEDED with result n, its steps a complete well-formed chain."""
    check_succeeded(runs(url), steps(url), run_ids, n)
