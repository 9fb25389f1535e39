"""Live progress of a run: a redrawn tree on a terminal, one line per finished step otherwise.

:class:`Progress` is an interceptor (install it with :func:`mai.intercept`): it sees every module
call start and end, and marks the steps a durable run replayed from its store
(:attr:`mai.Call.replayed`). ``mai run`` uses it; so can any program.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import anyio

from mai._composites import Composite
from mai._errors import DeadlineExceeded

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mai._seam import Call

_MAX_LINES = 24
_MARKS = {
    "running": "…",
    "ok": "✓",
    "replayed": "↺",
    "error": "✗",
    "timeout": "⏱",
    "cancelled": "⊘",
}


class _Event(Protocol):
    def is_set(self) -> bool: ...
    async def wait(self) -> Any: ...


@dataclass
class _Node:
    step_id: str
    name: str
    leaf: bool
    started: float
    ended: float | None = None
    state: str = "running"  # running, ok, replayed, error, timeout, cancelled
    detail: str = ""


def _order(step_id: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in step_id.split("."))


@dataclass
class Progress:
    """An interceptor that follows every module call of a run and shows how it goes.

    Marks: ``✓`` ran, ``↺`` replayed from a durable store, ``✗`` failed, ``⏱`` cut off by a
    deadline, ``⊘`` cancelled, ``…`` running. Without ``live`` each finished leaf step prints
    one line to ``out`` as it ends; with ``live`` (a terminal) :meth:`animate` redraws the whole
    tree in place.

    Example::

        progress = mai.Progress()
        with mai.intercept(progress):
            result = await pipeline(x)
        print(progress.summary())

    Attributes:
        out: Where lines go (default: ``sys.stderr``, so stdout keeps only the program's output).
        live: Redraw a tree in place (for a terminal) instead of printing one line per step.
    """

    out: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool = False
    _nodes: dict[str, _Node] = field(default_factory=dict, repr=False)
    _drawn: int = field(default=0, repr=False)

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Follow one call (the interceptor protocol)."""
        leaf = not isinstance(call.module, Composite)
        node = self._nodes[call.step_id] = _Node(call.step_id, call.name, leaf, time.monotonic())
        try:
            result = await proceed()
        except DeadlineExceeded as exc:
            self._end(node, "timeout", str(exc))
            raise
        except Exception as exc:
            self._end(node, "error", f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:  # the backend's cancellation
            self._end(node, "cancelled", "")
            raise
        attempts = call.frame.attempts
        detail = f"after {attempts} attempts" if attempts > 1 else ""
        self._end(node, "replayed" if call.replayed else "ok", detail)
        return result

    def _end(self, node: _Node, state: str, detail: str) -> None:
        node.ended = time.monotonic()
        node.state = state
        node.detail = detail
        if not self.live and node.leaf:
            print(self._line(node, indent=False), file=self.out, flush=True)

    def _line(self, node: _Node, *, indent: bool = True) -> str:
        end = node.ended if node.ended is not None else time.monotonic()
        what = {"replayed": "replayed from the store", "running": "running"}.get(
            node.state, f"{(end - node.started) * 1e3:.0f} ms"
        )
        depth = node.step_id.count(".") if indent else 0
        text = f"{'  ' * depth}{_MARKS[node.state]} {node.step_id} {node.name}  {what}"
        if node.detail:
            text += f"  ({node.detail[:100]})"
        return text

    def counts(self) -> dict[str, int]:
        """How many leaf steps are in each state (``ok``, ``replayed``, ``error``, ...)."""
        out = dict.fromkeys(_MARKS, 0)
        for n in self._nodes.values():
            if n.leaf:
                out[n.state] += 1
        return out

    def summary(self) -> str:
        """One line: how many steps ran, were replayed, were cut off by a deadline, failed."""
        c = self.counts()
        return (
            f"{sum(c.values())} steps: {c['ok']} ran, {c['replayed']} replayed from the store, "
            f"{c['timeout']} cut off by a deadline, {c['error']} failed"
        )

    def redraw(self) -> None:
        """Draw the tree of calls, replacing the previous drawing (terminal mode)."""
        order = sorted(self._nodes.values(), key=lambda n: _order(n.step_id))
        running = [n for n in order if n.state == "running"]
        done = [n for n in order if n.state != "running"]
        shown = (
            order
            if len(order) <= _MAX_LINES
            else running[: _MAX_LINES // 2] + done[-(_MAX_LINES // 2) :]
        )
        lines = [self._line(n) for n in shown]
        if len(order) > len(shown):
            lines.append(f"  ... {len(order)} calls: {len(running)} running, {len(done)} finished")
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    async def animate(self, done: _Event, interval: float = 0.1) -> None:
        """Redraw every ``interval`` seconds until ``done`` is set (only when :attr:`live`).

        Run it beside the run in a nursery, and set ``done`` (a Trio or anyio ``Event``) when
        the run ends; it draws once more then. Works on Trio and asyncio.
        """
        if not self.live:
            await done.wait()
            return
        while not done.is_set():
            self.redraw()
            with anyio.move_on_after(interval):
                await done.wait()
        self.redraw()
