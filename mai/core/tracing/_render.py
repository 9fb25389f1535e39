"""Rendering a trace as an indented tree for a terminal."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._span import Span

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_COLOURS = {"ok": "\x1b[32m", "error": "\x1b[31m", "timed_out": "\x1b[33m", "cancelled": "\x1b[35m"}
_UNICODE = ("├── ", "└── ", "│   ", "    ")
_ASCII = ("|-- ", "`-- ", "|   ", "    ")


def format_duration(seconds: float, *, unicode: bool = True) -> str:
    """Return a short human form of a duration: ``850 µs``, ``12.5 ms``, ``2.50 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} {'µs' if unicode else 'us'}"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_size(n: int) -> str:
    """Return a short human form of a byte count: ``12 B``, ``3.4 kB``, ``1.2 MB``."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def wants_colour(stream: object) -> bool:
    """Colour only on a TTY, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def can_encode(stream: object, text: str) -> bool:
    """Whether ``stream``'s encoding can write ``text`` (box-drawing characters, ``µ``)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _line(
    span: Span, kids: Sequence[Span], *, unicode: bool, paint: Callable[[str, str], str]
) -> str:
    parts = [paint(_BOLD, span.name), paint(_DIM, f"[{span.step_id}]")]
    parts.append(format_duration(span.duration, unicode=unicode))
    approx = "" if span.sizes_exact else "~"
    arrow = "→" if unicode else "->"
    out = "-" if span.output_bytes is None else f"{approx}{format_size(span.output_bytes)}"
    parts.append(paint(_DIM, f"{approx}{format_size(span.input_bytes)} {arrow} {out}"))
    tokens = span.tokens
    if tokens is not None:
        parts.append(f"tokens={tokens[0]}{arrow}{tokens[1]}")
    if span.retries:
        parts.append(f"retries={span.retries}")
    if span.deadline is not None:
        parts.append(paint(_DIM, f"deadline=+{span.deadline - span.start:.3g}s"))
    if span.status != "ok":
        detail = span.status.replace("_", " ")
        same = (span.error_type, span.error_message)
        if any((k.error_type, k.error_message) == same for k in kids):
            detail += " ↑" if unicode else " ^"  # a child's error, passed on: shown there
        elif span.error_type:
            detail += f" {span.error_type}: {span.error_message}"
        parts.append(paint(_COLOURS[span.status], detail))
    return "  ".join(parts)


def render(
    roots: Sequence[Span],
    children: Callable[[Span], Sequence[Span]],
    *,
    colour: bool = False,
    unicode: bool = True,
) -> str:
    """Render spans as a tree: one line per span, children indented under their parent."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    tee, last, pipe, blank = _UNICODE if unicode else _ASCII
    lines: list[str] = []

    def walk(span: Span, prefix: str, connector: str, child_prefix: str) -> None:
        kids = children(span)
        lines.append(prefix + connector + _line(span, kids, unicode=unicode, paint=paint))
        for i, kid in enumerate(kids):
            end = i == len(kids) - 1
            walk(kid, prefix + child_prefix, last if end else tee, blank if end else pipe)

    for root in roots:
        walk(root, "", "", "")
    return "\n".join(lines)
