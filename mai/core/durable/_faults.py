"""Named fault points, and the hook that fault-injection tests install on them.

Production code calls :func:`fault_point` at each persistence point; it does nothing unless a
test installed a hook with :func:`set_fault_hook` (in-process, or in a subprocess through a
launcher of its own). Nothing here reads the environment: what happens at a point, and when, is
entirely the installing test's decision (the crash tests' hook kills the process with SIGKILL
the n-th time a named point is reached).

Points: ``before_body``, ``after_body``, ``inside_transaction`` (a write transaction's first
statement ran: its locks are held, nothing is committed), ``inside_commit``, ``after_commit``,
``during_claim``, ``during_recovery``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: Every point production code reaches (a hook is called with one of these names).
FAULT_POINTS = (
    "before_body",
    "after_body",
    "inside_transaction",
    "inside_commit",
    "after_commit",
    "during_claim",
    "during_recovery",
)

_hook: Callable[[str], None] | None = None


def set_fault_hook(hook: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Install ``hook`` (called with the point's name at every fault point); return the old one.

    For fault-injection tests only: the hook may raise, or kill the process, to simulate a
    failure at that point. ``None`` removes it.

    Args:
        hook: The callable, or ``None``.

    Returns:
        The hook installed before (``None`` if there was none), to restore it afterwards.
    """
    global _hook
    previous, _hook = _hook, hook
    return previous


def fault_point(name: str) -> None:
    """Reach the fault point ``name``: call the installed hook, if any."""
    if _hook is not None:
        _hook(name)
