"""PostgreSQL worker throughput on a pre-filled queue, with 1, 2 and 4 worker processes.

Run: ``make bench`` or ``.venv/bin/python benchmarks/workers.py [--runs N] [--profile DIR]``
(needs the mai-postgres plugin and PostgreSQL's server binaries; a throwaway cluster is started).

For each worker count, a fresh database is pre-filled with ``--runs`` submitted runs (2,000 by
default) of a ten-step :class:`mai.Sequential` of trivial async steps, held unclaimable; the
worker processes start, and once every one of them is up the runs are released to them at once
(so the first worker up does not drain the queue alone while the others still import). The rate
is measured by the store itself: runs divided by the time from the first step any worker
started to the last run that finished, so process start-up and the submission are not counted.
Beside it: the CPU per run of the workers and of the PostgreSQL server (from ``/proc``, over the
drain), the machine's busy cores during the drain (other processes included) and its load
average before (the target, at least 1,000 runs/s with 4 workers on a 2-core machine, is an
absolute figure). ``--workers 1 4`` picks the worker counts.

``--profile DIR`` runs every worker under py-spy (``pip install py-spy``) and writes one collapsed
stack profile per worker process to ``DIR``, every thread included, sampling only the thread
holding the GIL (``--gil``: on a shared machine a thread waiting for a core would otherwise be
counted as busy); the files are ``stack count`` lines.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

import mai

HERE = str(Path(__file__).resolve().parent)


@mai.module
async def tick(x: int) -> int:
    """A trivial async step."""
    return x + 1


TEN = mai.Sequential(*([tick] * 10), name="ten_ticks")

WORKER = """
import pathlib, sys
sys.path.insert(0, sys.argv[2])
import mai
worker = mai.Worker(sys.argv[1], app="workers", concurrency=int(sys.argv[4]), poll_interval=0.05)
sys.exit(worker.serve(on_started=lambda w: pathlib.Path(sys.argv[3]).touch()))
"""


async def prefill(url: str, runs: int) -> None:
    """Submit ``runs`` runs of this file's workflow, imported as ``workers`` (as workers do)."""
    sys.path.insert(0, HERE)
    from workers import TEN  # the plan names ``workers:...``, not ``__main__:...``

    async with mai.Runtime(url) as rt, trio.open_nursery() as nursery:
        for i in range(runs):
            nursery.start_soon(lambda i=i: rt.submit(TEN, i, run_id=f"r{i:05d}"))


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """CPU time (user + system) of a live process, with its reaped children's when ``reaped``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live and ended backends."""
    return cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(c) for c in children(postmaster))


class Drained:
    """What one drain measured: runs/s as the store saw it, and CPU per run while draining."""

    def __init__(self, rate: float, worker_cpu: float, server_cpu: float, busy: float) -> None:
        """Keep the figures (CPU in seconds per run; ``busy``: cores used by the whole machine)."""
        self.rate = rate
        self.worker_cpu = worker_cpu
        self.server_cpu = server_cpu
        self.busy = busy


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / _TICK, sum(fields) / _TICK


def drain(
    url: str, workers: int, runs: int, concurrency: int, profile: Path | None, postmaster: int
) -> Drained:
    """Start ``workers`` processes on the pre-filled queue; measure the drain.

    The runs become claimable once every worker is up (its store open), so the rate and the
    CPU per run (from then to the last run finished) count no process start-up: the workers'
    own CPU (under ``--profile``, the profiled processes without py-spy) and the PostgreSQL
    server's.
    """
    import psycopg

    # The runs are held (not claimable: a lease far in the future) until every worker is up,
    # so the first worker does not drain alone while the others are still importing.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE mai_runs SET lease_until = 1e18 WHERE status = 'PENDING'")
    flags = [Path(tempfile.mkdtemp()) / "ready" for _ in range(workers)]
    procs = []
    for n, flag in enumerate(flags):
        cmd = [sys.executable]
        cmd += ["-c", WORKER, url, HERE, str(flag), str(concurrency)]
        if profile is not None:  # every thread (the store thread too), native frames off
            out = profile / f"workers{workers}-{n}.txt"
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [
                spy,
                "record",
                "--threads",
                "--gil",
                "-f",
                "raw",
                "-r",
                "200",
                "-o",
                str(out),
                "--",
                *cmd,
            ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # noqa: S603

    def worker_pids() -> list[int]:
        if profile is None:
            return [p.pid for p in procs]
        return [c for p in procs for c in children(p.pid)]

    try:
        with psycopg.connect(url, autocommit=True) as conn:

            def finished() -> int:
                (done,) = conn.execute(
                    "SELECT count(*) FROM mai_runs WHERE status = 'SUCCEEDED'"
                ).fetchone()
                return int(done)

            started: tuple[int, float, float, float, float] | None = None
            while True:
                if started is None and all(f.exists() for f in flags):
                    pids = worker_pids()
                    conn.execute(
                        "UPDATE mai_runs SET lease_until = NULL WHERE status = 'PENDING'; "
                        "NOTIFY mai_runs, 'default'"
                    )
                    started = (
                        finished(),
                        sum(cpu_seconds(pid) for pid in pids),
                        server_cpu(postmaster),
                        *machine_busy(),
                    )
                done = finished()
                if done == runs and started is not None:
                    break
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a worker process exited with {p.returncode}")
                time.sleep(0.05)
            wcpu = sum(cpu_seconds(pid) for pid in pids)
            scpu = server_cpu(postmaster)
            busy, total = machine_busy()
            (first, last) = conn.execute(
                "SELECT (SELECT min(started_at) FROM mai_steps),"
                " (SELECT max(updated_at) FROM mai_runs)"
            ).fetchone()
        counted = max(1, runs - started[0])
        return Drained(
            runs / (last - first),
            (wcpu - started[1]) / counted,
            (scpu - started[2]) / counted,
            (busy - started[3]) / max(1e-9, total - started[4]) * (os.cpu_count() or 1),
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)  # a clean stop, so a profiler writes its report
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main(runs: int, concurrency: int, profile: Path | None, counts: list[int]) -> None:
    """Print runs/s and CPU per run for 1, 2 and 4 workers on a pre-filled queue."""
    from durable import postgres_cluster  # this folder's durable benchmark

    cluster_class = postgres_cluster()
    if cluster_class is None:
        return
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    print(
        f"workers: CPython {platform.python_version()}, {os.cpu_count()} cores, "
        f"{runs} pre-filled runs of a 10-step Sequential, concurrency {concurrency} per worker"
    )
    with cluster_class() as cluster:
        (version,) = cluster.sql("SHOW server_version")[0]
        print(f"# PostgreSQL {version}, local cluster over TCP 127.0.0.1, fsync=on")
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        rates = {}
        for workers in counts:
            url = cluster.create_database(f"workers{workers}")
            trio.run(prefill, url, runs)
            load = os.getloadavg()[0]
            d = drain(url, workers, runs, concurrency, profile, postmaster)
            rates[workers] = d.rate
            print(
                f"  {workers} worker process(es): {d.rate:,.0f} runs/s "
                f"({d.rate * 11:,.0f} step+finish commits/s; load {load:.2f} before); "
                f"CPU per run: workers {d.worker_cpu * 1e3:.2f} ms + server "
                f"{d.server_cpu * 1e3:.2f} ms = {(d.worker_cpu + d.server_cpu) * 1e3:.2f} ms; "
                f"machine busy {d.busy:.2f} cores"
            )
        if 1 in rates and len(rates) > 1:
            print(
                "  scaling: "
                + ", ".join(f"{w}/1 = {rates[w] / rates[1]:.2f}x" for w in rates if w != 1)
            )
        if 4 in rates:
            print(f"  4 workers {rates[4]:,.0f} runs/s (target >= 1,000)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="pre-filled runs (default 2000)")
    ap.add_argument("--concurrency", type=int, default=64, help="runs per worker at once")
    ap.add_argument("--profile", type=Path, default=None, help="write py-spy profiles here")
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)"
    )
    args = ap.parse_args()
    main(args.runs, args.concurrency, args.profile, args.workers)
