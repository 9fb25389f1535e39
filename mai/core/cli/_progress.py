"""Live progress of a run: a redrawn tree on a terminal, plain lines otherwise.

Progress is an interceptor installed around the run: it sees every module call start and end,
and asks the durable runtime whether a step was replayed from the store instead of running.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import trio

from mai import Composite, DeadlineExceeded

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mai._seam import Call

_MAX_LINES = 24


@dataclass
class _Node:
    step_id: str
    name: str
    leaf: bool
    started: float
    ended: float | None = None
    state: str = "running"  # running, ok, replayed, error, timeout, cancelled
    detail: str = ""


@dataclass
class Progress:
    """An interceptor that records call progress and renders it."""

    is_recorded: Callable[[str], bool]
    out: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool = False
    nodes: dict[str, _Node] = field(default_factory=dict)
    _drawn: int = 0

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Track one call."""
        sid = call.step_id
        leaf = not isinstance(call.module, Composite)
        replay = leaf and self.is_recorded(sid)
        node = self.nodes[sid] = _Node(sid, call.name, leaf, time.monotonic())
        try:
            result = await proceed()
        except DeadlineExceeded as exc:
            self._end(node, "timeout", str(exc))
            raise
        except trio.Cancelled:
            self._end(node, "cancelled", "")
            raise
        except Exception as exc:
            self._end(node, "error", f"{type(exc).__name__}: {exc}")
            raise
        attempts = call.frame.attempts
        detail = f"after {attempts} attempts" if attempts > 1 else ""
        self._end(node, "replayed" if replay else "ok", detail)
        return result

    def _end(self, node: _Node, state: str, detail: str) -> None:
        node.ended = time.monotonic()
        node.state = state
        node.detail = detail
        if not self.live and node.leaf:
            print(self._line(node, indent=False), file=self.out, flush=True)

    def _line(self, node: _Node, *, indent: bool = True) -> str:
        mark = {
            "running": "…",
            "ok": "✓",
            "replayed": "↺",
            "error": "✗",
            "timeout": "⏱",
            "cancelled": "⊘",
        }[node.state]
        end = node.ended if node.ended is not None else time.monotonic()
        took = end - node.started
        what = {"replayed": "replayed from the store", "running": "running"}.get(
            node.state, f"{took * 1e3:.0f} ms"
        )
        depth = node.step_id.count(".") if indent else 0
        text = f"{'  ' * depth}{mark} {node.step_id} {node.name}  {what}"
        if node.detail:
            text += f"  ({node.detail[:100]})"
        return text

    def redraw(self) -> None:
        """Redraw the tree in place (terminal mode)."""
        order = sorted(
            self.nodes.values(), key=lambda n: tuple(int(p) for p in n.step_id.split("."))
        )
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

    def summary(self) -> str:
        """One line: how many steps ran, were replayed, failed."""
        leaves = [n for n in self.nodes.values() if n.leaf]
        counts = {
            s: sum(1 for n in leaves if n.state == s)
            for s in ("ok", "replayed", "error", "timeout")
        }
        return (
            f"{len(leaves)} steps: {counts['ok']} ran, "
            f"{counts['replayed']} replayed from the store, "
            f"{counts['timeout']} cut off by a deadline, {counts['error']} failed"
        )

    async def animate(self, done: trio.Event) -> None:
        """Redraw every 100 ms until ``done`` (terminal mode only)."""
        if not self.live:
            await done.wait()
            return
        while not done.is_set():
            self.redraw()
            with trio.move_on_after(0.1):
                await done.wait()
        self.redraw()
