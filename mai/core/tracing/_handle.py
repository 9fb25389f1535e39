"""TraceHandle: the trace of one run, as a tree of spans."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ._render import can_encode, render, wants_colour
from ._span import STATUSES, Span

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from ._span import SpanStatus

#: The ``format`` key of :meth:`TraceHandle.to_dict`; bumped on incompatible changes.
FORMAT = "mai.trace/1"
#: The attribute a failed traced run's exception carries its trace in.
ATTRIBUTE = "__mai_trace__"

_spans_adapter: TypeAdapter[list[Span]] | None = None


def _step_key(step_id: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in step_id.split(".")) if step_id else ()
    except ValueError:  # a foreign id: sort it after the numeric ones
        return (sys.maxsize,)


class TraceHandle:
    """The trace of one top-level call: one :class:`~mai.Span` per module call, as a tree.

    Get one from :func:`mai.trace` (or, in tests, :func:`mai.testing.capture_spans`)::

        result, trace = await mai.trace(pipeline, x)
        trace.show()                       # indented tree; colour only on a TTY
        trace["fetch"].retries             # lookup by module name
        [s.name for s in trace.errors]     # the calls that failed
        TraceHandle.from_json(trace.to_json()) == trace

    Iterating yields the spans depth-first (a parent before its children; siblings in step-id
    order, so the order does not depend on how concurrent branches were scheduled).

    Args:
        spans: The spans, in any order.
        run_id: The id of the run, when it has one.
    """

    __slots__ = ("_children", "_roots", "_spans", "run_id")

    def __init__(self, spans: Iterable[Span], *, run_id: str | None = None) -> None:
        """Build the tree from ``spans``; a span whose parent is missing becomes a root."""
        self.run_id = run_id
        items = sorted(spans, key=lambda s: (_step_key(s.step_id), s.span_id))
        ids = {s.span_id for s in items}
        children: dict[int, list[Span]] = {}
        roots: list[Span] = []
        for s in items:
            if s.parent_id is None or s.parent_id not in ids:
                roots.append(s)
            else:
                children.setdefault(s.parent_id, []).append(s)
        self._children = children
        self._roots = tuple(roots)
        order: list[Span] = []
        stack = list(reversed(roots))
        while stack:
            s = stack.pop()
            order.append(s)
            stack.extend(reversed(children.get(s.span_id, ())))
        self._spans = tuple(order)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def spans(self) -> tuple[Span, ...]:
        """Every span, depth-first."""
        return self._spans

    @property
    def root(self) -> Span:
        """The span of the top-level call.

        Raises:
            LookupError: When the trace is empty.
        """
        if not self._roots:
            raise LookupError("this trace has no spans")
        return self._roots[0]

    @property
    def roots(self) -> tuple[Span, ...]:
        """The spans without a parent in this trace (normally just :attr:`root`)."""
        return self._roots

    @property
    def errors(self) -> list[Span]:
        """The spans whose call raised an error or timed out, depth-first.

        Cancelled calls are left out: they are the consequence of another failure (or of a
        cancellation from outside), not a failure of their own.
        """
        return [s for s in self._spans if s.failed]

    @property
    def duration(self) -> float:
        """Seconds from the first start to the last end (0 for an empty trace)."""
        if not self._spans:
            return 0.0
        return max(s.end for s in self._spans) - min(s.start for s in self._spans)

    def children(self, span: Span) -> list[Span]:
        """The spans of the calls ``span``'s call made, in step-id order."""
        return list(self._children.get(span.span_id, ()))

    def parent(self, span: Span) -> Span | None:
        """The span of the call that made ``span``'s call (``None`` for a root)."""
        if span.parent_id is None:
            return None
        return next((s for s in self._spans if s.span_id == span.parent_id), None)

    def find(
        self,
        name: str | None = None,
        *,
        step_id: str | None = None,
        status: SpanStatus | None = None,
    ) -> list[Span]:
        """Return the spans matching every given criterion, depth-first.

        Args:
            name: Module name.
            step_id: Step id (a retried parent can make several calls with the same step id).
            status: ``"ok"``, ``"error"``, ``"cancelled"`` or ``"timed_out"``.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown span status {status!r}; valid: {', '.join(STATUSES)}")
        return [
            s
            for s in self._spans
            if (name is None or s.name == name)
            and (step_id is None or s.step_id == step_id)
            and (status is None or s.status == status)
        ]

    def __getitem__(self, name: str) -> Span:
        """Return the first span (depth-first) of the module called ``name``.

        Raises:
            KeyError: When no call of that module is in the trace; the message lists the names.
        """
        for s in self._spans:
            if s.name == name:
                return s
        names = ", ".join(dict.fromkeys(s.name for s in self._spans)) or "none"
        raise KeyError(f"no span named {name!r} in this trace; modules traced: {names}")

    def __contains__(self, name: object) -> bool:
        """Whether a module called ``name`` appears in the trace."""
        return any(s.name == name for s in self._spans)

    def __iter__(self) -> Iterator[Span]:
        """Iterate over the spans, depth-first."""
        return iter(self._spans)

    def __len__(self) -> int:
        """The number of spans."""
        return len(self._spans)

    def __eq__(self, other: object) -> bool:
        """Traces are equal when they hold the same spans and run id."""
        if not isinstance(other, TraceHandle):
            return NotImplemented
        return self._spans == other._spans and self.run_id == other.run_id

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Return ``<TraceHandle root-name: N spans>``."""
        root = self._roots[0].name if self._roots else "empty"
        return f"<TraceHandle {root}: {len(self._spans)} spans>"

    # -- rendering -------------------------------------------------------------------------------

    def render(self, *, colour: bool = False, unicode: bool = True) -> str:
        """Return the trace as an indented tree, one line per call.

        Each line shows the module name, step id, duration, input and output sizes, retries,
        the deadline in force (relative to the call's start) and, unless the call succeeded,
        its status and error. ``~`` marks a size estimated from ``repr``.

        Args:
            colour: Add ANSI colours (status in green/red/yellow/magenta).
            unicode: Draw with box-drawing characters; ``False`` uses ASCII only.
        """
        return render(self._roots, self._kids, colour=colour, unicode=unicode)

    def _kids(self, span: Span) -> Sequence[Span]:
        return self._children.get(span.span_id, ())

    def show(self, file: Any = None) -> None:
        """Print the tree to ``file`` (default ``sys.stdout``), coloured only on a TTY.

        ``NO_COLOR`` in the environment turns colour off; a stream that cannot encode the
        box-drawing characters gets ASCII.
        """
        stream = sys.stdout if file is None else file
        text = self.render(colour=wants_colour(stream), unicode=can_encode(stream, "├─│└µ→"))
        print(text, file=stream)

    def __str__(self) -> str:
        """The tree, without colour."""
        return self.render()

    # -- exchange --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict; :meth:`from_dict` turns it back into an equal trace."""
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "spans": [asdict(s) for s in self._spans],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceHandle:
        """Rebuild a trace from :meth:`to_dict` output.

        Raises:
            ValueError: When ``data`` is not a trace of a supported format; the message says
                what is wrong.
        """
        global _spans_adapter  # noqa: PLW0603 - one adapter, built on first use
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a mai trace: expected format {FORMAT!r}, received {got!r}")
        adapter = _spans_adapter
        if adapter is None:
            adapter = _spans_adapter = TypeAdapter(list[Span])
        try:
            spans = adapter.validate_python(data.get("spans"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"invalid span in trace at spans.{where}: {first['msg']}") from None
        return cls(spans, run_id=data.get("run_id"))

    def to_json(self, *, indent: int | None = None) -> str:
        """Return the trace as JSON (the :meth:`to_dict` form)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> TraceHandle:
        """Rebuild a trace from :meth:`to_json` output.

        Raises:
            ValueError: When ``text`` is not JSON or not a trace.
        """
        return cls.from_dict(json.loads(text))

    @staticmethod
    def of(error: BaseException) -> TraceHandle | None:
        """Return the trace attached to an exception raised by :func:`mai.trace`, if any.

        When the traced call fails, :func:`mai.trace` re-raises the exception unchanged, with
        the trace of the failed run attached (as ``error.__mai_trace__``), so it is not lost::

            try:
                await mai.trace(pipeline, x)
            except ValueError as err:
                TraceHandle.of(err).show()
        """
        handle = getattr(error, ATTRIBUTE, None)
        return handle if isinstance(handle, TraceHandle) else None
