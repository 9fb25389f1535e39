"""``make demo``: a durable research agent that is killed in the middle of its run and resumes.

The agent (``examples/demo_agent.py``) reads every document and source file of this repository
with a fan-out limited to 4 at a time, routes code and prose to different analyses, retries a
flaky glossary service, lets a deadline cut off slow summaries, and writes a report. It runs
durably on the embedded SQLite store (``.mai/demo.db``): no server to start.

This script starts the agent in a worker process, kills that process with SIGKILL once part of
the work is committed, starts a second worker that resumes the run from the store, and then
shows which steps were replayed and which ran, the trace tree, and the report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DB = ROOT / ".mai" / "demo.db"
URL = f"sqlite:///{DB}"


def worker(run_id: str) -> None:
    """Run (or resume) the agent's run in this process, printing each step as it finishes."""
    import logging

    import structlog
    import trio

    import mai

    # The progress lines already show retries and deadlines; keep only errors from the log.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    sys.path.insert(0, str(HERE))
    from demo_agent import agent, corpus

    async def run() -> None:
        async with mai.Runtime(URL, workflows=[agent]) as rt:
            # One line per finished step: ✓ ran, ↺ replayed from the store (mai.Call.replayed).
            progress = mai.Progress(out=sys.stdout)
            with mai.intercept(progress):
                if await rt.list_runs():
                    (handle,) = await rt.recover()
                else:
                    handle = await rt.start(agent, corpus(), run_id=run_id)
                await handle.result()
            print(f"   worker {os.getpid()}: {progress.summary()}", flush=True)

    trio.run(run)


def start_worker(run_id: str) -> subprocess.Popen[str]:
    """Start a worker process that prints its steps with a prefix."""
    return subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, __file__, "--worker", run_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


QUOTA = {"✓": 5, "↺": 4, "⏱": 2, "attempts": 2}


def relay(proc: subprocess.Popen[str], label: str, counts: Counter[str]) -> None:
    """Print the worker's lines as they come: a few of each kind, the summary always.

    ``counts["seen ✓"]`` counts the steps the worker ran: a step's line is printed once its
    result is committed to the store.
    """
    assert proc.stdout is not None  # noqa: S101
    os.set_blocking(proc.stdout.fileno(), False)
    for line in proc.stdout:
        text = line.rstrip()
        kind = "attempts" if "attempts)" in text else text.strip()[:1]
        counts[f"seen {kind}"] += 1
        if text.startswith("   worker"):
            print(text)
        elif counts[kind] < QUOTA.get(kind, 0):
            counts[kind] += 1
            print(f"   [{label}] {text}")


def main() -> None:
    """Run the whole demonstration."""
    sys.path.insert(0, str(HERE))
    from demo_agent import corpus

    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)
    files = corpus()
    run_id = f"demo-{int(time.time())}"
    print(f"== pymai demo: a research agent over this repository ({len(files)} files)")
    print(f"   durable on the embedded SQLite store {DB.relative_to(ROOT)}; run id {run_id}")
    print("   legend: ✓ ran   ↺ replayed from the store   ✗ failed   ⏱ deadline fired")
    started = time.monotonic()

    first = start_worker(run_id)
    print(f"\n-- worker 1 (pid {first.pid}) starts the run (a few lines of each kind shown)")
    counts: Counter[str] = Counter()
    kill_at = 120
    while first.poll() is None and counts["seen ✓"] < kill_at:
        relay(first, "worker 1", counts)
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    relay(first, "worker 1", counts)
    print(f"-- SIGKILL worker 1 after {counts['seen ✓']} steps were committed")

    second = start_worker(run_id)
    print(f"\n-- worker 2 (pid {second.pid}) resumes the run from the store")
    counts = Counter()
    while second.poll() is None:
        relay(second, "worker 2", counts)
        time.sleep(0.02)
    relay(second, "worker 2", counts)
    if second.returncode != 0:
        sys.exit(f"worker 2 failed with exit code {second.returncode}")
    show_results(run_id, time.monotonic() - started)


def show_results(run_id: str, elapsed: float) -> None:
    """Read the run back from the store and explain what happened."""
    import trio

    import mai

    async def read() -> tuple[object, list[mai.StepInfo], mai.TraceHandle]:
        async with mai.Runtime(URL) as rt:
            return await rt.get(run_id), await rt.steps(run_id), await rt.trace(run_id)

    info, steps, trace = trio.run(read)
    # StepInfo.worker names the process that committed a step; the first one to commit is 1.
    first_commit = {}
    for s in sorted(steps, key=lambda s: s.finished_at):
        first_commit.setdefault(s.worker, len(first_commit) + 1)
    by_worker = Counter(f"worker {first_commit[s.worker]}" for s in steps)
    names = Counter(s.name for s in steps)
    print(f"\n-- the store holds {len(steps)} committed steps")
    first = by_worker["worker 1"]
    print(
        f"   committed by worker 1 before the crash: {first} (replayed by worker 2, never re-run)"
    )
    print(f"   committed by worker 2 after the resume: {by_worker['worker 2']}")
    retried = [s for s in steps if s.name == "lookup" and s.attempts > 1]
    attempts = sum(s.attempts for s in retried)
    print(
        f"-- flaky step: {len(retried)} glossary lookups succeeded after {attempts} attempts in all"
    )
    code, prose = names["analyse_code"], names["analyse_prose"]
    print(f"-- route: {code} files went to analyse_code, {prose} to analyse_prose")
    report = info.output  # type: ignore[attr-defined]
    print(
        f"-- deadline: deep_summary (timeout 0.15 s) was cut off for {report['cut_off']} long "
        f"files, which fell back to their first sentence; {report['deep_summaries']} finished"
    )
    lines = trace.render().splitlines()
    print(f"\n-- trace tree ({len(lines)} spans; first 3 files shown)")
    shown = 0
    for line in lines:
        if " study  [1.1." in line:
            shown += 1
        if shown <= 3 or "report" in line or "[1]" in line or "[1.1]" in line:
            print(f"   {line}")
    print("   ...")
    print(f"\n-- report ({info.status}, {elapsed:.1f} s in all)")  # type: ignore[attr-defined]
    for key, value in report.items():
        print(f"   {key}: {value}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
