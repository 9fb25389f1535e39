"""The fault tests' hooks: kill (SIGKILL) or pause (SIGSTOP) this process at a named fault point.

Production code never reads the environment for faults; a test's subprocess installs a hook
itself (``worker_script.py`` and ``tests/postgres/pg_worker.py`` call :func:`install_from_env`
first thing), from test-only variables:

- ``MAI_CRASH_AT=<point>`` or ``<point>:<n>``: SIGKILL at the n-th time the point is reached.
- ``MAI_PAUSE_AT=<point>:<file>``: SIGSTOP at the first time the point is reached once ``file``
  exists (the test creates it when the process is where it wants it, e.g. owning runs); the
  hook writes ``paused <point>`` into the file first. The test resumes it with SIGCONT.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from mai.core.durable import FAULT_POINTS, set_fault_hook

VARIABLE = "MAI_CRASH_AT"
PAUSE_VARIABLE = "MAI_PAUSE_AT"


def _point(variable: str, spec: str, name: str) -> str:
    if name not in FAULT_POINTS:
        raise ValueError(f"{variable}={spec!r}: no fault point {name!r} (known: {FAULT_POINTS})")
    return name


def install(spec: str) -> None:
    """Install a hook that SIGKILLs this process at ``point[:n]`` (``spec``)."""
    name, _, nth = spec.partition(":")
    _point(VARIABLE, spec, name)
    target = int(nth) if nth.isdigit() else 1
    hits = 0
    lock = threading.Lock()

    def hook(point: str) -> None:
        nonlocal hits
        if point != name:
            return
        with lock:
            hits += 1
            if hits == target:
                os.kill(os.getpid(), signal.SIGKILL)

    set_fault_hook(hook)


def install_pause(spec: str) -> None:
    """Install a hook that SIGSTOPs this process at ``point`` once ``file`` exists (``spec``)."""
    name, _, armed = spec.partition(":")
    _point(PAUSE_VARIABLE, spec, name)
    if not armed:
        raise ValueError(f"{PAUSE_VARIABLE}={spec!r}: expected <point>:<file>")
    flag = Path(armed)
    done = False
    lock = threading.Lock()

    def hook(point: str) -> None:
        nonlocal done
        if point != name or done or not flag.exists():
            return
        with lock:
            if done:
                return
            done = True
            flag.write_text(f"paused {point}\n")
            # SIGSTOP to this thread: it stops the whole process before this thread runs one
            # more instruction (os.kill would let another thread take the signal, and this one
            # run on, past the point, until that one is scheduled)
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)

    set_fault_hook(hook)


def install_from_env() -> None:
    """Install the hook named by ``$MAI_CRASH_AT`` or ``$MAI_PAUSE_AT``, if the test set one."""
    crash, pause = os.environ.get(VARIABLE, ""), os.environ.get(PAUSE_VARIABLE, "")
    if crash and pause:
        raise ValueError(f"set {VARIABLE} or {PAUSE_VARIABLE}, not both")
    if crash:
        install(crash)
    elif pause:
        install_pause(pause)
