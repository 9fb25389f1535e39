"""Short durable runs: a 10-step ``Sequential`` of trivial async steps, start to result.

Run: ``.venv/bin/python benchmarks/short.py [--runs N] [--rounds R]`` (to compare two builds,
run it with ``PYTHONPATH`` pointing at each checkout, in the same session).

Issue 12's targets, each measured as CPU time per run (``time.process_time``, which counts the
store thread too) in one long-lived runtime, the minimum of ``R`` rounds of ``N`` runs:

* on ``memory://``: at most 10x the same ``Sequential`` called without durability;
* on SQLite at ``synchronous=normal``: at most 3x the raw cost of the same commits (one per
  step plus the run's creation and outcome), measured with ``sqlite3`` on the same kind of file.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import trio

import mai

STEPS = 10


@mai.module
async def inc(x: int) -> int:
    """A trivial step."""
    return x + 1


TEN = mai.Sequential(*([inc] * STEPS), name="ten")


async def plain(runs: int) -> float:
    """CPU seconds per call of the Sequential without durability."""
    t = time.process_time()
    for _ in range(runs):
        assert await TEN(0) == STEPS  # noqa: S101 - a benchmark's sanity check
    return (time.process_time() - t) / runs


async def durable(url: str, runs: int, prefix: str) -> float:
    """CPU seconds per durable run, start to result, in one long-lived runtime."""
    async with mai.Runtime(url) as rt:
        await (await rt.start(TEN, 0, run_id=f"{prefix}-warm")).result()
        t = time.process_time()
        for i in range(runs):
            handle = await rt.start(TEN, 0, run_id=f"{prefix}-{i}")
            assert await handle.result() == STEPS  # noqa: S101
        return (time.process_time() - t) / runs


def raw(path: Path, runs: int) -> float:
    """CPU seconds for the commits of one run done with raw sqlite3 (WAL, synchronous=normal)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (run TEXT, step TEXT, v TEXT, PRIMARY KEY (run, step))")
    t = time.process_time()
    for r in range(runs):
        for i in range(STEPS + 2):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (str(r), str(i), "x" * 120))
            conn.execute("COMMIT")
    elapsed = (time.process_time() - t) / runs
    conn.close()
    return elapsed


def main() -> None:
    """Measure and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300, help="runs per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (the minimum is kept)")
    args = ap.parse_args()
    p, m, s, f = [], [], [], []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for r in range(args.rounds):
            p.append(trio.run(plain, args.runs))
            m.append(trio.run(durable, "memory://", args.runs, f"m{r}"))
            url = f"sqlite:///{tmp}/short-{r}.db?synchronous=normal"
            s.append(trio.run(durable, url, args.runs, f"s{r}"))
            f.append(raw(Path(tmp) / f"raw-{r}.db", args.runs))
    plain_t, mem_t, sql_t, raw_t = min(p), min(m), min(s), min(f)
    print(f"# {mai.__file__}")
    print(f"plain Sequential of {STEPS}: {plain_t * 1e3:.4f} ms CPU/run")
    print(f"memory://: {mem_t * 1e3:.3f} ms CPU/run = {mem_t / plain_t:.1f}x plain (<= 10x)")
    print(f"raw sqlite {STEPS + 2} commits: {raw_t * 1e3:.3f} ms CPU")
    print(f"sqlite normal: {sql_t * 1e3:.3f} ms CPU/run = {sql_t / raw_t:.1f}x raw (<= 3x)")


if __name__ == "__main__":
    main()
