"""`mai ui`: page cost against the indexed query behind it, and writers with the UI polling.

Run: ``.venv/bin/python benchmarks/ui.py [--quick]`` (needs the ``ui`` extra and ``httpx``).

(a) A SQLite store (``--store postgres``: a PostgreSQL database) with 100,000 runs (statuses,
    workflows and start times mixed; rows the size of real runs). For each kind of page (newest
    first, a status, a workflow, a run-id search, page 200 of the list): the median time of the
    store's ``page_runs`` query in this process, and the median time of the whole page
    (``GET /api/runs`` over HTTP from another process's server: routing, security checks, the
    query on the store thread, JSON), then the same in process (the ASGI app without a socket,
    interleaved with its query). Reported as the ratio page / query; the fallback
    (``list_runs`` + filtering, for a store without pages) is shown for comparison.
(b) The durable benchmark's sequential run (``synchronous=normal``: 5,000 steps, ``FULL``: 1,000)
    with and without a poller reading the UI's list and the running run's page, every 1.5 s (what
    an open browser tab asks) and every 100 ms (a stress), in pairs of rounds (order alternated)
    in the same run; the median of the pairs' throughput ratios is reported, with the CPU share
    the ``mai ui`` process used while polled and the machine's load average.

``--part pages|writers`` runs one half; ``--pairs N`` sets the number of writer pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from durable import chain, timed_run  # noqa: E402 - the durable benchmark's own workload

from mai.core.durable import RunQuery, RunRecord, RunStatus  # noqa: E402
from mai.core.durable._runtime import open_store  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

STATUS_MIX = [RunStatus.SUCCEEDED] * 90 + [RunStatus.FAILED] * 3 + [RunStatus.RUNNING] * 3
STATUS_MIX += [RunStatus.PENDING] * 3 + [RunStatus.CANCELLED]
PLAN = json.dumps({"nodes": [{"id": f"n{i}", "name": "step", "config": {}} for i in range(12)]})


def build_store(url: str, n: int) -> None:
    """``n`` runs written straight through the store (one transaction per 10,000)."""
    store = open_store(url)
    store.open()
    t0 = time.time() - n
    mix = random.Random(42)
    for start in range(0, n, 10_000):
        with store.transaction():
            for i in range(start, min(start + 10_000, n)):
                store.create_run(
                    RunRecord(
                        run_id=f"run-{i:07d}",
                        workflow=("checkout", "etl", "agent", "report")[i % 4],
                        ref="app:wf",
                        plan_hash="0" * 64,
                        plan=PLAN,
                        input=json.dumps({"args": [i], "kwargs": {}}),
                        status=mix.choice(STATUS_MIX),
                        output=json.dumps({"order": i, "ok": True}),
                        created_at=t0 + i,
                        attempts=1,
                    )
                )
    store.close()


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``mai ui`` on ``url``; return the process and its printed URL."""
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "mai.core.cli", "ui", "--store", url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None  # noqa: S101
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    return proc, lines.get(timeout=60).decode().strip()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def median_ms(fn, n: int) -> float:
    fn()  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


@contextlib.contextmanager
def a_store(kind: str, tmp: str) -> Iterator[str]:
    """The URL of a new empty store: a SQLite file, or a database on a throwaway PostgreSQL
    cluster (``mai_postgres.testing``; its binaries must be installed)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/runs.db"
        return
    from mai_postgres.testing import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        yield cluster.create_database("ui_bench")
    finally:
        cluster.destroy()


def analyze(url: str) -> None:
    """Planner statistics after the bulk load (what autovacuum gives a real database)."""
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE mai_runs")


def pages(quick: bool, kind: str = "sqlite") -> None:
    n = 20_000 if quick else 100_000
    reps = 10 if quick else 40
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, a_store(kind, tmp) as url:
        t = time.perf_counter()
        build_store(url, n)
        analyze(url)
        print(f"(a) {kind}: {n:,} runs written in {time.perf_counter() - t:.1f} s")
        store = open_store(url)
        store.open()
        deep: str | None = None
        for _ in range(199):
            _, deep = store.page_runs(RunQuery(), deep, 50)
        cases = [
            ("newest 50", RunQuery(), None, {}),
            ("status FAILED", RunQuery(status=RunStatus.FAILED), None, {"status": "FAILED"}),
            ("workflow etl", RunQuery(workflow="etl"), None, {"workflow": "etl"}),
            ("id search run-00420", RunQuery(run_id_prefix="run-00420"), None, {"q": "run-00420"}),
            ("page 200", RunQuery(), deep, {"after": deep}),
        ]
        proc, printed = serve(url)
        base, token = printed.split("/?token=")
        try:
            with httpx.Client(
                base_url=base, headers={"authorization": f"Bearer {token}"}
            ) as client:
                floor = median_ms(lambda: client.get("/api/session").raise_for_status(), reps)
                print(
                    f"    HTTP floor (GET /api/session: no store access): {floor:.3f} ms; "
                    "'over floor' = (page - floor) / query"
                )
                print("    page                  query ms   page ms   page/query   over floor")
                for name, query, after, params in cases:
                    q_ms = median_ms(lambda: store.page_runs(query, after, 50), reps)  # noqa: B023

                    def get(params=params) -> None:
                        r = client.get("/api/runs", params={**params, "limit": "50"})
                        r.raise_for_status()

                    p_ms = median_ms(get, reps)
                    over = max(p_ms - floor, 0.0) / q_ms
                    print(
                        f"    {name:<20} {q_ms:9.3f} {p_ms:9.3f} {p_ms / q_ms:9.1f}x {over:11.1f}x"
                    )
                fallback = median_ms(lambda: store.list_runs(None, 5000), max(3, reps // 8))
                print(
                    f"    fallback list_runs(limit=5000), for a store without pages: "
                    f"{fallback:.1f} ms"
                )
                one = median_ms(
                    lambda: client.get("/api/runs/run-0000420").raise_for_status(), reps
                )
                print(f"    a run's page (GET /api/runs/ID): {one:.2f} ms")
        finally:
            stop(proc)
            store.close()
        trio.run(in_process, url, cases, reps)


async def asgi_get(app, path: str, params: dict[str, str]) -> bytes:
    """One GET straight into the ASGI app (no socket, no HTTP client): the server's own work."""
    from urllib.parse import urlencode

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params).encode(),
        "root_path": "",
        "headers": [(b"host", b"ui.test"), (b"authorization", b"Bearer token")],
        "client": ("127.0.0.1", 1),
        "server": ("ui.test", 80),
    }
    status: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    assert status == [200], (path, params, status, body)  # noqa: S101
    return b"".join(body)


async def in_process(url: str, cases, reps: int) -> None:
    """The page's own cost without sockets: the ASGI app called in this process, interleaved
    with the query it runs (on the same store thread), so both see the same machine load."""
    import mai
    from mai.core.ui._data import UIData
    from mai.core.ui._routes import build_app
    from mai.core.ui._security import Guard

    async with mai.Runtime(url) as rt:
        app = Guard(build_app(UIData(rt), "x"), "token", {"ui.test"}, "c")
        print(
            "    in process (the ASGI app called directly: no socket, no HTTP client), query on"
            " the store thread, interleaved:"
        )
        print(
            "    page                  query ms   page ms   page/query"
            "   (best of each: query, page, ratio)"
        )
        for name, query, after, params in cases:
            q_times, p_times = [], []
            for i in range(3 * reps + 1):
                t = time.perf_counter()
                await rt.executor.read(rt.store.page_runs, query, after, 50)
                q = time.perf_counter() - t
                t = time.perf_counter()
                await asgi_get(app, "/api/runs", {**params, "limit": "50"})
                p = time.perf_counter() - t
                if i:  # the first of each is a warm-up
                    q_times.append(q)
                    p_times.append(p)
            q_ms = statistics.median(q_times) * 1e3
            p_ms = statistics.median(p_times) * 1e3
            q_min, p_min = min(q_times) * 1e3, min(p_times) * 1e3
            print(
                f"    {name:<20} {q_ms:9.3f} {p_ms:9.3f} {p_ms / q_ms:9.1f}x"
                f"   ({q_min:.3f}, {p_min:.3f}, {p_min / q_min:.1f}x)"
            )


POLLER = """
import sys, time, httpx
base, token = sys.argv[1].split("/?token=")
every = float(sys.argv[2])
with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as c:
    first = True
    while True:
        t = time.monotonic()
        runs = c.get("/api/runs", params={"limit": "50"}).json()["runs"]
        if runs:
            c.get(f"/api/runs/{runs[0]['run_id']}")
        if first:
            print("polling", flush=True)
            first = False
        time.sleep(max(every - (time.monotonic() - t), 0.0))
"""

#: The page's own live refresh (``POLL_MS`` in ``mai/core/ui/static/app.js``), then a stress.
RATES = (1.5, 0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def writers(quick: bool, pairs: int | None = None) -> None:
    """Throughput of the durable benchmark's sequential run with and without the UI polling."""
    pairs = pairs or (2 if quick else 10)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for sync in ("NORMAL", "FULL"):
            # runs long enough (about a second) for the slow poller to poll during them
            steps = 300 if quick else (5000 if sync == "NORMAL" else 1000)
            url = f"sqlite:///{tmp}/bench-{sync}.db?synchronous={sync.lower()}"
            trio.run(timed_run, url, chain, 10, "warm")
            proc, printed = serve(url)
            try:
                for every in RATES:
                    ratios, alone, polled, ui_cpu = [], [], [], []
                    before = load()
                    for r in range(pairs):
                        rate: dict[bool, float] = {}
                        for polling in (False, True) if r % 2 == 0 else (True, False):
                            poller = None
                            if polling:
                                poller = subprocess.Popen(  # noqa: S603 - our own script
                                    [sys.executable, "-c", POLLER, printed, str(every)],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL,
                                )
                                assert poller.stdout is not None  # noqa: S101
                                poller.stdout.readline()  # it has imported httpx and polled
                            run_id = f"{every}-{r}-{polling}"
                            cpu0 = cpu_seconds(proc.pid)
                            took = trio.run(timed_run, url, chain, steps, run_id)
                            rate[polling] = steps / took
                            if polling:
                                ui_cpu.append((cpu_seconds(proc.pid) - cpu0) / took)
                            if poller is not None:
                                poller.kill()
                                poller.wait()
                                assert poller.stdout is not None  # noqa: S101
                                poller.stdout.close()
                        alone.append(rate[False])
                        polled.append(rate[True])
                        ratios.append(rate[True] / rate[False])
                    print(
                        f"(b) synchronous={sync}, UI polled every {every:g} s (list + the running "
                        f"run's page): {statistics.median(alone):,.0f} steps/s alone, "
                        f"{statistics.median(polled):,.0f} polled; median of paired ratios "
                        f"{statistics.median(ratios):.2f}x (target >= 0.90x; pairs "
                        f"{', '.join(f'{x:.2f}' for x in ratios)}); `mai ui` used "
                        f"{statistics.median(ui_cpu) * 100:.1f}% of a core while polled; "
                        f"load average {before} -> {load()}"
                    )
            finally:
                stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller, fewer rounds")
    ap.add_argument("--part", choices=["pages", "writers", "all"], default="all")
    ap.add_argument("--pairs", type=int, help="pairs of writer rounds (default 10)")
    ap.add_argument(
        "--store",
        choices=["sqlite", "postgres", "both"],
        default="sqlite",
        help="where the pages part keeps its 100,000 runs (postgres: a throwaway cluster)",
    )
    ns = ap.parse_args()
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(
        f"# mai ui benchmark - {py}, {os.cpu_count()} cores, sqlite {sqlite3.sqlite_version}, "
        f"load average {load()}"
    )
    if ns.part in ("pages", "all"):
        for kind in ("sqlite", "postgres") if ns.store == "both" else (ns.store,):
            pages(ns.quick, kind)
    if ns.part in ("writers", "all"):
        writers(ns.quick, ns.pairs)


if __name__ == "__main__":
    main()
