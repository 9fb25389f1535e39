"""An independent interpreter: what a program's durable run must produce, computed without mai.

It walks the tree description with the semantics the documentation promises: a composite
runs its children (a retry runs them again); a step (a leaf, a plain-code module, a module
predicate, a Map's splitter) whose result was committed is replayed, never executed again; a
flaky leaf fails its first ``fail_k`` executions (a Parallel branch may fail only when its
siblings cannot, since they are cancelled wherever they are); a NonBlockingDelay's background
call runs once per position; each ``mai.wait_for`` consumes one message. Step positions are
the interpreter's own paths (unique per invocation, the same for a retry), not mai's step ids.

The prediction holds the run's result (readings as :data:`ANY` placeholders), how many ``call``
rows each module name commits, and how many messages each topic receives. A program whose
outcome could depend on scheduling or on where kills land is rejected with
:class:`InvalidProgram` (see ``generator``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .generator import (
    can_fail,
    leaf_value,
    payload_value,
    pred_value,
    split_value,
    until_value,
)

if TYPE_CHECKING:
    from .generator import Node, Program


class InvalidProgram(Exception):
    """The program's outcome would not be determined by its description alone."""


class _Fail(Exception):
    """A failure propagating through the interpreted program."""


class _Any:
    """The placeholder for a reading (``mai.now()`` or ``mai.random()``)."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass
class Prediction:
    """What the durable run of a program must produce."""

    result: Any
    commits: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    silent: set[str] = field(default_factory=set)  # names that must never commit (Race losers)


class _Interp:
    def __init__(self, program: Program) -> None:
        self.run_id = program.run_id
        self.fails: Counter[tuple[Any, ...]] = Counter()
        self.committed: dict[tuple[Any, ...], Any] = {}
        self.background: set[tuple[Any, ...]] = set()
        self.p = Prediction(None)

    # -- steps (committed, replayed) -------------------------------------------------------

    def step(self, name: str, path: tuple[Any, ...], value: Any) -> Any:
        if path in self.committed:
            return self.committed[path]
        self.committed[path] = value
        self.p.commits[name] += 1
        return value

    def leaf(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        if path in self.committed:
            return self.committed[path]
        for _ in range(node.retries + 1):
            if self.fails[path] < node.fail_k:
                self.fails[path] += 1
                continue
            return self.step(node.name, path, leaf_value(node.name, node.out, x))
        raise _Fail(node.name)

    def code(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        if path in self.committed:
            return self.committed[path]
        for _ in range(node.retries + 1):
            try:
                value = self.code_body(node, x, path)
            except _Fail:
                continue
            return self.step(node.name, path, value)
        raise _Fail(node.name)

    def code_body(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        reads: list[Any] = []
        for i, op in enumerate(node.ops):
            at = (*path, i)
            if op.kind == "call":
                x = self.run(node.children[op.child], x, at)
            elif op.kind in {"now", "random"}:
                reads.append({"now" if op.kind == "now" else "rand": ANY})
            elif op.kind == "wait":
                if at not in self.committed:
                    self.committed[at] = None
                    self.p.messages[op.topic] += 1
                x = [x, payload_value(self.run_id, op.topic)]
        return [x, reads]

    # -- composites ------------------------------------------------------------------------

    def run(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        if node.kind == "leaf":
            return self.leaf(node, x, path)
        if node.kind == "code":
            return self.code(node, x, path)
        for _ in range(node.retries + 1):
            try:
                return getattr(self, f"run_{node.kind}")(node, x, path)
            except _Fail:
                continue
        raise _Fail(node.name)

    def run_seq(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        for i, child in enumerate(node.children):
            x = self.run(child, x, (*path, i))
        return x

    def branch(self, node: Node, child: Node, x: Any, path: tuple[Any, ...]) -> Any:
        try:
            return self.run(child, x, path)
        except _Fail as exc:
            others = [c for c in node.children if c is not child]
            if node.kind == "par" and not any(can_fail(c) for c in others):
                raise  # the siblings are cancelled wherever they are; none of them can fail
            msg = f"a failure crosses {node.kind} {node.name} (siblings would be cancelled)"
            raise InvalidProgram(msg) from exc

    def run_par(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        out = [self.branch(node, c, x, (*path, i)) for i, c in enumerate(node.children)]
        return {f"k{i}": v for i, v in enumerate(out)} if node.named else out

    def run_map(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        items = self.step(f"{node.name}_split", (*path, "split"), split_value(node.name, node.n, x))
        fn = node.children[0]
        return [self.branch(node, fn, item, (*path, "item", i)) for i, item in enumerate(items)]

    def run_race(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        for i, child in enumerate(node.children):
            if i != node.winner:
                self.p.silent.update(n.name for n in child.walk())
        return self.branch(node, node.children[node.winner], x, (*path, node.winner))

    def decide(self, node: Node, x: Any, path: tuple[Any, ...], value: bool) -> bool:
        if node.pred_module:
            suffix = "pred" if node.kind == "cond" else "until"
            return bool(self.step(f"{node.name}_{suffix}", path, value))
        return value

    def run_cond(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        if self.decide(node, x, (*path, "pred"), pred_value(node.name, x)):
            return self.run(node.children[0], x, (*path, "then"))
        if len(node.children) > 1:
            return self.run(node.children[1], x, (*path, "else"))
        return x

    def run_loop(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        body = node.children[0]
        checks = 0

        def until(v: Any) -> bool:
            nonlocal checks
            checks += 1
            assert node.modulus is not None
            return self.decide(
                node, v, (*path, "until", checks), until_value(node.name, node.modulus, v)
            )

        x = self.run(body, x, (*path, "it", 0))
        for j in range(1, node.n):
            if node.modulus is not None and until(x):
                return x
            x = self.run(body, x, (*path, "it", j))
        if node.modulus is None or until(x):
            return x
        raise _Fail(f"{node.name}: LoopLimitExceeded")

    def run_delay(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        return x

    def run_nbd(self, node: Node, x: Any, path: tuple[Any, ...]) -> Any:
        at = (*path, "background")
        if at not in self.background:  # a retry of an enclosing composite reuses the position
            self.background.add(at)
            self.branch(node, node.children[0], x, at)
        return x


def predict(program: Program) -> Prediction:
    """Predict the durable run of ``program`` (raises :class:`InvalidProgram`)."""
    interp = _Interp(program)
    try:
        interp.p.result = interp.run(program.root, program.x0, ())
    except _Fail as exc:
        msg = f"the program fails at {exc}"
        raise InvalidProgram(msg) from exc
    return interp.p


def mismatch(predicted: Any, actual: Any, where: str = "result") -> str | None:
    """Where ``actual`` differs from the prediction (tuples compare as lists); ``None`` if not.

    A placeholder reading matches ``{"now": <epoch seconds>}`` or ``{"rand": <int>}``.
    """
    if (
        isinstance(predicted, dict)
        and len(predicted) == 1
        and next(iter(predicted.values())) is ANY
    ):
        kind = next(iter(predicted))
        ok = isinstance(actual, dict) and set(actual) == {kind}
        value = actual.get(kind) if ok else None
        if kind == "now":
            ok = ok and isinstance(value, float) and math.isfinite(value) and value > 1.6e9
        else:
            ok = ok and isinstance(value, int) and 0 <= value < 1_000_000
        return None if ok else f"{where}: expected a {kind} reading, got {actual!r}"
    if isinstance(predicted, list | tuple):
        if not isinstance(actual, list | tuple) or len(actual) != len(predicted):
            return f"{where}: expected {predicted!r}, got {actual!r}"
        for i, (p, a) in enumerate(zip(predicted, actual, strict=True)):
            bad = mismatch(p, a, f"{where}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(predicted, dict):
        if not isinstance(actual, dict) or set(actual) != set(predicted):
            return f"{where}: expected {predicted!r}, got {actual!r}"
        for k, p in predicted.items():
            bad = mismatch(p, actual[k], f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    if type(predicted) is not type(actual) or predicted != actual:
        return f"{where}: expected {predicted!r}, got {actual!r}"
    return None
