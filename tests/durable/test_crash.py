"""Crash tests: real worker processes on a real SQLite file, killed with real SIGKILL.

Each test checks the store with plain ``sqlite3`` and a side-effect ledger kept outside the
store (see ``harness.check_ledger``): no loss, no re-execution after commit, duplicates only in
a killed attempt, one outcome per run, ``PRAGMA integrity_check`` ok.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from harness import (
    Cluster,
    Worker,
    check_before_or_after,
    check_complete,
    check_ledger,
    check_run_rows,
    connect,
    integrity,
    pid_of,
    read_ledger,
    runs,
    schema_stamp,
    steps,
    tables,
    wait_until,
)

from mai.core.durable import FAULT_POINTS

# Real processes killed and restarted, judged by their timing: these tests run one at a time
# (in one xdist worker, `--dist loadgroup`), beside the rest of the suite, not beside each other.
pytestmark = pytest.mark.xdist_group("sqlite-crash")

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Workers on a fresh database file with a fresh ledger (all reaped at teardown)."""
    cluster = Cluster(db=tmp_path / "mai.db", ledger=tmp_path / "ledger.csv")
    yield cluster
    cluster.close()


def run_ids(n: int, prefix: str = "run") -> list[str]:
    """The ids the worker gives its runs."""
    return [f"{prefix}-{i:03d}" for i in range(n)]


# -- SIGKILL at random moments ---------------------------------------------------------------


def random_kills(cluster: Cluster, n_runs: int, max_kills: int, seed: int) -> None:
    """Kill workers at random moments (at most ``max_kills`` times), then let one finish."""
    print(f"random_kills seed={seed}")  # shown on failure, to replay the same kill times
    rng = random.Random(seed)  # noqa: S311 - kill times, not cryptography
    args = ("--workflow", "chain20", "--runs", str(n_runs))
    for _ in range(max_kills):
        worker = cluster.spawn(*args)
        if cluster.wait_open(worker):
            delay = rng.uniform(0.2, 1.0)
            with contextlib.suppress(subprocess.TimeoutExpired):  # still running: kill it
                worker.proc.wait(timeout=delay)
        cluster.kill(worker)
        if worker.returncode == 0:
            return
        assert worker.killed, worker.describe()
    last = cluster.run(*args)
    assert last.returncode == 0, last.describe()


def check_random_kills(cluster: Cluster, n_runs: int) -> None:
    """All runs complete; the ledger, the store and the worker reports agree."""
    ids = run_ids(n_runs)
    assert cluster.killed_pids, "no worker was killed mid-run: the test proved nothing"
    assert integrity(cluster.db) == "ok"
    check_complete(cluster.db, ids, 20)
    ledger = read_ledger(cluster.ledger)
    committed = steps(cluster.db)
    check_ledger(ledger, committed, cluster.killed_pids)
    last = cluster.workers[-1]
    assert last.summary()["status"] == dict.fromkeys(ids, "SUCCEEDED")
    ran = {e.pid for e in ledger}
    assert ran & cluster.killed_pids, "no killed worker had executed a step: kills landed too early"
    assert last.pid in ran, "the last worker had nothing left to do: no kill landed mid-run"


def test_random_sigkill_all_runs_complete_without_reexecution(cluster: Cluster) -> None:
    """Random SIGKILLs lose nothing: 100 runs of 20 steps complete, no body reruns after commit."""
    cluster.env["STEP_SLEEP"] = "0.1"
    random_kills(cluster, n_runs=100, max_kills=4, seed=time.time_ns())
    check_random_kills(cluster, 100)


# -- a crash at every persistence point ------------------------------------------------------

CRASH_CASES = [
    ("before_body", 1),
    ("before_body", 4),
    ("after_body", 1),
    ("after_body", 4),
    ("inside_transaction", 1),  # the schema migration of the fresh file
    ("inside_transaction", 4),
    ("inside_commit", 1),  # the schema migration of the fresh file
    ("inside_commit", 3),
    ("inside_commit", 8),
    ("after_commit", 1),
    ("after_commit", 3),
    ("after_commit", 8),
    ("during_claim", 1),
    ("during_claim", 2),
    ("during_recovery", 1),
    ("during_recovery", 2),
]


def test_crash_cases_cover_every_point() -> None:
    """Every named crash point of the runtime is exercised by the crash-point test."""
    assert {point for point, _ in CRASH_CASES} == set(FAULT_POINTS)


@pytest.mark.parametrize(("point", "nth"), CRASH_CASES, ids=[f"{p}:{n}" for p, n in CRASH_CASES])
def test_crash_at_persistence_point_leaves_before_or_after_state(
    cluster: Cluster, tmp_path: Path, point: str, nth: int
) -> None:
    """A SIGKILL at any persistence point leaves the before- or after-state; a restart completes."""
    ids, args = run_ids(2), ("--workflow", "chain5", "--runs", "2")
    if point == "during_recovery":  # recovery needs unfinished runs: leave some behind first
        first = cluster.run(*args, env={"MAI_CRASH_AT": "after_commit:4"})
        assert first.killed, first.describe()
    trace = tmp_path / "trace.txt"
    crashed = cluster.run(*args, env={"MAI_CRASH_AT": f"{point}:{nth}", "MAI_TRACE": str(trace)})
    assert crashed.killed, f"the crash point was not reached: {crashed.describe()}"
    assert integrity(cluster.db) == "ok"
    interrupted = check_before_or_after(cluster.db, trace)
    if point in {"inside_commit", "after_commit"}:  # the kill is on the store thread: exact
        assert interrupted is not None
        last, seen = interrupted
        if point == "inside_commit":
            assert last.end == "committing", last
            assert not any(seen), f"a transaction killed before COMMIT is visible: {last}"
            if nth == 1:  # that was the schema migration of the new file: nothing of it stays
                assert "mai_runs" not in tables(cluster.db)
                assert schema_stamp(cluster.db) is None
        else:
            assert last.end == "committed", last
            assert all(seen), last
    check_run_rows(cluster.db, 5)
    final = cluster.run(*args)
    assert final.returncode == 0, final.describe()
    assert final.summary()["status"] == dict.fromkeys(ids, "SUCCEEDED")
    assert integrity(cluster.db) == "ok"
    check_complete(cluster.db, ids, 5)
    check_ledger(read_ledger(cluster.ledger), steps(cluster.db), cluster.killed_pids)


# -- poison runs -----------------------------------------------------------------------------

MAX_ATTEMPTS = 5  # the Runtime default the worker uses


def restart_until_clean(cluster: Cluster, *args: str, rounds: int) -> Worker:
    """Restart the worker until one exits cleanly; fail after ``rounds`` starts."""
    for _ in range(rounds):
        worker = cluster.run(*args)
        if worker.returncode == 0:
            return worker
        assert worker.killed, worker.describe()
    msg = f"no worker exited cleanly in {rounds} starts: {cluster.workers[-1].describe()}"
    raise AssertionError(msg)


def check_poison_dead(cluster: Cluster, run_id: str) -> None:
    """The poison run is DEAD after max_attempts crashes, with the reason stored."""
    poison = runs(cluster.db)[run_id]
    assert poison.status == "DEAD", poison
    assert "max_attempts=5" in (poison.error or ""), poison
    assert poison.attempts == MAX_ATTEMPTS + 1, poison  # the claim that found it over the limit
    bodies = [e for e in read_ledger(cluster.ledger) if e.run == run_id and e.step_id == "1.2"]
    assert len(bodies) == MAX_ATTEMPTS, f"the crashing step ran {len(bodies)} times"
    assert {e.pid for e in bodies} <= cluster.killed_pids
    assert len(cluster.killed_pids) == MAX_ATTEMPTS


def test_poison_run_is_dead_lettered_after_max_attempts(cluster: Cluster) -> None:
    """A run that kills its worker on every attempt is dead-lettered after max_attempts, once."""
    args = ("--runs", "0", "--extra", "poison-000=poison")
    final = restart_until_clean(cluster, *args, rounds=MAX_ATTEMPTS + 2)
    check_poison_dead(cluster, "poison-000")
    assert "RunDeadLetteredError" in final.summary()["status"]["poison-000"]
    committed = steps(cluster.db)
    assert set(committed["poison-000"]) == {"1.1"}  # its first step committed once, kept
    check_ledger(
        [e for e in read_ledger(cluster.ledger) if e.step_id == "1.1"],
        committed,
        cluster.killed_pids,
    )
    dead = runs(cluster.db)["poison-000"]
    again = cluster.run(*args)  # a later worker leaves the dead run alone
    assert again.returncode == 0, again.describe()
    assert runs(cluster.db)["poison-000"] == dead
    assert "mai.run_dead_lettered" not in again.stdout
    assert integrity(cluster.db) == "ok"


def test_poison_run_does_not_take_down_the_runs_beside_it(cluster: Cluster) -> None:
    """Runs sharing a worker with a poison run still succeed; only the poison is dead-lettered."""
    args = ("--workflow", "chain8", "--runs", "4", "--extra", "poison-000=poison")
    final = restart_until_clean(cluster, *args, rounds=MAX_ATTEMPTS + 2)
    check_poison_dead(cluster, "poison-000")
    ids = run_ids(4)
    assert {r: final.summary()["status"][r] for r in ids} == dict.fromkeys(ids, "SUCCEEDED")
    check_complete(cluster.db, ids, 8)
    check_ledger(
        [e for e in read_ledger(cluster.ledger) if e.run != "poison-000"],
        {run: rows for run, rows in steps(cluster.db).items() if run != "poison-000"},
        cluster.killed_pids,
    )
    assert integrity(cluster.db) == "ok"


# -- durable time across a restart -----------------------------------------------------------
#
# The sleeps and deadlines here are an hour long: in a subprocess on the real clock, the hour
# "passes" by moving the recorded wake-up time or deadline (plain sqlite3, while no worker runs)
# to a moment just ahead, as if the process had stayed down that long. A restart that judged
# time by anything but the record would sleep a whole hour again and hit the worker's timeout;
# no assertion bounds how long anything took.

HOUR = "3600"


def committed_step(db: Path, run_id: str, kind: str) -> Any:
    """The first committed step of ``kind`` in the run, or ``None``."""
    rows = [r for r in steps(db).get(run_id, {}).values() if r.kind == kind]
    return rows[0] if rows else None


def skip_ahead(db: Path, run_id: str, timer: Any, seconds: float) -> float:
    """Move the run's recorded wake-up time to ``seconds`` from now; return it."""
    wake_at = time.time() + seconds
    with closing(connect(db)) as conn, conn:
        conn.execute(
            "UPDATE mai_steps SET output = ? WHERE run_id = ? AND step_id = ?",
            (json.dumps(wake_at), run_id, timer.step_id),
        )
    return wake_at


def test_durable_sleep_resumes_with_only_the_remaining_time(cluster: Cluster) -> None:
    """A durable sleep interrupted by SIGKILL wakes at its recorded time after a restart."""
    cluster.env["NAP"] = HOUR
    args = ("--workflow", "napper", "--runs", "1")
    first = cluster.spawn(*args)
    assert cluster.wait_open(first), first.describe()
    timer = wait_until(
        lambda: committed_step(cluster.db, "run-000", "timer"), 10, "the timer to be committed"
    )
    assert json.loads(timer.output) - timer.started_at == pytest.approx(3600, abs=0.01)
    cluster.kill(first)
    assert first.killed, first.describe()
    assert not read_ledger(cluster.ledger), "the step after the sleep ran before the kill"
    wake_at = skip_ahead(cluster.db, "run-000", timer, 1.0)
    second = cluster.run(*args)  # sleeping the hour again would outlast WORKER_TIMEOUT
    assert second.returncode == 0, second.describe()
    run = runs(cluster.db)["run-000"]
    assert run.status == "SUCCEEDED", run
    after = steps(cluster.db)["run-000"]
    assert json.loads(after[timer.step_id].output) == wake_at, "the timer was recorded again"
    # Woken at the recorded time (to the store clock's precision: the restart measures its
    # offset when it opens), never before it.
    assert after["1.2"].started_at >= wake_at - 0.05, "the restart woke before the recorded time"
    assert [e.pid for e in read_ledger(cluster.ledger)] == [second.pid]
    assert integrity(cluster.db) == "ok"


def test_sleeping_run_survives_more_worker_restarts_than_max_attempts(cluster: Cluster) -> None:
    """A run that only sleeps while its worker is killed 5 times is not dead-lettered as poison."""
    cluster.env["NAP"] = HOUR
    args = ("--workflow", "napper", "--runs", "1")
    timer = None
    for _ in range(MAX_ATTEMPTS):
        worker = cluster.spawn(*args)
        assert cluster.wait_open(worker), worker.describe()
        timer = wait_until(
            lambda: committed_step(cluster.db, "run-000", "timer"), 10, "the timer to be committed"
        )
        wait_until(
            lambda w=worker: pid_of(runs(cluster.db)["run-000"].owner) == w.pid,
            10,
            "this worker to own the sleeping run",
        )
        cluster.kill(worker)
        assert worker.killed, worker.describe()
    assert timer is not None
    # every restart happened during the sleep: no worker got past it (that step keeps a ledger)
    assert not read_ledger(cluster.ledger), "a worker got past the sleep before the last restart"
    skip_ahead(cluster.db, "run-000", timer, 0.5)
    final = cluster.run(*args)
    assert final.returncode == 0, final.describe()
    run = runs(cluster.db)["run-000"]
    assert run.status == "SUCCEEDED", run
    assert [e.pid for e in read_ledger(cluster.ledger)] == [final.pid]


@dataclass
class DeadlineScenario:
    """What happened to a run with an hour's deadline, killed, its deadline passed, restarted."""

    cluster: Cluster
    restart: Worker
    before: dict[str, Any]


@pytest.fixture(scope="module")
def expired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeadlineScenario]:
    """Run the deadline scenario once for the tests that examine it."""
    tmp = tmp_path_factory.mktemp("deadline")
    cluster = Cluster(db=tmp / "mai.db", ledger=tmp / "ledger.csv", env={"STEP_SLEEP": "0.3"})
    try:
        yield run_deadline_scenario(cluster)
    finally:
        cluster.close()


def run_deadline_scenario(cluster: Cluster) -> DeadlineScenario:
    """Start a run with an hour's deadline, kill it mid-run, let the deadline pass, restart."""
    args = ("--workflow", "chain8", "--runs", "1", "--deadline", HOUR)
    first = cluster.spawn(*args)
    assert cluster.wait_open(first), first.describe()
    created = wait_until(lambda: runs(cluster.db).get("run-000"), 10, "the run to be created")
    assert created.deadline == pytest.approx(created.created_at + 3600, abs=0.05)
    wait_until(lambda: steps(cluster.db).get("run-000"), 10, "a committed step")
    cluster.kill(first)
    assert first.killed, first.describe()
    before = steps(cluster.db).get("run-000", {})
    with closing(connect(cluster.db)) as conn, conn:  # the hour passes while no worker runs
        conn.execute("UPDATE mai_runs SET deadline = ? WHERE run_id = 'run-000'", (time.time(),))
    restart = cluster.run(*args)
    assert restart.returncode == 0, restart.describe()
    return DeadlineScenario(cluster, restart, before)


def test_deadline_is_enforced_after_a_restart(expired: DeadlineScenario) -> None:
    """A run whose wall-clock deadline passed while no worker ran fails at once on restart."""
    db = expired.cluster.db
    run = runs(db)["run-000"]
    assert run.status == "FAILED", run
    error = json.loads(run.error or "{}")
    assert "DeadlineExceeded" in error["type"], error
    assert "deadline" in error["message"], error
    assert run.updated_at >= expired.restart.spawned_at, "the restart did not fail the run"
    assert "DeadlineExceeded" in expired.restart.summary()["status"]["run-000"]
    assert steps(db)["run-000"] == expired.before, "a step was committed after the deadline"
    assert integrity(db) == "ok"


def test_no_step_body_starts_after_the_deadline_on_restart(expired: DeadlineScenario) -> None:
    """Resuming a run whose deadline has passed starts no step body (no late side effect)."""
    late = [e for e in read_ledger(expired.cluster.ledger) if e.pid == expired.restart.pid]
    assert not late, f"step bodies ran after the run's deadline had passed: {late}"
