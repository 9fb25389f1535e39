"""Random workflow trees drawn from a seed, as plain data (no mai import here).

A :class:`Program` is a tree of :class:`Node` descriptions. Every composite of mai appears
(``Sequential``, ``Parallel`` positional and named, ``Map`` with ``max_concurrency``, ``Race``,
``Conditional`` with a plain or a module predicate, ``Loop`` with a plain or a module ``until``,
``BlockingDelay``, ``NonBlockingDelay``), with plain-code modules (``code``) whose bodies call
other nodes and use ``mai.now()``, ``mai.random()``, ``mai.sleep()`` and ``mai.wait_for()``,
and ``retries`` on any node. Flaky leaves fail their first ``fail_k`` executions, counted in the
side-effect ledger (never decided by randomness at run time), so a program's result does not
depend on where kills land.

The values every node computes are defined here too (:func:`mix` and friends), as the
specification both the real leaf bodies (``builder``) and the ``interpreter`` follow. Readings
of ``mai.now()`` and ``mai.random()`` travel inside values as ``{"now": t}`` and
``{"rand": r}``; :func:`canon` masks them, so what a leaf computes never depends on a reading,
while the readings still flow into recorded step inputs (a lost reading changes an input).

:func:`generate` draws trees until the interpreter says the program is well-formed: it
succeeds, no failure crosses a concurrent composite (where sibling cancellation would make
failure counts depend on scheduling), a Race's winner cannot fail, and no shape named in
``Shapes.exclude`` occurs (see ``KNOWN_BUGS`` in ``test_random_programs``).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

LEAF_TYPES = ("int", "int", "str", "any")

COMPOSITES = (
    *("seq", "par", "map", "race", "cond", "loop", "delay", "nbd"),
    *("code", "code", "code", "seq"),  # weights: plain-code modules carry the primitives
)

ROOTS = ("seq", "seq", "code", "code", "par", "map", "loop", "cond")
"""What a program's top-level workflow is."""

SHAPE_NBD_UNDER_RETRY = "nbd-under-retry"
"""A NonBlockingDelay inside a composite that may retry (issue 11, defect 9)."""

SHAPE_MIXED_TYPES = "mixed-types"
"""A Conditional or Race whose routes return different types (issue 11, defect 13)."""

SHAPE_NOW = "now-into-input"
"""A ``mai.now()`` reading whose value flows into a later step's input (issue 11, defect 11)."""

SHAPE_FAIL_CANCELS = "failure-cancels-siblings"
"""A Parallel branch failing (caught by a retrying ancestor) while its siblings run: they are
cancelled wherever they are, and the retry must not run a completed sibling again (issue 11,
defect 12)."""

STORE_ERROR_TEARDOWN = "store-error-teardown"
"""Not a shape: a worker whose Runtime a transient store error tears down (issue 11, defect 10).
Listed in ``KNOWN_BUGS``, the runner counts such a worker's death as a crash."""


# -- the value specification -------------------------------------------------------------------


def canon(value: Any) -> Any:
    """The JSON shape of a value with every reading masked (tuples become lists)."""
    if isinstance(value, dict):
        if set(value) in ({"now"}, {"rand"}):
            return "@reading"
        return {str(k): canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canon(v) for v in value]
    return value


def mix(salt: str, value: Any) -> int:
    """A stable 32-bit hash of ``salt`` and the masked value."""
    text = json.dumps(canon(value), sort_keys=True, separators=(",", ":"))
    return int(hashlib.sha256(f"{salt}|{text}".encode()).hexdigest()[:8], 16)


def leaf_value(name: str, out: str, x: Any) -> Any:
    """What leaf ``name`` returns for input ``x`` (``out`` is its declared type)."""
    h = mix(name, x) % 1_000_000
    return f"s{h}" if out == "str" else h


def split_value(name: str, n: int, x: Any) -> list[int]:
    """The ``n`` items a Map's splitter makes from ``x``."""
    return [mix(f"{name}:{i}", x) % 1000 for i in range(n)]


def pred_value(name: str, x: Any) -> bool:
    """A Conditional predicate (plain function or module) on ``x``."""
    return mix(name, x) % 2 == 0


def until_value(name: str, modulus: int, x: Any) -> bool:
    """A Loop's ``until`` on ``x``."""
    return mix(name, x) % modulus == 0


def payload_value(run_id: str, topic: str) -> dict[str, Any]:
    """The message the test driver sends to ``run_id`` on ``topic``."""
    return {"topic": topic, "n": mix(run_id, topic) % 1000}


def digest(value: Any) -> str:
    """A short digest of a value's exact JSON (readings included)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the tree ----------------------------------------------------------------------------------


def can_fail(node: Node) -> bool:
    """Whether a failure may leave ``node`` (it holds a leaf failing more often than it retries)."""
    return any(n.kind == "leaf" and n.fail_k > n.retries for n in node.walk())


@dataclass
class Op:
    """One operation of a plain-code module's body."""

    kind: str  # "call" | "now" | "random" | "sleep" | "wait"
    child: int = -1  # call: index into the node's children
    seconds: float = 0.0  # sleep
    timeout: float | None = None  # wait
    topic: str = ""  # wait


@dataclass
class Node:
    """One node of a program tree (see the module docstring for the kinds)."""

    kind: str
    name: str
    children: list[Node] = field(default_factory=list)
    out: str = "any"  # leaf: declared output type
    fail_k: int = 0  # leaf: how many first executions fail
    retries: int = 0
    seconds: float = 0.0  # leaf: body time; delay/nbd: the delay
    named: bool = False  # par: keyword branches
    n: int = 0  # map: items; loop: max_iterations
    mc: int | None = None  # map: max_concurrency
    winner: int = 0  # race: the branch that wins (the others always fail or stall)
    pred_module: bool = False  # cond: predicate is a module (a step); loop: until is one
    modulus: int | None = None  # loop: until(x) is mix % modulus == 0 (None: no until)
    ops: list[Op] = field(default_factory=list)  # code

    def walk(self) -> list[Node]:
        """This node and every node below it, depth first."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out

    def describe(self, indent: str = "") -> str:
        """A readable outline of the subtree (for failure messages)."""
        attrs = {
            "out": self.out if self.kind in {"leaf", "doom"} else None,
            "fail_k": self.fail_k or None,
            "retries": self.retries or None,
            "seconds": self.seconds or None,
            "named": self.named or None,
            "n": self.n or None,
            "mc": self.mc,
            "winner": self.winner if self.kind == "race" else None,
            "pred_module": self.pred_module or None,
            "modulus": self.modulus,
        }
        text = ", ".join(f"{k}={v}" for k, v in attrs.items() if v is not None)
        lines = [f"{indent}{self.kind} {self.name} {text}".rstrip()]
        lines.extend(
            f"{indent}  . {op.kind} {op.seconds or ''}{op.topic}".rstrip()
            for op in self.ops
            if op.kind != "call"
        )
        lines.extend(c.describe(indent + "  ") for c in self.children)
        return "\n".join(lines)


@dataclass
class Program:
    """A generated workflow: its seed, its tree and its input."""

    seed: int
    root: Node
    x0: int
    shapes: frozenset[str]  # the known-bug shapes this program contains

    @property
    def run_id(self) -> str:
        """The id the runner gives the program's durable run."""
        return f"rp-{self.seed}"

    @property
    def name(self) -> str:
        """The workflow's name (the root node's)."""
        return self.root.name


@dataclass(frozen=True)
class Shapes:
    """What the generator may draw.

    Attributes:
        budget: Roughly how many nodes a program has at most.
        max_depth: Nesting depth of composites.
        width: Most children of a Sequential (a plain-code module gets one operation more).
        exclude: Known-bug shapes (``SHAPE_*``) never to draw.
    """

    budget: int = 14
    max_depth: int = 4
    width: int = 4
    exclude: frozenset[str] = frozenset()


@dataclass
class _Ctx:
    """Where a node is being drawn."""

    depth: int
    under_code: bool  # NonBlockingDelay needs a composite path up to the top
    waits: bool  # mai.wait_for allowed (not inside a Race loser)
    may_fail: bool = (
        False  # a failure here reaches an ancestor with retries, no concurrency between
    )

    def concurrent(self) -> _Ctx:
        """The context of a concurrent branch: a failure must not leave it."""
        return _Ctx(self.depth, self.under_code, self.waits, may_fail=False)


class _Draw:
    """One drawing attempt."""

    def __init__(self, rng: random.Random, seed: int, shapes: Shapes) -> None:
        self.rng = rng
        self.seed = seed
        self.shapes = shapes
        self.ids = 0
        self.budget = shapes.budget
        self.found: set[str] = set()

    def name(self, kind: str) -> str:
        self.ids += 1
        return f"rp{self.seed}_{kind}{self.ids}"

    def leaf(
        self, out: str | None = None, *, flaky: bool = True, may_fail: bool = False
    ) -> tuple[Node, str]:
        rng = self.rng
        out = out or rng.choice(LEAF_TYPES)
        node = Node(
            "leaf", self.name("leaf"), out=out, seconds=rng.choice([0.0, 0.002, 0.01, 0.05])
        )
        if flaky and rng.random() < 0.3:
            node.fail_k = rng.choice([1, 1, 2])
            propagate = may_fail and rng.random() < 0.5  # a retrying ancestor catches it
            node.retries = rng.randrange(node.fail_k) if propagate else node.fail_k
        return node, out

    def node(self, ctx: _Ctx, in_type: str, *, root: bool = False) -> tuple[Node, str]:
        """Draw a node taking ``in_type``; return it and its output type."""
        rng = self.rng
        self.budget -= 1
        leafy = 0.1 if ctx.depth < 2 else 0.35  # composites near the root, leaves below
        too_deep = self.budget <= 0 or ctx.depth >= self.shapes.max_depth
        if not root and (too_deep or rng.random() < leafy):
            return self.leaf(may_fail=ctx.may_fail)
        kinds = [k for k in COMPOSITES if not (k == "nbd" and ctx.under_code)]
        kind = rng.choice(ROOTS if root else kinds)
        retries = rng.choice([1, 2]) if rng.random() < 0.25 else 0
        inner = _Ctx(ctx.depth + 1, ctx.under_code, ctx.waits, ctx.may_fail or retries > 0)
        node, out = getattr(self, f"draw_{kind}")(inner, in_type)
        node.retries = retries
        if node.retries and self.has_nbd(node):
            if SHAPE_NBD_UNDER_RETRY in self.shapes.exclude:
                node.retries = 0
            else:
                self.found.add(SHAPE_NBD_UNDER_RETRY)
        return node, out

    @staticmethod
    def has_nbd(node: Node) -> bool:
        return any(n.kind == "nbd" for n in node.walk())

    def draw_seq(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        node = Node("seq", self.name("seq"))
        t = in_type
        for _ in range(self.rng.randint(2, self.shapes.width)):
            child, t = self.node(ctx, t)
            node.children.append(child)
        return node, t

    def draw_par(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        node = Node("par", self.name("par"), named=rng.random() < 0.5)
        n = rng.randint(2, 3)
        failing = rng.randrange(n) if ctx.may_fail and rng.random() < 0.5 else None
        if SHAPE_FAIL_CANCELS in self.shapes.exclude:
            failing = None
        types = []
        for i in range(n):  # at most one branch may fail: the others cannot, wherever cancelled
            child, t = self.node(ctx if i == failing else ctx.concurrent(), in_type)
            node.children.append(child)
            types.append(t)
            if i == failing and can_fail(child):
                self.found.add(SHAPE_FAIL_CANCELS)
        return node, "dict" if node.named else f"tuple[{','.join(types)}]"

    def draw_map(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        n = rng.randint(1, 4)
        node = Node("map", self.name("map"), n=n, mc=rng.choice([None, 1, 2]))
        child, t = self.node(ctx.concurrent(), "int")
        node.children.append(child)
        return node, f"list[{t}]"

    def draw_race(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        n = rng.randint(2, 3)
        node = Node("race", self.name("race"), winner=rng.randrange(n))
        types = []
        for i in range(n):
            if i == node.winner:
                child, t = self.node(ctx.concurrent(), in_type)
            elif rng.random() < 0.5:
                child, t = Node("doom", self.name("doom"), seconds=rng.choice([0.0, 0.01])), "any"
            else:  # a stall: a long durable delay, then a leaf; the winner cancels it
                stall = Node("delay", self.name("delay"), seconds=1000.0)
                tail, t = self.leaf("any", flaky=False)
                child = Node("seq", self.name("seq"), children=[stall, tail])
            node.children.append(child)
            types.append(t)
        if types[node.winner] != types[0] and types[0] != "any":
            self.mixed()
        return node, types[0]

    def mixed(self) -> None:
        self.found.add(SHAPE_MIXED_TYPES)

    def draw_cond(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        node = Node("cond", self.name("cond"), pred_module=self.rng.random() < 0.5)
        then, t = self.node(ctx, in_type)
        node.children.append(then)
        other_t = in_type
        if self.rng.random() < 0.7:
            other, other_t = self.node(ctx, in_type)
            node.children.append(other)
        if t not in {"any", other_t}:
            self.mixed()
        return node, t

    def draw_loop(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        node = Node("loop", self.name("loop"), n=rng.randint(1, 3), pred_module=rng.random() < 0.5)
        if rng.random() < 0.6:  # an until that holds within max_iterations most of the time
            node.n, node.modulus = rng.randint(3, 5), 2
        body, t = self.node(ctx, "any")
        node.children.append(body)
        return node, t

    def draw_delay(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        return Node("delay", self.name("delay"), seconds=self.rng.choice([0.0, 0.05, 0.2])), "any"

    def draw_nbd(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        node = Node("nbd", self.name("nbd"), seconds=rng.choice([0.0, 0.05, 0.2]))
        fn, _ = self.leaf()
        node.children.append(fn)
        return node, "any"

    def draw_code(self, ctx: _Ctx, in_type: str) -> tuple[Node, str]:
        rng = self.rng
        node = Node("code", self.name("code"))
        inner = _Ctx(ctx.depth, under_code=True, waits=ctx.waits, may_fail=ctx.may_fail)
        reading = False
        for _ in range(rng.randint(2, self.shapes.width + 1)):
            r = rng.random()
            if r < 0.4:
                child, _ = self.node(inner, "any")
                node.children.append(child)
                node.ops.append(Op("call", child=len(node.children) - 1))
                if reading and child.kind in {"leaf", "code"}:
                    self.found.add(SHAPE_NOW)
            elif r < 0.52:
                node.ops.append(Op("now"))
                reading = True
            elif r < 0.64:
                node.ops.append(Op("random"))
            elif r < 0.78:
                node.ops.append(Op("sleep", seconds=rng.choice([0.05, 0.1, 0.3])))
            elif ctx.waits:
                timeout = rng.choice([None, 600.0])
                node.ops.append(Op("wait", timeout=timeout, topic=f"{node.name}.w{len(node.ops)}"))
        if SHAPE_NOW in self.found and SHAPE_NOW in self.shapes.exclude:
            # keep the readings but let none reach a later step's input: readings go last
            node.ops = [o for o in node.ops if o.kind != "now"] + [
                o for o in node.ops if o.kind == "now"
            ]
            self.found.discard(SHAPE_NOW)
        return node, "any"


def draw(seed: int, shapes: Shapes) -> tuple[Program, list[Program]]:
    """Draw candidate programs from ``seed`` until the interpreter accepts one.

    Returns the accepted program and the rejected candidates (for statistics).
    """
    from .interpreter import InvalidProgram, predict

    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    rejected = []
    for _ in range(200):
        d = _Draw(rng, seed, shapes)
        root, _ = d.node(_Ctx(0, under_code=False, waits=True), "int", root=True)
        program = Program(seed, root, rng.randrange(1000), frozenset(d.found))
        if d.found & shapes.exclude:
            rejected.append(program)
            continue
        try:
            predict(program)
        except InvalidProgram:
            rejected.append(program)
            continue
        return program, rejected
    msg = f"seed {seed}: no valid program in 200 draws"
    raise AssertionError(msg)


def generate(seed: int, shapes: Shapes | None = None) -> Program:
    """The program of ``seed`` (the same tree every time for the same seed and shapes)."""
    return draw(seed, shapes or Shapes())[0]
