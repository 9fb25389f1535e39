"""Requeue from `mai ui` in a real headless Chromium: a FAILED run becomes PENDING with its steps
kept; a `mai ui --app` process resumes it itself and the run completes."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from uihelpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HERE,
    START_TIMEOUT,
    _env,
    _stop,
    _unavailable,
    store_status,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

WAIT_MS = 30_000
pytestmark = pytest.mark.xdist_group("ui-requeue")


@contextlib.contextmanager
def served(url: str, env: dict[str, str], log: Path, *extra: str) -> Iterator[str]:
    """`mai ui` on ``url`` in its own process; yields the URL it printed (token included)."""
    with log.open("ab") as err:
        ui = subprocess.Popen(
            [sys.executable, "-m", "mai.core.cli", "ui", "--store", url, "--port", "0", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        lines: queue.Queue[bytes] = queue.Queue()
        out = ui.stdout
        assert out is not None
        threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
        try:
            yield lines.get(timeout=START_TIMEOUT).decode().strip()
        except queue.Empty:
            pytest.fail(f"mai ui printed no URL: {log.read_text()}")
    finally:
        _stop(ui)


def steps_and_attempts(db: Path, run_id: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The run's committed steps (id, name, finished_at, worker) and its kept earlier outcomes."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        steps = conn.execute(
            "SELECT step_id, name, finished_at, worker FROM mai_steps WHERE run_id = ? "
            "ORDER BY step_id",
            (run_id,),
        ).fetchall()
        kept = conn.execute(
            "SELECT status FROM mai_attempts WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return steps, [str(s) for (s,) in kept]


def test_requeue_asks_first_requeues_and_with_app_the_ui_finishes_the_run(tmp_path, screenshot):
    """Requeue: declining does nothing; confirming makes the run PENDING; --app completes it."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'pymai[ui-test]')")
    db = tmp_path / "requeue.db"
    url = f"sqlite:///{db}"
    fix = tmp_path / "payment-service-fixed"
    env = {**_env(), "MAI_UI_FIX": str(fix)}
    subprocess.run(
        [sys.executable, str(HERE / "uiapp.py"), "failed", url, "flaky-1", "flaky-2"],
        env=env,
        check=True,
    )
    assert store_status(db, "flaky-1") == store_status(db, "flaky-2") == "FAILED"
    before = {run: steps_and_attempts(db, run)[0] for run in ("flaky-1", "flaky-2")}
    assert [s[:2] for s in before["flaky-2"]] == [("1.1", "fetch")]  # settle failed after it

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # without --app: the run is requeued for a worker; this process does not run it
            with served(url, env, tmp_path / "ui.log") as printed:
                base = printed.split("/?")[0]
                page.goto(printed)
                page.goto(f"{base}/#/run/flaky-1")
                expect(page.locator("h1 .badge")).to_have_text("FAILED")
                expect(page.locator("#sec-error")).to_contain_text("payment service is down")
                page.click("#act-requeue")
                expect(page.locator("#confirm-text")).to_contain_text("a worker")
                page.click("#confirm-no")
                expect(page.locator("#outcome")).to_have_text("nothing done")
                assert store_status(db, "flaky-1") == "FAILED"
                page.click("#act-requeue")
                page.click("#confirm-yes")
                expect(page.locator("#outcome")).to_contain_text("requeued", timeout=WAIT_MS)
                expect(page.locator("#outcome")).to_contain_text("status PENDING")
                expect(page.locator("h1 .badge")).to_have_text("PENDING")
                expect(page.locator("#act-requeue")).to_have_count(0)
                screenshot(page, "run-requeued")
            assert store_status(db, "flaky-1") == "PENDING"
            assert steps_and_attempts(db, "flaky-1") == (before["flaky-1"], ["FAILED"])

            # the cause is fixed; `mai ui --app` resumes the requeued run itself: it completes
            fix.touch()
            with served(url, env, tmp_path / "ui-app.log", "--app", "uiapp") as printed:
                base = printed.split("/?")[0]
                page.goto(printed)
                page.goto(f"{base}/#/run/flaky-2")
                expect(page.locator("h1 .badge")).to_have_text("FAILED")
                page.click("#act-requeue")
                expect(page.locator("#confirm-text")).to_contain_text("--app")
                page.click("#confirm-yes")
                expect(page.locator("#outcome")).to_contain_text("requeued", timeout=WAIT_MS)
                expect(page.locator("h1 .badge")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
                expect(page.locator("#sec-output")).to_contain_text("order 81 settled for 810")
                expect(page.locator("main")).to_contain_text("Earlier attempts")
                screenshot(page, "run-requeued-app")
            assert not errors, errors
        finally:
            browser.close()
    assert store_status(db, "flaky-2") == "SUCCEEDED"
    steps, kept = steps_and_attempts(db, "flaky-2")
    assert kept == ["FAILED"]
    assert [s for s in steps if s[0] == "1.1"] == before["flaky-2"]  # replayed, not run again
    assert [s[1] for s in steps] == ["fetch", "settle"]
    assert store_status(db, "flaky-1") == "PENDING"  # the view never picks up work unasked
