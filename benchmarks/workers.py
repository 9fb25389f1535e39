"""PostgreSQL worker throughput on a pre-filled queue, with 1, 2 and 4 worker processes.

Run: ``make bench`` or ``.venv/bin/python benchmarks/workers.py [--runs N] [--profile DIR]``
(needs the mai-postgres plugin and PostgreSQL's server binaries; a throwaway cluster is started).

For each worker count, a fresh database is pre-filled with ``--runs`` submitted runs (2,000 by
default) of a ten-step :class:`mai.Sequential` of trivial async steps; then the worker processes
start and drain it. The rate is measured by the store itself: runs divided by the time from the
first step any worker started to the last run that finished, so process start-up and the
submission are not counted. The machine's load average is printed beside the figures (the
target, at least 1,000 runs/s with 4 workers on a 2-core machine, is an absolute figure).

``--profile DIR`` runs every worker under py-spy (``pip install py-spy``) and writes one collapsed
stack profile per worker process to ``DIR``, every thread included (where the time goes at each
worker count; ``benchmarks/fold.py`` is not needed: the files are ``stack count`` lines).
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


def drain(url: str, workers: int, runs: int, concurrency: int, profile: Path | None) -> float:
    """Start ``workers`` processes on the pre-filled queue; return runs/s as the store saw it."""
    import psycopg

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
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                (done,) = conn.execute(
                    "SELECT count(*) FROM mai_runs WHERE status = 'SUCCEEDED'"
                ).fetchone()
                if done == runs:
                    break
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a worker process exited with {p.returncode}")
                time.sleep(0.05)
            (first, last) = conn.execute(
                "SELECT (SELECT min(started_at) FROM mai_steps),"
                " (SELECT max(updated_at) FROM mai_runs)"
            ).fetchone()
        return runs / (last - first)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)  # a clean stop, so a profiler writes its report
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main(runs: int, concurrency: int, profile: Path | None) -> None:
    """Print runs/s for 1, 2 and 4 workers on a pre-filled queue."""
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
        rates = {}
        for workers in (1, 2, 4):
            url = cluster.create_database(f"workers{workers}")
            trio.run(prefill, url, runs)
            load = os.getloadavg()[0]
            rates[workers] = drain(url, workers, runs, concurrency, profile)
            print(
                f"  {workers} worker process(es): {rates[workers]:,.0f} runs/s "
                f"({rates[workers] * 11:,.0f} step+finish commits/s; load {load:.2f} before)"
            )
        print(
            f"  scaling: 2/1 = {rates[2] / rates[1]:.2f}x, 4/1 = {rates[4] / rates[1]:.2f}x; "
            f"4 workers {rates[4]:,.0f} runs/s (target >= 1,000)"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="pre-filled runs (default 2000)")
    ap.add_argument("--concurrency", type=int, default=64, help="runs per worker at once")
    ap.add_argument("--profile", type=Path, default=None, help="write pyinstrument profiles here")
    args = ap.parse_args()
    main(args.runs, args.concurrency, args.profile)
