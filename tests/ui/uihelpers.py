"""Helpers shared by the `mai ui` tests and their fixtures (a unique module name: test
directories each have a conftest)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from realparts import unavailable

HERE = Path(__file__).parent
CHROMIUM = Path(os.environ.get("MAI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 60.0


def _unavailable(reason: str) -> None:
    unavailable("MAI_REQUIRE_BROWSER", reason)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MAI_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def store_status(db: Path, run_id: str) -> str:
    """The run's status as stored (read straight from the SQLite file)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status FROM mai_runs WHERE run_id = ?", (run_id,)).fetchone()
    return str(row[0]) if row else "missing"


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    """Poll ``check()`` (real clock: a real worker process is involved) until it is true."""
    give_up = time.monotonic() + timeout
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
