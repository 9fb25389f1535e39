"""Fault tests: worker processes on one PostgreSQL, killed, paused, drained; the server restarted.

Every scenario checks the store with plain psycopg and the side-effect ledger kept outside it
(``check_ledger``): no loss, no step body re-executed after its commit, duplicates only inside
an interrupted attempt (a killed, paused or drained worker), one outcome per run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pgharness import (
    Fleet,
    check_all_succeeded,
    check_ledger,
    locked_runs,
    read_ledger,
    runs,
    sessions,
    steps,
    submit,
    wait_terminal,
    wait_until,
)

# Real processes killed and restarted, judged by their timing: these tests run one at a time
# (in one xdist worker, `--dist loadgroup`), beside the rest of the suite, not beside each other.
pytestmark = pytest.mark.xdist_group("pg-faults")

if TYPE_CHECKING:
    from mai_postgres.testing import PostgresCluster


def ids(n: int, prefix: str = "run") -> list[str]:
    """Run ids ``prefix-000`` ..."""
    return [f"{prefix}-{i:03d}" for i in range(n)]


def pid_of(worker: str | None) -> int:
    """The pid in a ``host:pid:name:incarnation`` worker identity."""
    assert worker is not None
    return int(worker.split(":")[1])


def check_fleet_ledger(fleet: Fleet, interrupted: set[int]) -> None:
    """The ledger rule: duplicates only from the ``interrupted`` pids or where a pid was fenced.

    A worker too slow to renew its lease (a loaded machine) legitimately loses a run to
    another; the evidence is the store refusing its ``(owner, epoch)``, which it logs as
    ``mai.lease_lost`` with the run's id (see ``fenced_runs``). Nothing is judged by timing.
    """
    check_ledger(read_ledger(fleet.ledger), steps(fleet.url), interrupted, fenced_runs(fleet))


LEASE_LOST = re.compile(r"mai\.lease_lost\b.*?\brun_id=(\S+)")


def fenced_runs(fleet: Fleet) -> dict[str, set[int]]:
    """Run id -> pids the store fenced on that run (they logged ``mai.lease_lost`` for it)."""
    out: dict[str, set[int]] = {}
    for worker in fleet.procs:
        text = _read(worker) if worker.alive() else worker.stdout + worker.stderr
        for run in LEASE_LOST.findall(text):
            out.setdefault(run, set()).add(worker.pid)
    return out


# -- SIGTERM drain ------------------------------------------------------------------------------


def test_sigterm_drains_and_another_worker_resumes_within_seconds(pg_url, tmp_path: Path):
    """SIGTERM cancels in-flight steps, releases the leases at once; another worker resumes."""
    fleet = Fleet(pg_url, tmp_path / "ledger.csv", env={"STEP_SLEEP": "0.2"})
    try:
        # An hour's lease: b can only resume the runs within the test because a released them.
        a = fleet.spawn("a", "--lease", "3600", "--concurrency", "4")
        run_ids = ids(4)
        submit(pg_url, "chain20", run_ids)
        wait_until(
            lambda: all(len(steps(pg_url).get(r, {})) >= 2 for r in run_ids), 30, "a to start"
        )
        b = fleet.spawn("b", "--lease", "30", "--concurrency", "4")
        fleet.signal(a, signal.SIGTERM)
        fleet.reap(a)
        assert a.returncode == 0, a.describe()

        def resumed_by_b() -> bool:
            rows = steps(pg_url)
            return all(
                any(pid_of(s.worker) == b.pid for s in rows.get(r, {}).values()) for r in run_ids
            )

        wait_until(resumed_by_b, 30, "b to resume every run")
        wait_terminal(pg_url, run_ids, 60, fleet)
        check_all_succeeded(pg_url, run_ids, 20)
        rows = [s for r in run_ids for s in steps(pg_url)[r].values()]
        first_b = min(s.started_at for s in rows if pid_of(s.worker) == b.pid)
        late = [s for s in rows if pid_of(s.worker) == a.pid and s.finished_at > first_b]
        assert not late, f"the drained worker committed after b took over: {late}"
        assert all(runs(pg_url)[r].attempts == 1 for r in run_ids), "a release is not an attempt"
        assert "mai.worker_draining" in a.stderr + a.stdout
        check_fleet_ledger(fleet, {a.pid})
    finally:
        fleet.stop_all()


# -- poison runs --------------------------------------------------------------------------------


def test_poison_run_is_dead_lettered_and_never_blocks_the_queue(pg_url, tmp_path: Path):
    """A run that kills its worker on every attempt goes DEAD after max_attempts; others finish."""
    fleet = Fleet(pg_url, tmp_path / "ledger.csv")
    args = ("--lease", "1", "--max-attempts", "3", "--concurrency", "2", "--poll", "0.2")
    try:
        submit(pg_url, "poison", ["poison-000"])
        good = ids(6, "good")
        submit(pg_url, "chain5", good)
        live = [fleet.spawn(f"w{k}", *args) for k in range(2)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = runs(pg_url)
            if all(rows[r].status not in {"PENDING", "RUNNING"} for r in [*good, "poison-000"]):
                break
            for k, w in enumerate(live):
                if not w.alive():  # the poison killed it: a supervisor restarts it
                    fleet.reap(w)
                    fleet.killed.add(w.pid)
                    live[k] = fleet.spawn(f"w{k}", *args)
            time.sleep(0.1)
        rows = runs(pg_url)
        poison = rows["poison-000"]
        assert poison.status == "DEAD", poison
        assert "max_attempts=3" in (poison.error or ""), poison
        check_all_succeeded(pg_url, good, 5)
        crashes = [
            e for e in read_ledger(fleet.ledger) if e.run == "poison-000" and e.step_id == "1.2"
        ]
        assert len(crashes) == 3, f"the crashing step ran {len(crashes)} times, not max_attempts"
        check_ledger(
            [e for e in read_ledger(fleet.ledger) if e.run != "poison-000"],
            {r: v for r, v in steps(pg_url).items() if r != "poison-000"},
            fleet.killed,
        )
    finally:
        fleet.stop_all()


# -- SIGKILL chaos ------------------------------------------------------------------------------


def chaos(pg_url: str, tmp_path: Path, n_runs: int, seconds: float, step_sleep: float) -> None:
    """3 workers; SIGKILL a random one every 2 s for ``seconds`` and restart it; then check."""
    fleet = Fleet(pg_url, tmp_path / "ledger.csv", env={"STEP_SLEEP": str(step_sleep)})
    args = ("--lease", "2", "--concurrency", "4", "--poll", "0.5")
    rng = random.Random(n_runs)  # noqa: S311 - which worker to kill
    run_ids = ids(n_runs)
    try:
        submit(pg_url, "chain20", run_ids)
        live = [fleet.spawn(f"w{k}", *args) for k in range(3)]
        end = time.monotonic() + seconds
        kills = 0
        while time.monotonic() < end:
            time.sleep(2.0)
            rows = runs(pg_url)
            if all(rows[r].status == "SUCCEEDED" for r in run_ids):
                break
            # only a worker that is up (it may claim runs) is a victim; its replacement starts
            # in the background: on a loaded machine starting one takes seconds, and waiting
            # for it here would space the kills out until the runs finish before the third
            up = [k for k in range(3) if fleet.opened(live[k])]
            if not up:
                continue
            k = rng.choice(up)
            fleet.kill(live[k])
            kills += 1
            live[k] = fleet.spawn(f"w{k}", *args, wait=False)
        wait_terminal(pg_url, run_ids, 120, fleet)
        assert kills >= 3, "the chaos never killed a worker mid-run: the test proved nothing"
        rows = runs(pg_url)
        ok = sum(1 for r in run_ids if rows[r].status == "SUCCEEDED")
        assert ok >= 0.95 * n_runs, f"only {ok} of {n_runs} runs succeeded"
        check_all_succeeded(pg_url, run_ids, 20)
        check_fleet_ledger(fleet, fleet.killed)
        ledger = read_ledger(fleet.ledger)
        assert len(ledger) >= 20 * n_runs
    finally:
        fleet.stop_all()


def test_random_sigkills_lose_nothing(pg_url, tmp_path: Path):
    """3 workers, 60 runs of 20 steps, a random worker SIGKILLed every 2 s for 20 s: all done."""
    chaos(pg_url, tmp_path, n_runs=60, seconds=20, step_sleep=0.1)


@pytest.mark.chaos
def test_random_sigkills_lose_nothing_long(pg_url, tmp_path: Path):
    """The issue's full scenario: 200 runs of 20 steps, SIGKILL every 2 s for 60 s."""
    chaos(pg_url, tmp_path, n_runs=200, seconds=60, step_sleep=0.15)


# -- SIGSTOP past the lease ---------------------------------------------------------------------


def test_a_paused_worker_is_fenced_after_it_wakes(pg_url, tmp_path: Path):
    """SIGSTOP a worker for three lease periods; another takes over; its late writes fail."""
    lease = 1.5
    fleet = Fleet(pg_url, tmp_path / "ledger.csv", env={"STEP_SLEEP": "0.1"})
    args = ("--lease", str(lease), "--concurrency", "4", "--poll", "0.2")
    run_ids = ids(4)
    try:
        a = fleet.spawn("a", *args)
        submit(pg_url, "chain20", run_ids)
        wait_until(
            lambda: all(len(steps(pg_url).get(r, {})) >= 2 for r in run_ids), 30, "a to start"
        )
        before = runs(pg_url)
        assert all(pid_of(before[r].owner) == a.pid for r in run_ids)
        fleet.signal(a, signal.SIGSTOP)
        paused = time.time()
        # b's own lease is long: on a loaded machine a short one may lapse and a (woken) take
        # the run back, legitimately, which would blur what this test is about: a's writes
        b = fleet.spawn("b", "--lease", "60", "--concurrency", "4", "--poll", "0.2")
        wait_until(
            lambda: all(pid_of(runs(pg_url)[r].owner or "x:0") == b.pid for r in run_ids),
            30,
            "b to take every run over",
        )
        remaining = paused + 3 * lease - time.time()
        if remaining > 0:
            time.sleep(remaining)  # the scenario: paused for three lease periods
        taken = runs(pg_url)
        assert all(taken[r].epoch > before[r].epoch for r in run_ids)
        asleep = steps(pg_url)  # whatever a committed, it committed before b took over
        fleet.signal(a, signal.SIGCONT)
        wait_terminal(pg_url, run_ids, 60, fleet)
        check_all_succeeded(pg_url, run_ids, 20)
        committed = steps(pg_url)
        check_paused_worker_fenced(fleet, a, run_ids, committed, asleep)
    finally:
        fleet.stop_all()


def check_paused_worker_fenced(fleet, a, run_ids, committed, asleep) -> None:
    """No step of the paused worker ``a`` landed after it woke; it noticed its lost leases."""
    late = [
        (r, s.step_id)
        for r in run_ids
        for s in committed[r].values()
        if pid_of(s.worker) == a.pid and s.step_id not in asleep.get(r, {})
    ]
    assert not late, f"writes of the paused worker were accepted after it woke: {late}"
    wait_until(lambda: "mai.lease_lost" in _read(a), 30, "a to notice its lost leases")
    check_fleet_ledger(fleet, {a.pid})


def stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP): state ``T`` in ``/proc/PID/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"


def test_a_worker_paused_inside_a_transaction_cannot_keep_its_runs(pg_url, tmp_path: Path):
    """SIGSTOP a worker right after a transaction's first statement: b still takes every run."""
    # Every commit of a `clocked` run is a transaction whose first statement locks the run's
    # row; the claim's FOR UPDATE SKIP LOCKED skips locked rows, so a session the server never
    # ends keeps those runs from every other worker, whatever their leases say. The server
    # must end it (idle_in_transaction_session_timeout, shortened here to 1 s); then the
    # fencing holds as for any paused owner: none of its writes lands after it wakes.
    url = f"{pg_url}?options=-c%20idle_in_transaction_session_timeout%3D1000"
    flag = tmp_path / "pause"
    fleet = Fleet(url, tmp_path / "ledger.csv", env={"STEP_SLEEP": "0.1"})
    run_ids = ids(4)

    def step_rows(run: str) -> list[str]:
        return [s.step_id for s in steps(url).get(run, {}).values() if s.name == "step"]

    try:
        pause = {"MAI_PAUSE_AT": f"inside_transaction:{flag}"}
        a = fleet.spawn("a", "--lease", "1.5", "--concurrency", "4", "--poll", "0.2", env=pause)
        submit(url, "clocked", run_ids)
        wait_until(lambda: all(len(step_rows(r)) >= 2 for r in run_ids), 30, "a to start")
        flag.touch()  # a stops in its next transaction, a step commit of one of its runs
        wait_until(lambda: stopped(a.pid), 30, "a to pause inside a transaction")
        assert flag.read_text() == "paused inside_transaction\n"
        held, locked, before = sessions(url), locked_runs(url), runs(url)
        assert all(pid_of(before[r].owner) == a.pid for r in run_ids), before
        assert all(before[r].status == "RUNNING" for r in run_ids), before
        asleep = steps(url)
        b = fleet.spawn("b", "--lease", "60", "--concurrency", "4", "--poll", "0.2")
        try:
            wait_until(
                lambda: all(pid_of(runs(url)[r].owner or "x:0") == b.pid for r in run_ids),
                30,
                "b to take every run over",
            )
        except AssertionError as exc:
            state = {r: (row.status, row.owner, row.epoch) for r, row in runs(url).items()}
            raise AssertionError(
                f"{exc}\nruns: {state}\nrow-locked when a paused: {sorted(locked)}\n"
                f"sessions then:\n{held}\nsessions now:\n{sessions(url)}"
            ) from None
        fleet.signal(a, signal.SIGCONT)
        wait_terminal(url, run_ids, 60, fleet)
        final = runs(url)
        assert all(final[r].status == "SUCCEEDED" and final[r].output == "20" for r in run_ids)
        assert all(len(step_rows(r)) == 20 for r in run_ids)
        committed = steps(url)
        check_paused_worker_fenced(fleet, a, run_ids, committed, asleep)
    finally:
        fleet.stop_all()


def _read(worker) -> str:
    """What a live worker printed so far (stdout and stderr, read without blocking)."""
    import fcntl

    for stream, attr in ((worker.proc.stdout, "stdout"), (worker.proc.stderr, "stderr")):
        fd = stream.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            chunk = b""
        setattr(worker, attr, getattr(worker, attr) + chunk.decode(errors="replace"))
    return worker.stdout + worker.stderr


# -- the database restarts ----------------------------------------------------------------------


def test_workers_reconnect_after_a_database_restart(own_cluster: PostgresCluster, tmp_path: Path):
    """`pg_ctl stop -m immediate` then start mid-run: workers reconnect, every run completes."""
    url = own_cluster.create_database("restart")
    fleet = Fleet(url, tmp_path / "ledger.csv", env={"STEP_SLEEP": "0.05"})
    args = ("--lease", "30", "--concurrency", "4")
    run_ids = ids(8)
    try:
        live = [fleet.spawn(f"w{k}", *args) for k in range(2)]
        submit(url, "chain20", run_ids)
        wait_until(lambda: sum(len(v) for v in steps(url).values()) >= 20, 30, "progress")
        own_cluster.restart("immediate")
        wait_terminal(url, run_ids, 90, fleet)
        check_all_succeeded(url, run_ids, 20)
        assert all(w.alive() for w in live), "the workers survived the restart without one"
        check_fleet_ledger(fleet, set())
        final = runs(url)
        assert all(final[r].attempts == 1 for r in run_ids), "no run changed hands"
        assert json.loads(final[run_ids[0]].output or "0") == 20
    finally:
        fleet.stop_all()


# -- tracing across worker processes ------------------------------------------------------------


def test_a_runs_spans_form_one_tree_across_worker_processes(pg_url, tmp_path: Path):
    """Two worker processes share one run (SIGTERM handover): all its spans form one trace."""
    spans_file = tmp_path / "spans.jsonl"
    fleet = Fleet(pg_url, tmp_path / "ledger.csv", env={"STEP_SLEEP": "0.1"})
    args = ("--lease", "30", "--otel", str(spans_file))
    try:
        a = fleet.spawn("a", *args)
        submit(pg_url, "chain20", ["traced"])
        wait_until(lambda: len(steps(pg_url).get("traced", {})) >= 3, 30, "a to start")
        fleet.signal(a, signal.SIGTERM)
        fleet.reap(a)
        b = fleet.spawn("b", *args)
        wait_terminal(pg_url, ["traced"], 60, fleet)
        fleet.signal(b, signal.SIGTERM)
        fleet.reap(b)
    finally:
        fleet.stop_all()
    (context,) = _query_trace_context(pg_url, "traced")
    _, trace_id, parent_id, _ = json.loads(context)["traceparent"].split("-")
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert {s["pid"] for s in spans} == {a.pid, b.pid}, "both workers emitted spans"
    assert {s["trace"] for s in spans} == {trace_id}, "every span is in the run's trace"
    tops = [s for s in spans if s["step"] == "1"]
    assert len(tops) == 2, "one top-level span per attempt"
    assert {s["parent"] for s in tops} == {parent_id}, "both continue the submitter's context"
    ids = {s["span"] for s in spans} | {parent_id}
    assert all(s["parent"] in ids for s in spans), "no span has a parent outside the tree"


def _query_trace_context(url: str, run_id: str) -> tuple[str]:
    """The trace context stored with a run."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT trace_context FROM mai_runs WHERE run_id = %s", (run_id,))
        return row.fetchone()  # type: ignore[return-value]
