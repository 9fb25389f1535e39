"""Fixtures of the `mai ui` tests: a real store filled by real runs, a worker, the served UI,
and Debian's headless Chromium driven by Playwright (never a downloaded browser).

A missing browser (``/usr/bin/chromium`` or the ``playwright`` package) skips the browser tests
locally and fails them when ``MAI_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets). Screenshots are
kept in the test's temporary directory; with ``MAI_UI_SCREENSHOTS=DIR`` they are also copied
there (``make ui-screenshots`` refreshes ``docs/_static/ui/``).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

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
    wait_until,
)


@pytest.fixture(scope="module")
def live_ui(tmp_path_factory):
    """`mai ui` served by a real process over a SQLite store filled by real durable runs."""
    tmp = tmp_path_factory.mktemp("ui")
    db = tmp / "ui.db"
    url = f"sqlite:///{db}"
    python = sys.executable
    subprocess.run([python, str(HERE / "uiapp.py"), "populate", url], env=_env(), check=True)
    with (tmp / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [python, str(HERE / "uiapp.py"), "worker", url],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    with (tmp / "ui.log").open("wb") as log:
        ui = subprocess.Popen(
            [python, "-m", "mai.core.cli", "ui", "--store", url, "--port", "0"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        lines: queue.Queue[bytes] = queue.Queue()
        assert ui.stdout is not None
        reader = threading.Thread(target=lambda: lines.put(ui.stdout.readline()), daemon=True)
        reader.start()
        try:
            printed = lines.get(timeout=START_TIMEOUT).decode().strip()
        except queue.Empty:
            pytest.fail(f"mai ui printed no URL: {(tmp / 'ui.log').read_text()}")
        assert printed.startswith("http://127.0.0.1:"), printed
        wait_until(
            lambda: (
                store_status(db, "approval-5") == "RUNNING"
                and store_status(db, "stuck-6") == "RUNNING"
            ),
            "the worker to run the waiting runs",
        )
        yield SimpleNamespace(
            url=printed, base=printed.split("/?")[0], db=db, store=url, tmp=tmp, python=python
        )
    finally:
        _stop(ui)
        _stop(worker)


@pytest.fixture(scope="module")
def browser(live_ui):
    """Debian's Chromium, headless, with a fresh profile; a page signed in through the URL."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'pymai[ui-test]')")
    profile = live_ui.tmp / "profile"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_ui.url)
        yield SimpleNamespace(page=page, errors=errors, context=context)
        context.close()
    assert not errors, errors


def _save(page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("MAI_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


@pytest.fixture
def shoot(live_ui):
    """Save a full-page screenshot as a test artefact (and to $MAI_UI_SCREENSHOTS if set)."""
    return lambda page, name: _save(page, live_ui.tmp, name)


@pytest.fixture
def screenshot(tmp_path):
    """Save a full-page screenshot in the test's directory (and to $MAI_UI_SCREENSHOTS)."""
    return lambda page, name: _save(page, tmp_path, name)
