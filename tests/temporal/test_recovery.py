"""Worker crashes, the runs commands on a temporal:// URL, replay of recorded histories, width."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import temporal_flows as f

import mai

HERE = Path(__file__).parent


def start_worker(url: str, ledger: Path) -> subprocess.Popen[bytes]:
    """A real ``mai worker`` process serving the URL's task queue, writing to the ledger."""
    env = {**os.environ, "MAI_TEST_LEDGER": str(ledger), "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "mai", "worker", "--store", url, "--app", "temporal_flows"],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_lines(path: Path, n: int, bound: float = 30.0) -> list[str]:
    """The ledger's lines once there are at least ``n`` (a real-time bound: a worker process)."""
    until = time.monotonic() + bound
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > until:
            return lines
        time.sleep(0.02)


def mai_cli(*args: str) -> str:
    """Run the ``mai`` command; return its standard output (fail on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "mai", *args],
        capture_output=True,
        text=True,
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_sigkilled_worker_run_finishes_on_a_new_worker(url: str, tmp_path: Path) -> None:
    """SIGKILL a worker mid-run: a new worker finishes it; no completed step runs again."""
    ledger = tmp_path / "ledger.txt"
    items = list(range(8))
    first = start_worker(url, ledger)
    try:
        async with mai.Runtime(url) as rt:
            handle = await rt.start(f.ledgered, items, run_id="crash-run")
            wait_for_lines(ledger, 5)  # some steps done, two in flight
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            completed = {s.step_id for s in (await rt.steps("crash-run"))}
            with ledger.open("a") as fh:
                fh.write("KILL\n")
            second = start_worker(url, ledger)
            try:
                assert await handle.result() == [x + 1 for x in items]
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    lines = ledger.read_text().splitlines()
    after = lines[lines.index("KILL") + 1 :]
    assert completed, "the worker was killed before any step completed"
    assert not [ln for ln in after if ln.split()[1] in completed], after
    done = {ln.split()[1] for ln in lines if ln.startswith("done")}
    assert done == {f"1.{i + 1}" for i in items}


async def test_runs_commands_work_on_a_temporal_url(rt: Any, url: str) -> None:
    """mai runs list/show/steps/send/cancel work on a temporal:// URL (visibility, signals)."""
    assert await (await rt.start(f.sequential, 3, run_id="cli-run")).result() == 12
    listed = json.loads(mai_cli("runs", "list", "--store", url, "--json"))
    mine = next(r for r in listed if r["run_id"] == "cli-run")
    assert (mine["workflow"], mine["status"]) == ("Sequential", "SUCCEEDED")
    shown = json.loads(mai_cli("runs", "show", "cli-run", "--store", url, "--json"))
    assert (shown["status"], shown["output"], shown["workflow"], shown["steps"]) == (
        "SUCCEEDED",
        12,
        "Sequential",
        3,
    )
    steps = json.loads(mai_cli("runs", "steps", "cli-run", "--store", url, "--json"))
    assert [(s["step_id"], s["output"]) for s in steps] == [("1.1", 6), ("1.2", 7), ("1.3", 12)]
    handle = await rt.start(f.wait_flow, 2, run_id="cli-wait")
    assert "sent 'go'" in mai_cli("runs", "send", "cli-wait", "go", '"hi"', "--store", url)
    assert (await handle.result())["got"] == "hi"
    await rt.start(f.slow, 1, run_id="cli-cancel")
    mai_cli("runs", "cancel", "cli-cancel", "--store", url)
    with pytest.raises(mai.RunCancelledError):
        await (await rt.resume("cli-cancel")).result()


async def test_recorded_histories_replay_and_a_changed_workflow_fails(rt: Any) -> None:
    """Temporal's Replayer replays our recorded histories; a changed workflow is refused."""
    runs = {
        "replay-seq": (f.sequential, 3),
        "replay-par": (f.nested, [1, 2]),
        "replay-race": (f.race, 4),
        "replay-retry": (f.retrying, 1),
        "replay-wait": (f.wait_flow, 1),
    }
    for run_id, (module, value) in runs.items():
        handle = await rt.start(module, value, run_id=run_id)
        if run_id == "replay-wait":
            await rt.send(run_id, "go", 1)
        await handle.result()
    for run_id in runs:
        await rt.replay(await rt.event_history(run_id), modules=["temporal_flows"])
    history = await rt.event_history("replay-seq")
    original = f.sequential
    try:
        f.sequential = mai.Parallel(f.double, f.inc)
        with pytest.raises(Exception, match=r"[Nn]ondetermin"):
            await rt.replay(history, modules=["temporal_flows"])
    finally:
        f.sequential = original


async def test_map_wider_than_temporals_pending_activity_limit(
    dev_server: Any, task_queue: str
) -> None:
    """A Map of 2,500 branches (Temporal allows 2,000 pending activities) finishes."""
    n = int(os.environ.get("MAI_TEMPORAL_WIDE", "2500"))
    # a replay of this run's whole history (after an eviction) can take over Temporal's default
    # 10 s workflow task timeout on a loaded machine; timed out, it would be retried forever
    url = dev_server.url(task_queue, max_pending=500, task_timeout=60)
    async with mai.Runtime(url, workflows=[f.wide_sum], worker=True) as rt:
        handle = await rt.start(f.wide_sum, list(range(n)))
        assert await handle.result() == sum(range(1, n + 1))


@pytest.mark.chaos
async def test_map_of_5000_branches(dev_server: Any, task_queue: str) -> None:
    """A Map of 5,000 branches finishes with the default settings (waves of 1,000 activities)."""
    n = 5000
    async with mai.Runtime(dev_server.url(task_queue), workflows=[f.wide_sum], worker=True) as rt:
        handle = await rt.start(f.wide_sum, list(range(n)), run_id="wide-5000")
        assert await handle.result() == sum(range(1, n + 1))
        assert len(await rt.steps("wide-5000")) == n + 1


@pytest.mark.chaos
async def test_repeated_sigkills(url: str, tmp_path: Path) -> None:
    """Workers SIGKILLed again and again: every run finishes, no completed step runs again."""
    ledger = tmp_path / "ledger.txt"
    items = list(range(20))
    worker = start_worker(url, ledger)
    try:
        async with mai.Runtime(url) as rt:
            handles = [await rt.start(f.ledgered, items, run_id=f"kill-{i}") for i in range(3)]
            for kill in range(4):
                wait_for_lines(ledger, 10 * (kill + 1))
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                worker = start_worker(url, ledger)
            for handle in handles:
                assert await handle.result() == [x + 1 for x in items]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    starts: dict[tuple[str, str], int] = {}  # (run, step): each kill costs a step one start
    for line in ledger.read_text().splitlines():
        if line.startswith("start"):
            _, sid, run = line.split()
            starts[run, sid] = starts.get((run, sid), 0) + 1
    assert all(n <= 5 for n in starts.values()), starts
