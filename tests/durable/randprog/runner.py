"""Run random programs as durable runs in worker subprocesses under SIGKILLs and store faults.

:func:`drive` starts ``worker.py`` on one SQLite file again and again: each life is SIGKILLed at
a random moment (until the wanted number of kills landed while runs were unfinished), programs
are released a few per life (so kills keep landing amid work), the test driver answers the
programs' ``mai.wait_for`` with ``rt.send`` from its own Runtime at random moments, and store
faults are injected: another connection holding the write lock for a while, and the database
files made briefly read-only (``chattr +i`` as root, else ``chmod``). Once every run is
terminal, :func:`check` compares everything with the interpreter's predictions and the ledger.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from harness import REPO, Cluster, Worker, integrity, pid_of, runs, steps

import mai

from .generator import Program, Shapes, digest, generate, payload_value
from .interpreter import Prediction, mismatch, predict

WORKER = Path(__file__).resolve().parent / "worker.py"

TIMER_SLACK = 0.05
"""Seconds a ``mai.sleep`` may return before its recorded wake-up time, in wall-clock terms.

A runtime judges timers by ``time.time()`` plus an offset to the store's clock measured when it
opens; for SQLite that measurement's error (about half a store round trip, several ms on a
loaded machine) lets a resumed timer fire that much early by the wall clock (issue 11, item 7:
one clock). Seen up to 8 ms here; this bound should drop to 0 once there is one clock.
"""

LIFE_LIMIT = 90.0
"""Seconds one worker life may last before the test fails (no test hangs forever)."""


@dataclass(frozen=True)
class Plan:
    """How hard to shake the programs."""

    programs: int
    kills: int  # SIGKILLs that must land while runs are unfinished
    shapes: Shapes = field(default_factory=Shapes)
    per_life: int | None = None  # programs released per life (default: spread over the kills)
    kill_after: tuple[float, float] = (0.02, 0.3)  # seconds after "open"
    faults: tuple[str, ...] = ("", "lock", "", "readonly")  # life i gets faults[i % len]
    lock_seconds: tuple[float, float] = (0.2, 1.0)
    readonly_seconds: tuple[float, float] = (0.2, 0.8)
    busy_timeout: float | None = None  # the worker's store URL parameter (None: the default)
    tolerate_teardown: bool = False  # a worker dying of a store error counts as a crash


@dataclass
class Report:
    """What happened while driving."""

    seed: int
    programs: list[Program]
    predictions: dict[str, Prediction]
    cluster: RandCluster
    kills: int = 0  # every SIGKILL
    kills_mid_run: int = 0  # those that landed while a released run was unfinished
    faults: Counter[str] = field(default_factory=Counter)
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    final: dict[str, Any] = field(default_factory=dict)  # the last worker's results
    outcomes: dict[str, list[Any]] = field(default_factory=dict)  # every worker's, per run
    lives: list[float] = field(default_factory=list)  # seconds each worker life lasted
    failed_lives: list[str] = field(default_factory=list)  # non-zero exits not by SIGKILL
    store_errors: int = 0  # lives that logged a store error (the faults did bite)
    teardowns: set[int] = field(default_factory=set)  # pids a store error killed (tolerated)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"seed={self.seed} programs={len(self.programs)} lives={len(self.cluster.workers)} "
            f"kills={self.kills} (mid-run {self.kills_mid_run}) faults={dict(self.faults)} "
            f"messages={sum(self.sent.values())} failed_lives={len(self.failed_lives)} "
            f"lives_with_store_errors={self.store_errors} teardowns={len(self.teardowns)} "
            f"last_life={self.lives[-1] if self.lives else 0:.1f}s "
            f"seconds={self.seconds:.1f}"
        )


class RandCluster(Cluster):
    """Worker processes running ``randprog/worker.py`` (the harness runs its own script).

    mai's log lines go to one file per worker, not to the stdout pipe: the pipe is read only
    when the worker ends, and a worker logging many retries would block on a full pipe.
    """

    def __init__(self, db: Path, ledger: Path) -> None:
        super().__init__(db=db, ledger=ledger)
        self.logs: dict[int, Path] = {}

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``worker.py DB *args`` with the ledger in the environment."""
        full_env = {k: v for k, v in os.environ.items() if k not in {"MAI_CRASH_AT", "MAI_TRACE"}}
        log = self.ledger.parent / f"worker-{len(self.workers)}.log"
        full_env.update(
            {"LEDGER": str(self.ledger), "WORKER_LOG": str(log), "PYTHONUNBUFFERED": "1"}
        )
        full_env.update(self.env)
        full_env.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(self.db), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=full_env,
            cwd=REPO,
        )
        worker = Worker(proc, time.time())
        self.workers.append(worker)
        self.logs[proc.pid] = log
        return worker

    def log(self, worker: Worker) -> str:
        """Everything mai logged in the worker (its log file)."""
        path = self.logs.get(worker.pid)
        return path.read_text() if path is not None and path.exists() else ""


# -- store faults ------------------------------------------------------------------------------


class HeldLock:
    """Another connection holding the write lock (``BEGIN IMMEDIATE``) until :meth:`release`."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._held, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self.error: BaseException | None = None

    def _hold(self) -> None:
        try:
            with closing(sqlite3.connect(self.db, isolation_level=None, timeout=10)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                self._held.set()
                self._done.wait(30)
                conn.execute("ROLLBACK")
        except BaseException as exc:  # reported by release(), never swallowed
            self.error = exc
            self._held.set()

    def acquire(self) -> None:
        """Take the lock (waiting for the worker's current transaction)."""
        self._thread.start()
        self._held.wait(15)

    def release(self) -> None:
        """Give the lock back."""
        self._done.set()
        self._thread.join(15)
        if self.error is not None:
            raise self.error


class ReadOnly:
    """The database file and its ``-wal`` file made unwritable until :meth:`undo`.

    The ``-shm`` file stays writable: SQLite maps it into memory, and a store to a mapped page
    of an immutable file kills the process with SIGBUS (a crash, not a store error).
    """

    def __init__(self, db: Path) -> None:
        self.paths = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
        self.modes: dict[Path, int] = {}

    def apply(self) -> None:
        """``chattr +i`` as root (root writes through ``chmod``), else ``chmod a-w``."""
        for p in self.paths:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "+i", str(p)], check=True)
            else:
                self.modes[p] = p.stat().st_mode
                p.chmod(0o444)

    def undo(self) -> None:
        """Make the files writable again."""
        for p in self.paths:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(p)], check=True)
            elif p in self.modes:
                p.chmod(self.modes[p])


# -- the driver --------------------------------------------------------------------------------


def run_status(db: Path) -> dict[str, str]:
    """Every run's status, read with plain sqlite3 (empty before the schema exists)."""
    try:
        return {r: row.status for r, row in runs(db).items()}
    except sqlite3.OperationalError:  # e.g. the file is being created
        return {}


async def _send(db: Path, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    async with mai.Runtime(f"sqlite:///{db}?synchronous=normal&busy_timeout=2") as rt:
        done = []
        for run_id, topic in batch:
            await rt.send(run_id, topic, payload_value(run_id, topic))
            done.append((run_id, topic))
        return done


def send(db: Path, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Send messages through the public API from this (the driver's) process."""
    try:
        return trio.run(_send, db, batch)
    except mai.StoreError:  # e.g. the worker holds the lock too long: send them later
        return []


def drive(tmp: Path, seed: int, plan: Plan) -> Report:
    """Run ``plan.programs`` random programs to completion under kills and faults."""
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - test schedule, not cryptography
    seeds = [rng.randrange(10**9) for _ in range(plan.programs)]
    programs = [generate(s, plan.shapes) for s in seeds]
    predictions = {p.run_id: predict(p) for p in programs}
    cluster = RandCluster(db=tmp / "mai.db", ledger=tmp / "ledger.jsonl")
    report = Report(seed, programs, predictions, cluster)
    messages = [
        (p.run_id, topic)
        for p in programs
        for topic, n in predictions[p.run_id].messages.items()
        for _ in range(n)
    ]
    rng.shuffle(messages)
    base = [
        "--seeds",
        ",".join(map(str, seeds)),
        "--budget",
        str(plan.shapes.budget),
        "--depth",
        str(plan.shapes.max_depth),
        "--width",
        str(plan.shapes.width),
        "--exclude",
        ",".join(sorted(plan.shapes.exclude)),
    ]
    released = 0
    per_life = plan.per_life or max(1, -(-plan.programs // max(plan.kills, 1)))
    try:
        for _ in range(plan.kills * 3 + 30):
            released = min(plan.programs, released + per_life)
            worker = cluster.spawn(*base, "--start", str(released), *_busy(plan))
            began = time.monotonic()
            finished = _life(report, plan, rng, worker, released, messages)
            report.lives.append(time.monotonic() - began)
            if finished:
                break
        else:
            msg = f"runs still unfinished after {len(cluster.workers)} worker lives"
            raise AssertionError(msg)
    finally:
        report.seconds = time.monotonic() - started
    return report


def _busy(plan: Plan) -> list[str]:
    return [] if plan.busy_timeout is None else ["--busy-timeout", str(plan.busy_timeout)]


def _life(
    report: Report,
    plan: Plan,
    rng: random.Random,
    worker: Worker,
    released: int,
    messages: list[tuple[str, str]],
) -> bool:
    """One worker life; ``True`` when it finished every run of every program."""
    cluster = report.cluster
    db = cluster.db
    wanted = {p.run_id for p in report.programs[:released]}
    opened = cluster.wait_open(worker, timeout=LIFE_LIMIT)
    t0 = time.monotonic()
    delay = rng.uniform(*plan.kill_after)
    kill_at = t0 + delay if report.kills_mid_run < plan.kills else None
    fault: tuple[str, float, float] | None = None
    kind = plan.faults[(len(cluster.workers) - 1) % len(plan.faults)] if plan.faults else ""
    if kind:  # it starts before the kill (if any); the kill may land while it lasts
        seconds = plan.lock_seconds if kind == "lock" else plan.readonly_seconds
        fault = (kind, t0 + rng.uniform(0, delay), rng.uniform(*seconds))
    active: HeldLock | ReadOnly | None = None
    fault_end = 0.0
    next_send = t0 + rng.uniform(0.05, 0.4)
    try:
        while opened:
            now = time.monotonic()
            if fault is not None and active is None and now >= fault[1]:
                active = HeldLock(db) if fault[0] == "lock" else ReadOnly(db)
                if isinstance(active, HeldLock):
                    active.acquire()
                else:
                    active.apply()
                report.faults[fault[0]] += 1
                fault_end, fault = time.monotonic() + fault[2], None
            if active is not None and now >= fault_end:
                _undo(active)
                active = None
            if active is None and messages and now >= next_send:
                _send_some(report, rng, messages)
                next_send = now + rng.uniform(0.05, 0.4)
            if kill_at is not None and now >= kill_at:
                status = run_status(db)
                unfinished = [r for r in wanted if status.get(r) not in {"SUCCEEDED", "FAILED"}]
                cluster.kill(worker)
                report.store_errors += "store_error" in cluster.log(worker)
                report.kills += 1
                report.kills_mid_run += bool(unfinished) and worker.killed
                return False
            if worker.proc.poll() is not None:
                break
            if now - t0 > LIFE_LIMIT:
                stuck = _stuck(report, wanted, messages)
                worker.proc.send_signal(signal.SIGUSR1)  # its threads' stacks, on stderr
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(timeout=2)
                cluster.kill(worker)
                msg = f"a worker life lasted over {LIFE_LIMIT}s; {stuck}\n{_tail(cluster, worker)}"
                raise AssertionError(msg)
            time.sleep(0.01)  # the driver's polling period, not a wait for the system to settle
    finally:
        if active is not None:
            _undo(active)
    cluster.finish(worker)
    report.store_errors += "store_error" in cluster.log(worker)
    if worker.returncode != 0:
        if plan.tolerate_teardown and worker.returncode > 0 and _store_teardown(worker):
            report.teardowns.add(worker.pid)
        else:
            report.failed_lives.append(_tail(cluster, worker))
        return False
    results = worker.summary()["results"]
    report.final.update(results)
    for run_id, result in results.items():
        report.outcomes.setdefault(run_id, []).append(result)
    return released == len(report.programs) and set(results) >= {p.run_id for p in report.programs}


def _stuck(report: Report, wanted: set[str], messages: list[tuple[str, str]]) -> str:
    """The unfinished runs: status, owner, attempts, last steps and messages not yet sent."""
    all_runs, all_steps = runs(report.cluster.db), steps(report.cluster.db)
    lines = []
    for run_id in sorted(wanted):
        run = all_runs.get(run_id)
        if run is not None and run.status in {"SUCCEEDED", "FAILED", "DEAD", "CANCELLED"}:
            continue
        last = sorted(all_steps.get(run_id, {}).values(), key=lambda r: r.finished_at)[-3:]
        pending = [t for r, t in messages if r == run_id]
        lines.append(
            f"{run_id}: {run and (run.status, run.owner, run.attempts)} last steps "
            f"{[(r.step_id, r.name, r.kind) for r in last]} unsent messages {pending}\n"
            + next(p.root.describe() for p in report.programs if p.run_id == run_id)
        )
    return "unfinished runs:\n" + "\n".join(lines)


def _tail(cluster: RandCluster, worker: Worker) -> str:
    """The worker's output and log without the retry chatter, cut to its end."""
    keep = [
        ln
        for ln in (cluster.log(worker) + worker.stdout + "\n" + worker.stderr).splitlines()
        if "mai.retry" not in ln and "retries_exhausted" not in ln
    ]
    return f"pid {worker.pid} rc={worker.returncode}\n" + "\n".join(keep)[-12000:]


def _store_teardown(worker: Worker) -> bool:
    """Whether the worker died of a StoreError escaping the Runtime (issue 11, defect 10)."""
    last = worker.stderr.strip().splitlines()[-1:] or [""]
    return "_errors.Store" in last[0] or "StoreError" in worker.stderr.split("Traceback")[-1]


def _undo(active: HeldLock | ReadOnly) -> None:
    if isinstance(active, HeldLock):
        active.release()
    else:
        active.undo()


def _send_some(report: Report, rng: random.Random, messages: list[tuple[str, str]]) -> None:
    """Send a few pending messages whose runs exist (some before their wait starts)."""
    exists = set(run_status(report.cluster.db))
    ready = [m for m in messages if m[0] in exists]
    batch = ready[: rng.randint(1, 3)]
    for m in send(report.cluster.db, batch):
        messages.remove(m)
        report.sent[m] += 1


# -- the checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One ledger line."""

    index: int
    kind: str
    key: str
    sid: str
    pid: int
    name: str
    outcome: str
    t: float
    data: dict[str, Any]

    @property
    def run(self) -> str:
        """The run id (the idempotency key is ``<run id>/<step id>``)."""
        return self.key.split("/")[0]


def read_ledger(path: Path) -> list[Line]:
    """Every line of the ledger, in the order the bodies wrote them."""
    if not path.exists():
        return []
    out = []
    for i, text in enumerate(path.read_text().splitlines()):
        d = json.loads(text)
        out.append(
            Line(i, d["kind"], d["key"], d["sid"], d["pid"], d["name"], d["outcome"], d["t"], d)
        )
    return out


def crashed_pids(cluster: Cluster) -> set[int]:
    """Pids of the workers that died of a signal (our SIGKILLs, or SIGBUS and the like)."""
    return {w.pid for w in cluster.workers if w.returncode is not None and w.returncode < 0}


def check(report: Report) -> list[str]:
    """Every violation found (an empty list when the run of every program was right)."""
    cluster = report.cluster
    db = cluster.db
    problems: list[str] = []
    if integrity(db) != "ok":
        problems.append(f"PRAGMA integrity_check: {integrity(db)}")
    all_runs, all_steps = runs(db), steps(db)
    ledger = read_ledger(cluster.ledger)
    killed = crashed_pids(cluster) | report.teardowns
    problems += [f"a worker exited with an error: {life[-3000:]}" for life in report.failed_lives]
    problems += _check_results(report, all_runs)
    problems += _check_ledger(report, all_steps, ledger, killed)
    problems += _check_messages(report, db, all_steps)
    problems += _check_timers(all_steps, ledger)
    return problems


def _check_results(report: Report, all_runs: dict[str, Any]) -> list[str]:
    problems = []
    for p in report.programs:
        run = all_runs.get(p.run_id)
        expected = report.predictions[p.run_id].result
        if run is None:
            problems.append(f"{p.run_id}: no run row")
            continue
        if run.status != "SUCCEEDED":
            problems.append(f"{p.run_id}: {run.status} {run.error}")
            continue
        if run.lease_until is not None:
            problems.append(f"{p.run_id}: a lease is left behind ({run.owner})")
        reported = {json.dumps(o, sort_keys=True) for o in report.outcomes.get(p.run_id, [])}
        if len(reported) > 1:
            problems.append(f"{p.run_id}: workers reported different outcomes {reported}")
        bad = mismatch(expected, json.loads(run.output or "null"), f"{p.run_id} stored result")
        if bad:
            problems.append(bad)
        final = report.final.get(p.run_id)
        if final is None or "ok" not in final:
            problems.append(f"{p.run_id}: handle.result() gave {final}")
            continue
        bad = mismatch(expected, final["ok"], f"{p.run_id} handle.result()")
        if bad:
            problems.append(bad)
    return problems


def _check_ledger(
    report: Report, all_steps: dict[str, Any], ledger: list[Line], killed: set[int]
) -> list[str]:
    """At-least-once bodies, never again after the commit, duplicates only in killed pids."""
    problems = []
    names = {p.run_id: _names(p) for p in report.programs}
    by_key: dict[str, list[Line]] = defaultdict(list)
    for line in ledger:
        if line.kind != "woke":
            by_key[line.key].append(line)
    committed_keys = set()
    for run_id, rows in all_steps.items():
        counts: Counter[str] = Counter()
        for sid, row in rows.items():
            if row.kind != "call":
                continue
            counts[row.name] += 1
            if row.name not in names.get(run_id, set()):
                problems.append(f"{run_id} {sid}: committed a step of unknown module {row.name}")
                continue
            key = f"{run_id}/{sid}"
            committed_keys.add(key)
            problems += _check_committed(key, row, by_key.get(key, []), killed)
        prediction = report.predictions.get(run_id)
        if prediction is not None:
            want = +prediction.commits
            got = +Counter({n: c for n, c in counts.items() if n not in prediction.silent})
            if got != want:
                problems.append(f"{run_id}: committed steps per module {dict(got)} != {dict(want)}")
            silent = {n: c for n, c in counts.items() if n in prediction.silent}
            if silent:
                problems.append(f"{run_id}: Race losers committed {silent}")
    for key, lines in by_key.items():
        if key in committed_keys:
            continue
        for line in lines:
            if line.outcome == "ok" and line.pid not in killed:
                problems.append(
                    f"{key} ({line.name}): body completed in surviving pid {line.pid} but its "
                    "step was never committed"
                )
    problems += _check_readings(by_key)
    return problems


def _names(program: Program) -> set[str]:
    out = set()
    for n in program.root.walk():
        out.update({n.name, f"{n.name}_pred", f"{n.name}_until", f"{n.name}_split"})
    return out


def _check_committed(key: str, row: Any, lines: list[Line], killed: set[int]) -> list[str]:
    committer = pid_of(row.worker)
    mine = [ln for ln in lines if ln.pid == committer and ln.outcome == "ok"]
    where = f"{key} ({row.name})"
    if not mine:
        return [f"{where}: committed by pid {committer}, which never ran its body"]
    problems = []
    if len(mine) > 1:
        problems.append(f"{where}: body ran {len(mine)} times in pid {committer} (one commit)")
    after = [ln for ln in lines if ln.index > mine[0].index]
    if after:
        problems.append(
            f"{where}: body ran again after the execution that was committed (pids "
            f"{[(ln.pid, ln.outcome) for ln in after]}, committed by {committer})"
        )
    early = {ln.pid for ln in lines if ln.outcome == "ok" and ln.pid != committer} - killed
    if early:
        problems.append(f"{where}: duplicate body execution by surviving pids {sorted(early)}")
    per_pid = Counter(ln.pid for ln in lines if ln.outcome == "ok")
    twice = {pid for pid, n in per_pid.items() if n > 1 and pid != committer}
    if twice:
        problems.append(f"{where}: body completed twice in one process {sorted(twice)}")
    if mine[-1].data.get("out") != digest(json.loads(row.output)):
        problems.append(f"{where}: committed output is not what the committed execution returned")
    return problems


def _check_readings(by_key: dict[str, list[Line]]) -> list[str]:
    """``mai.random()`` gives the same numbers at the same place in every execution."""
    problems = []
    for key, lines in by_key.items():
        rands = {
            json.dumps([r for r in ln.data["reads"] if "rand" in r])
            for ln in lines
            if ln.kind == "code"
        }
        if len(rands) > 1:
            problems.append(f"{key}: mai.random() readings differ between executions: {rands}")
    return problems


def _check_messages(report: Report, db: Path, all_steps: dict[str, Any]) -> list[str]:
    """Every sent message was delivered exactly once, to one wait, and every wait got one."""
    problems = []
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT run_id, topic, consumed_by FROM mai_events").fetchall()
    stored: Counter[tuple[str, str]] = Counter((r, t) for r, t, _ in rows)
    if stored != report.sent:
        problems.append(f"messages stored {dict(stored)} != sent {dict(report.sent)}")
    consumers: dict[str, list[str]] = defaultdict(list)
    for run_id, topic, consumed_by in rows:
        if consumed_by is None:
            problems.append(f"{run_id}: message on {topic} never delivered")
            continue
        consumers[run_id].append(consumed_by)
        row = all_steps.get(run_id, {}).get(consumed_by)
        if row is None or row.kind != "event":
            problems.append(f"{run_id}: message on {topic} consumed by {consumed_by}, no wait step")
    for run_id, sids in consumers.items():
        if len(set(sids)) != len(sids):
            problems.append(f"{run_id}: one wait consumed several messages {sorted(sids)}")
    for p in report.programs:
        waits = [s for s in all_steps.get(p.run_id, {}).values() if s.kind == "event"]
        want = sum(report.predictions[p.run_id].messages.values())
        if len(waits) != want:
            problems.append(f"{p.run_id}: {len(waits)} waits recorded, {want} predicted")
    return problems


def _check_timers(all_steps: dict[str, Any], ledger: list[Line]) -> list[str]:
    """No ``mai.sleep`` returned before its recorded wake-up time."""
    problems = []
    for line in ledger:
        if line.kind != "woke":
            continue
        sid = f"{line.sid}.{line.data['op'] + 1}"
        timer = all_steps.get(line.run, {}).get(sid)
        if timer is None or timer.kind != "timer":
            problems.append(f"{line.key}: woke from op {line.data['op']} but no timer at {sid}")
            continue
        wake_at = float(json.loads(timer.output))
        if line.t < wake_at - TIMER_SLACK:
            problems.append(f"{line.key}: timer {sid} fired {wake_at - line.t:.3f}s early")
    return problems


def figures(report: Report) -> str:
    """What the ledger and the store hold: executions, duplicates, steps by kind."""
    ledger = read_ledger(report.cluster.ledger)
    killed = crashed_pids(report.cluster) | report.teardowns
    bodies = [ln for ln in ledger if ln.kind != "woke"]
    ok: Counter[str] = Counter(ln.key for ln in bodies if ln.outcome == "ok")
    again = sum(n - 1 for n in ok.values() if n > 1)
    in_killed = sum(1 for ln in bodies if ln.outcome == "ok" and ln.pid in killed)
    kinds = Counter(row.kind for rows in steps(report.cluster.db).values() for row in rows.values())
    early = _earliest_wake(steps(report.cluster.db), ledger)
    return (
        f"earliest timer wake-up vs recorded time={early * 1000:+.1f} ms "
        f"body executions={len(bodies)} (failed on purpose "
        f"{sum(ln.outcome == 'fail' for ln in bodies)}, completed in killed workers {in_killed}, "
        f"re-executions of a completed body {again}) timers woken={len(ledger) - len(bodies)} "
        f"committed steps={dict(kinds)}"
    )


def _earliest_wake(all_steps: dict[str, Any], ledger: list[Line]) -> float:
    """The smallest ``woke - wake_at`` over every ``mai.sleep`` (0 when there was none)."""
    gaps = []
    for line in ledger:
        if line.kind == "woke":
            timer = all_steps.get(line.run, {}).get(f"{line.sid}.{line.data['op'] + 1}")
            if timer is not None and timer.kind == "timer":
                gaps.append(line.t - float(json.loads(timer.output)))
    return min(gaps, default=0.0)


def replay_hint(seed: int, test: str) -> str:
    """How to replay a failing seed."""
    return f"replay with: RANDPROG_SEED={seed} python -m pytest 'tests/durable/{test}' -v"


@contextlib.contextmanager
def undo_faults(db: Path) -> Any:
    """Leave no immutable file behind whatever happens (tmp_path must stay removable)."""
    try:
        yield
    finally:
        if os.geteuid() == 0:
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                if p.exists():
                    subprocess.run(["chattr", "-i", str(p)], check=False)


# -- in one process, without kills -------------------------------------------------------------


def run_in_process(tmp: Path, seed: int, programs: int, shapes: Shapes) -> Report:
    """Run the programs as durable runs in this process (no kills, no faults), for :func:`check`.

    Messages are sent after every run started, in a shuffled order. The ledger is written by
    this process, so a body that ran twice here is a duplicate by a surviving process.
    """
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    progs = [generate(rng.randrange(10**9), shapes) for _ in range(programs)]
    predictions = {p.run_id: predict(p) for p in progs}
    cluster = RandCluster(db=tmp / "mai.db", ledger=tmp / "ledger.jsonl")
    report = Report(seed, progs, predictions, cluster)
    messages = [
        (p.run_id, topic)
        for p in progs
        for topic, n in predictions[p.run_id].messages.items()
        for _ in range(n)
    ]
    rng.shuffle(messages)
    old = os.environ.get("LEDGER")
    os.environ["LEDGER"] = str(cluster.ledger)
    try:
        report.final = trio.run(_in_process, cluster.db, progs, messages)
    finally:
        if old is None:
            del os.environ["LEDGER"]
        else:
            os.environ["LEDGER"] = old
    report.sent.update(messages)
    report.seconds = time.monotonic() - started
    return report


async def _in_process(
    db: Path, progs: list[Program], messages: list[tuple[str, str]]
) -> dict[str, Any]:
    from .builder import build_program
    from .worker import outcome

    modules = {p.run_id: build_program(p) for p in progs}
    async with mai.Runtime(f"sqlite:///{db}?synchronous=normal") as rt:
        handles = {
            p.run_id: await rt.start(modules[p.run_id], p.x0, run_id=p.run_id) for p in progs
        }
        for run_id, topic in messages:
            await rt.send(run_id, topic, payload_value(run_id, topic))
        results = {run_id: await outcome(h) for run_id, h in handles.items()}
    return json.loads(json.dumps(results))
