"""Named crash points for fault-injection tests (``MAI_CRASH_AT``).

Set ``MAI_CRASH_AT=<point>`` (or ``<point>:<n>`` for the n-th time the point is reached) and the
process kills itself with SIGKILL there. Points: ``before_body``, ``after_body``,
``inside_commit``, ``after_commit``, ``during_claim``, ``during_recovery``. Tests use it to prove
that a crash at every persistence point leaves the store in its before- or after-state.
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "before_body",
    "after_body",
    "inside_commit",
    "after_commit",
    "during_claim",
    "during_recovery",
)

_spec = os.environ.get("MAI_CRASH_AT", "")
_name, _, _nth = _spec.partition(":")
_target = int(_nth) if _nth.isdigit() else 1
_hits = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``MAI_CRASH_AT`` names this point (and hit count)."""
    global _hits  # noqa: PLW0603 - one process-wide counter, by design
    if name != _name:
        return
    with _lock:
        _hits += 1
        if _hits == _target:
            os.kill(os.getpid(), signal.SIGKILL)
