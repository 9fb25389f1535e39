"""The crash tests' fault hook: kill this process with SIGKILL at a named fault point.

Production code never reads the environment for faults; a test's subprocess installs this hook
itself (``worker_script.py`` calls :func:`install_from_env` first thing), from the test-only
variable ``MAI_CRASH_AT=<point>`` or ``<point>:<n>`` (the n-th time the point is reached).
"""

from __future__ import annotations

import os
import signal
import threading

from mai.core.durable import FAULT_POINTS, set_fault_hook

VARIABLE = "MAI_CRASH_AT"


def install(spec: str) -> None:
    """Install a hook that SIGKILLs this process at ``point[:n]`` (``spec``)."""
    name, _, nth = spec.partition(":")
    if name not in FAULT_POINTS:
        raise ValueError(f"{VARIABLE}={spec!r}: no fault point {name!r} (known: {FAULT_POINTS})")
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


def install_from_env() -> None:
    """Install the hook named by ``$MAI_CRASH_AT``, if the test set it."""
    spec = os.environ.get(VARIABLE, "")
    if spec:
        install(spec)
