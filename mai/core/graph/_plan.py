"""``WorkflowPlan``: the stable, serialisable description of a module, graph or composite.

A plan is plain JSON. Its content hash is the SHA-256 of its canonical JSON (sorted keys, no
whitespace); nothing in it depends on the process (no ids, addresses or timestamps), so the same
module gives the same hash in any process, and any structural change gives another hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

from ._describe import FORMAT_VERSION, KINDS, Describer
from ._errors import Edge, GraphCycleError, PlanFormatError

if TYPE_CHECKING:
    from mai._module import Module

    from ._diff import PlanChange

_KINDS = {*KINDS.values(), "graph", "module", "composite"}
# Options whose change alters what a run computes (the others only change how it runs).
_SEMANTIC_OPTIONS = {"collect", "pred", "until", "background"}


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace: the form that is hashed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class WorkflowPlan:
    """The plan of a module: nodes, edges, casts, inputs, outputs, as plain JSON.

    Get one with :func:`mai.plan` (any module: a function module, a composite, a graph), or load
    one with :meth:`from_json` / :meth:`from_dict`. Plans are immutable; :meth:`to_dict` returns
    a copy. Two plans are equal when their hashes are.

    Loading a plan needs no code: it can be diffed and drawn anywhere. :meth:`build` resolves the
    module import paths it names and returns a runnable module.
    """

    __slots__ = ("_data", "_hash", "_json")

    def __init__(self, data: dict[str, Any], *, _checked: bool = False) -> None:
        """Use :func:`mai.plan`, :meth:`from_dict` or :meth:`from_json` instead."""
        if not _checked:
            check_plan(data)
        self._json = canonical_json(data)
        self._data: dict[str, Any] = json.loads(self._json)
        self._hash = hashlib.sha256(self._json.encode()).hexdigest()

    # -- reading -------------------------------------------------------------------------------

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON."""
        return self._hash

    @property
    def format_version(self) -> int:
        """The plan format version (currently 1)."""
        return int(self._data["format_version"])

    @property
    def kind(self) -> str:
        """``graph``, ``sequential``, ``parallel``, ``map``, ..., or ``module`` for a leaf."""
        return str(self._data["kind"])

    @property
    def name(self) -> str:
        """The planned module's name."""
        return str(self._data["name"])

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """The nodes (copies), in creation order."""
        return self._part("nodes")

    @property
    def edges(self) -> list[dict[str, Any]]:
        """The edges (copies): ``source``, ``target``, ``parameter`` and ``cast`` if any."""
        return self._part("edges")

    @property
    def casts(self) -> list[dict[str, Any]]:
        """The casting layers (copies): edge, ``from`` and ``to`` types, and ``rule``."""
        return self._part("casts")

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The inputs (copies): name, type, JSON Schema, default if any."""
        return self._part("inputs")

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The outputs (copies): name (``None`` for a single output), source, type."""
        return self._part("outputs")

    def _part(self, key: str) -> list[dict[str, Any]]:
        return json.loads(json.dumps(self._data[key]))  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as a new ``dict`` (plain JSON types)."""
        return json.loads(self._json)  # type: ignore[no-any-return]

    def to_json(self, *, indent: int | None = None) -> str:
        """Return the plan as JSON: canonical (what is hashed) unless ``indent`` is given."""
        if indent is None:
            return self._json
        return json.dumps(self._data, sort_keys=True, indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowPlan:
        """Load a plan from its ``dict`` form.

        Raises:
            PlanFormatError: When ``data`` is not a plan this version reads.
            GraphCycleError: When a graph plan's edges form a cycle.
        """
        return cls(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowPlan:
        """Load a plan from JSON text (see :meth:`from_dict`)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PlanFormatError(f"a workflow plan must be JSON: {exc}") from exc
        return cls(data)

    def __eq__(self, other: object) -> bool:
        """Plans are equal when their hashes are."""
        if not isinstance(other, WorkflowPlan):
            return NotImplemented
        return self._hash == other._hash

    def __hash__(self) -> int:
        """Hash by content."""
        return hash(self._hash)

    def __repr__(self) -> str:
        """``<mai.WorkflowPlan graph 'rag' (3 nodes) 1a2b3c4d5e6f>``."""
        n = len(self._data["nodes"])
        return (
            f"<mai.WorkflowPlan {self.kind} {self.name!r} ({n} node{'' if n == 1 else 's'}) "
            f"{self._hash[:12]}>"
        )

    # -- using ---------------------------------------------------------------------------------

    def diff(self, other: WorkflowPlan) -> list[PlanChange]:
        """List what changed from this plan (the old one) to ``other`` (the new one).

        Changes come in plan order (inputs, then node by node, then outputs), so the first
        incompatible change names the first divergent step.
        """
        from ._diff import diff  # noqa: PLC0415 - keeps loading a plan light

        return diff(self._data, other._data)

    def to_mermaid(self) -> str:
        """Return a Mermaid ``flowchart`` of the plan."""
        from ._mermaid import mermaid  # noqa: PLC0415 - keeps loading a plan light

        return mermaid(self._data)

    def build(self) -> Module[..., Any]:
        """Rebuild the planned module by resolving the module import paths it names.

        Raises:
            PlanResolutionError: When a path no longer resolves (the error names node and
                path), or a module cannot be rebuilt from its plan.
            GraphError: When the rebuilt graph does not validate against today's code.
        """
        from ._rebuild import build  # noqa: PLC0415 - keeps loading a plan light

        return build(self._data)


def plan(module: Module[..., Any]) -> WorkflowPlan:
    """Return the :class:`WorkflowPlan` of any module: a function module, a composite, a graph.

    A plan is computed once per module object and configuration, then reused: modules are
    immutable (``with_`` returns a new one), so a workflow started many times pays the build
    (mostly JSON Schema generation) on its first start only.

    Args:
        module: The module to describe.

    Returns:
        The plan.
    """
    cached = getattr(module, _CACHE, None)
    if cached is not None and cached[0] is module._cfg:
        return cached[1]  # type: ignore[no-any-return]
    result = WorkflowPlan(Describer().plan(module), _checked=True)
    with contextlib.suppress(AttributeError, TypeError):  # a __slots__ subclass: no cache
        setattr(module, _CACHE, (module._cfg, result))
    return result


#: Attribute under which a module keeps its plan, keyed by the configuration it was built for.
_CACHE = "_mai_plan"


# -- structure checks ------------------------------------------------------------------------------


def _fail(where: str, what: str) -> PlanFormatError:
    return PlanFormatError(f"not a valid workflow plan: {where}: {what}")


def check_plan(data: Any) -> None:
    """Check the shape of a plan document; raise :class:`PlanFormatError` naming the problem."""
    if not isinstance(data, dict):
        raise _fail("document", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _fail("format_version", "missing or not an integer")
    if version != FORMAT_VERSION:
        raise PlanFormatError(
            f"workflow plan format version {version} is not supported by this pymai "
            f"(it reads version {FORMAT_VERSION})"
        )
    for key in ("name", "module"):
        if not isinstance(data.get(key), str):
            raise _fail(key, "missing or not a string")
    _check_body(data, "plan", data.get("kind"))


def _check_body(body: dict[str, Any], where: str, kind: Any) -> None:
    if kind not in _KINDS:
        raise _fail(where, f"unknown kind {kind!r}")
    for key in ("inputs", "nodes", "edges", "casts", "outputs"):
        if not isinstance(body.get(key), list):
            raise _fail(where, f"{key!r} is missing or not a list")
    ids: list[str] = []
    for i, node in enumerate(body["nodes"]):
        here = f"{where} node {i + 1}"
        if not isinstance(node, dict):
            raise _fail(here, "not an object")
        for key in ("id", "kind", "module", "step", "name"):
            if not isinstance(node.get(key), str):
                raise _fail(here, f"{key!r} is missing or not a string")
        if not isinstance(node.get("config"), dict):
            raise _fail(here, "'config' is missing or not an object")
        if node["id"] in ids:
            raise _fail(here, f"node id {node['id']!r} is used twice")
        ids.append(node["id"])
        if "plan" in node:
            _check_body(node["plan"], f"{where}/{node['id']}", node["kind"])
    inputs = {f"input:{i.get('name')}" for i in body["inputs"] if isinstance(i, dict)}
    known = {*ids, *inputs}
    edges: list[Edge] = []
    for e in body["edges"]:
        if not isinstance(e, dict) or not all(
            isinstance(e.get(k), str) for k in ("source", "target", "parameter")
        ):
            raise _fail(where, f"edge {e!r} needs string source, target and parameter")
        edge = Edge(e["source"], e["target"], e["parameter"])
        if e["target"] not in ids:
            raise _fail(where, f"edge {edge} goes to an unknown node {e['target']!r}")
        if e["source"] not in known:
            raise _fail(where, f"edge {edge} comes from an unknown node or input {e['source']!r}")
        edges.append(edge)
    if kind == "graph":
        _check_acyclic(ids, edges, str(body.get("name", where)))


def _check_acyclic(ids: list[str], edges: list[Edge], where: str) -> None:
    deps: dict[str, list[Edge]] = {i: [] for i in ids}
    for e in edges:
        if e.source in deps:
            deps[e.target].append(e)
    color = dict.fromkeys(ids, 0)
    for start in ids:
        if color[start]:
            continue
        color[start] = 1
        stack = [(start, iter(deps[start]))]
        while stack:
            k, it = stack[-1]
            for e in it:
                j = e.source
                if color[j] == 1:
                    path = [s for s, _ in stack]
                    loop = path[path.index(j) :]
                    order = [j, *reversed(loop[1:]), j]
                    raise GraphCycleError(
                        f"plan {where!r}: cycle {' -> '.join(order)}; edge {e} closes it",
                        graph=where,
                        node=e.target,
                        edge=e,
                        cycle=tuple(order),
                    )
                if color[j] == 0:
                    color[j] = 1
                    stack.append((j, iter(deps[j])))
                    break
            else:
                color[k] = 2
                stack.pop()
