"""Durable runtime cost on SQLite, against raw ``sqlite3`` commits measured in the same run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/durable.py [--quick]``.

(a) one run of 1,000 sequential trivial steps: microseconds per step, against the raw floor of
    one ``BEGIN IMMEDIATE; INSERT; COMMIT`` per step on the same kind of file;
(b) one run with a Map of 1,000 trivial branches: steps per second;
(c) a fresh process that imports ``mai`` and completes a 1-step durable run on a new file.

PostgreSQL (needs the mai-postgres plugin and the server binaries; a throwaway cluster is
started): (a) and (b) against a raw psycopg ``INSERT; COMMIT`` per row on the same server. Worker
throughput has its own script, ``benchmarks/workers.py``.

Each at ``synchronous=FULL`` (the default) and ``normal``. Disk latency varies from minute to
minute on shared machines, so the raw floor is always measured in the same run, just before.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import mai

STEPS = 1000


@mai.module
async def step(x: int) -> int:
    """A trivial step."""
    return x + 1


@mai.module
async def chain(n: int) -> int:
    """``n`` sequential steps in one run."""
    x = 0
    for _ in range(n):
        x = await step(x)
    return x


@mai.module
async def numbers(n: int) -> list[int]:
    """The fan-out's input."""
    return list(range(n))


FANOUT = numbers >> mai.Map(step)


def raw_floor(path: Path, sync: str, n: int) -> float:
    """Seconds per raw commit of one row (WAL, same synchronous mode).

    The same shape of work as the durable run it is compared with: as many commits, each of one
    row about the size of a recorded step (~120 bytes), so both pay for the WAL growing and for
    SQLite's automatic checkpoint at 1,000 pages.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("CREATE TABLE t (run TEXT, step TEXT, v TEXT, PRIMARY KEY (run, step))")
    t = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", ("r", str(i), "x" * 120))
        conn.execute("COMMIT")
    elapsed = (time.perf_counter() - t) / n
    conn.close()
    return elapsed


async def timed_run(url: str, module: mai.Module[..., object], arg: int, run_id: str) -> float:
    async with mai.Runtime(url) as rt:
        t = time.perf_counter()
        await (await rt.start(module, arg, run_id=run_id)).result()
        return time.perf_counter() - t


FRESH = """
import sys, time
t0 = time.perf_counter()
import trio, mai
@mai.module
async def one(x: int) -> int:
    return x + 1
async def main():
    async with mai.Runtime(sys.argv[1]) as rt:
        assert await (await rt.start(one, 1)).result() == 2
trio.run(main)
"""


def fresh_process(url: str) -> float:
    """Wall time of a new interpreter importing mai and finishing a 1-step durable run."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", FRESH, url], check=True)  # noqa: S603 - our own script
    return time.perf_counter() - t


def main(quick: bool) -> None:
    rounds = 1 if quick else 3
    n = 200 if quick else STEPS
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(
        f"# pymai durable benchmark - {py}, {os.cpu_count()} cores, sqlite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        d = Path(tmp)
        for sync in ("NORMAL", "FULL"):
            floors, per_step, rates, fresh = [], [], [], []
            for r in range(rounds):
                floors.append(raw_floor(d / f"raw-{sync}-{r}.db", sync, n))
                url = f"sqlite:///{d}/seq-{sync}-{r}.db?synchronous={sync.lower()}"
                per_step.append(trio.run(timed_run, url, chain, n, f"seq-{r}") / n)
                url = f"sqlite:///{d}/map-{sync}-{r}.db?synchronous={sync.lower()}"
                rates.append(n / trio.run(timed_run, url, FANOUT, n, f"map-{r}"))
                fresh.append(
                    fresh_process(f"sqlite:///{d}/fresh-{sync}-{r}.db?synchronous={sync.lower()}")
                )
            floor = statistics.median(floors)
            seq = statistics.median(per_step)
            rate = statistics.median(rates)
            start = statistics.median(fresh)
            target_a = "<= 100 us/step" if sync == "NORMAL" else "<= 1.5x floor"
            target_b = 20_000 if sync == "NORMAL" else 5_000
            print(f"synchronous={sync}: raw commit floor {floor * 1e6:.0f} us")
            ratio = seq / floor
            per = f"{seq * 1e6:.0f} us/step = {ratio:.2f}x floor"
            print(f"  (a) {n} sequential steps: {per} ({target_a})")
            print(f"  (b) Map of {n}: {rate:,.0f} steps/s (target >= {target_b:,})")
            print(f"  (c) fresh process, 1-step run: {start:.3f} s (target <= 0.4 s)")


# -- PostgreSQL (the mai-postgres plugin on a throwaway local cluster) ---------------------------


def pg_raw_floor(url: str, n: int) -> float:
    """Seconds per raw psycopg INSERT + COMMIT of one small row, on the same server."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE raw (run text, step text, v text, PRIMARY KEY (run, step))")
        conn.commit()
        t = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO raw VALUES (%s, %s, %s)", ("r", str(i), "1"))
            conn.commit()
        elapsed = (time.perf_counter() - t) / n
        conn.execute("DROP TABLE raw")
        conn.commit()
    return elapsed


def postgres_cluster() -> Any:
    """``mai_postgres.testing.PostgresCluster``, or ``None`` (said why) when it cannot run here."""
    try:
        from mai_postgres.testing import PostgresCluster, find_bindir
    except ImportError:
        print("PostgreSQL: skipped (pip install -e plugins/mai-postgres)")
        return None
    if find_bindir() is None:
        print("PostgreSQL: skipped (server binaries not found: apt-get install postgresql)")
        return None
    return PostgresCluster


def postgres(quick: bool) -> None:
    cluster_class = postgres_cluster()
    if cluster_class is None:
        return
    rounds = 1 if quick else 3
    n = 200 if quick else STEPS
    with cluster_class() as cluster:
        (version,) = cluster.sql("SHOW server_version")[0]
        print(f"# PostgreSQL {version}, local cluster over TCP 127.0.0.1, fsync=on")
        floors, per_step, rates = [], [], []
        for r in range(rounds):
            url = cluster.create_database(f"bench{r}")
            floors.append(pg_raw_floor(url, min(n, 300)))
            per_step.append(trio.run(timed_run, url, chain, n, f"seq-{r}") / n)
            rates.append(n / trio.run(timed_run, url, FANOUT, n, f"map-{r}"))
        floor = statistics.median(floors)
        seq = statistics.median(per_step)
        print(f"raw psycopg INSERT + COMMIT floor: {floor * 1e6:.0f} us")
        ratio = seq / floor
        print(f"  (a) {n} sequential steps: {seq * 1e6:.0f} us/step = {ratio:.2f}x floor (<= 1.5x)")
        print(f"  (b) Map of {n}: {statistics.median(rates):,.0f} steps/s (target >= 3,000)")
        # worker throughput: benchmarks/workers.py (a pre-filled queue, 1 / 2 / 4 workers)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller, single round (CI smoke run)")
    ap.add_argument("--postgres-only", action="store_true", help="only the PostgreSQL figures")
    args = ap.parse_args()
    if not args.postgres_only:
        main(args.quick)
    postgres(args.quick)
