"""Describing any module as plan data: a leaf, a composite or a graph.

A plan mirrors the step structure of the module it describes: the node for child ``i`` of a
composite (or node ``n<i>`` of a graph) has ``"step": "i"``, so the call of that node in a run
whose own step id is ``s`` is step ``s.i``. Steps that depend on the data (the items of a
``Map``, the iterations of a ``Loop``) are ``"*"``; the single node of a leaf's plan is the call
itself (``""``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from mai._casting import json_schema
from mai._composites import (
    BlockingDelay,
    Composite,
    Conditional,
    Loop,
    Map,
    NonBlockingDelay,
    Parallel,
    Race,
    Sequential,
)
from mai._config import _default_retryable
from mai._module import _INLINE, _THREAD, Module

from ._nodes import CONST, MISSING, describe_type
from ._paths import encode_type, jsonable, path_of

if TYPE_CHECKING:
    from mai._config import Config

    from ._graph import Graph
    from ._reach import Rule

FORMAT_VERSION = 1

KINDS: dict[type, str] = {
    Sequential: "sequential",
    Parallel: "parallel",
    Map: "map",
    Race: "race",
    Conditional: "conditional",
    Loop: "loop",
    BlockingDelay: "blocking_delay",
    NonBlockingDelay: "non_blocking_delay",
}


#: The graph class, once ``_graph`` is imported (it registers itself, see :func:`register_graph`):
#: describing a plain module or a composite needs none of the graph machinery, and no object
#: can be a graph before that module is loaded.
GRAPHS: tuple[type, ...] = ()


def register_graph(cls: type) -> None:
    """Name ``cls``'s plans ``graph`` (called once, by the module that defines ``Graph``)."""
    global GRAPHS  # noqa: PLW0603 - set once, when the graph module is imported
    KINDS[cls] = "graph"
    GRAPHS = (cls,)


def kind_of(module: Module[..., Any]) -> str:
    """Name a module's kind: ``graph``, ``sequential``, ..., ``composite``, or ``module``."""
    kind = KINDS.get(type(module))
    if kind is not None:
        return kind
    return "composite" if isinstance(module, Composite) else "module"


def module_path(module: Module[..., Any]) -> str:
    """The import path that rebuilds the module: its function's, or its class's."""
    fn = module._fn
    return path_of(fn if fn is not None else type(module))


def config_json(cfg: Config) -> dict[str, Any]:
    """The execution configuration as JSON."""
    retry_on = cfg.retry_on
    if isinstance(retry_on, tuple):
        retry: Any = [path_of(t) for t in retry_on]
    elif retry_on is _default_retryable:
        retry = "default"
    else:
        retry = path_of(retry_on)
    return {
        "name": cfg.name,
        "timeout": cfg.timeout,
        "retries": cfg.retries,
        "backoff": dataclasses.asdict(cfg.backoff),
        "retry_on": retry,
        "max_concurrency": cfg.max_concurrency,
        "inline": cfg.inline,
    }


class Describer:
    """Builds plan data; caches JSON Schemas per module object for the duration of one plan."""

    def __init__(self) -> None:
        """Start with empty caches."""
        self._schemas: dict[int, tuple[Module[..., Any], dict[str, Any], dict[str, Any]]] = {}

    def plan(self, module: Module[..., Any]) -> dict[str, Any]:
        """The whole plan of ``module`` (the data of a :class:`WorkflowPlan`)."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": kind_of(module),
            "name": module.name,
            "module": module_path(module),
            "config": config_json(module._cfg),
            **self.body(module),
        }

    def body(self, module: Module[..., Any]) -> dict[str, Any]:
        """Inputs, outputs, nodes, edges, casts and options of a module's plan."""
        kind = kind_of(module)
        if kind == "graph":
            return self._graph(module)  # type: ignore[arg-type]
        method = getattr(self, f"_{kind}")
        body: dict[str, Any] = {
            "inputs": self._inputs(module),
            "nodes": [],
            "edges": [],
            "casts": [],
            "outputs": [],
            "options": {},
        }
        method(module, body)
        return body

    # -- pieces ----------------------------------------------------------------------------------

    def _schemas_of(self, module: Module[..., Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        hit = self._schemas.get(id(module))
        if hit is None:
            p = module.payload
            hit = self._schemas[id(module)] = (module, p.input_schema(), p.output_schema())
        return hit[1], hit[2]

    def node(self, module: Module[..., Any], nid: str, step: str) -> dict[str, Any]:
        """Describe one node: identity, configuration, types and (for composites) structure."""
        kind = kind_of(module)
        d: dict[str, Any] = {
            "id": nid,
            "step": step,
            "kind": kind,
            "name": module.name,
            "module": module_path(module),
            "config": config_json(module._cfg),
        }
        if kind == "module":
            mode = module._mode
            d["mode"] = "thread" if mode == _THREAD else "inline" if mode == _INLINE else "async"
            if module.bound:
                d["bound"] = {k: jsonable(v) for k, v in sorted(module.bound.items())}
        d["params"] = {name: describe_type(ann) for name, ann, _ in _params(module)}
        d["output_type"] = describe_type(module.output_type)
        d["input_schema"], d["output_schema"] = self._schemas_of(module)
        if kind != "module":
            d["plan"] = self.body(module)
        return d

    def _inputs(self, module: Module[..., Any], *, annotations: bool = False) -> list[Any]:
        out = []
        for name, ann, default in _params(module):
            item: dict[str, Any] = {
                "name": name,
                "type": describe_type(ann),
                "schema": json_schema(ann),
            }
            if annotations:
                item["annotation"] = encode_type(ann)
            if default is not MISSING:
                item["default"] = jsonable(default)
            out.append(item)
        return out

    def _edge(
        self,
        body: dict[str, Any],
        source: str,
        target: str,
        parameter: str,
        rule: Rule | None,
        types: tuple[Any, Any],
        position: int | None = None,
    ) -> None:
        edge: dict[str, Any] = {"source": source, "target": target, "parameter": parameter}
        if position is not None:
            edge["position"] = position
        if rule is not None:
            cid = f"c{len(body['casts']) + 1}"
            edge["cast"] = cid
            body["casts"].append(
                {
                    "id": cid,
                    "source": source,
                    "target": target,
                    "parameter": parameter,
                    "from": describe_type(types[0]),
                    "to": describe_type(types[1]),
                    "rule": rule.name,
                }
            )
        body["edges"].append(edge)

    def _wire(
        self, body: dict[str, Any], source: str, src_type: Any, target: Module[..., Any], tid: str
    ) -> None:
        """An edge from ``source`` into the first parameter of ``target`` (node ``tid``)."""
        params = _params(target)
        name, ann = (params[0][0], params[0][1]) if params else ("args[0]", Any)
        self._edge(body, source, tid, name, _unchecked_rule(src_type, ann), (src_type, ann))

    def _feed_inputs(self, body: dict[str, Any], outer: Module[..., Any], *targets: Any) -> None:
        """Edges from the composite's inputs into each ``(module, node id)`` target."""
        inputs = _params(outer)
        for target, tid in targets:
            inner = _params(target)
            for j, (name, ann, _) in enumerate(inputs):
                pname, pann = (inner[j][0], inner[j][1]) if j < len(inner) else (name, Any)
                rule = _unchecked_rule(ann, pann)
                self._edge(body, f"input:{name}", tid, pname, rule, (ann, pann))

    # -- kinds -----------------------------------------------------------------------------------

    def _module(self, module: Module[..., Any], body: dict[str, Any]) -> None:
        body["nodes"].append(self.node(module, "n1", ""))
        for name, ann, _ in _params(module):
            self._edge(body, f"input:{name}", "n1", name, None, (ann, ann))
        body["outputs"].append(_out(None, "n1", module.output_type))

    def _composite(self, module: Composite, body: dict[str, Any]) -> None:
        body["nodes"] = [
            self.node(c, f"n{i}", "?") for i, c in enumerate(module.children(), start=1)
        ]
        body["outputs"].append(_out(None, "?", module.output_type))
        contract = getattr(module, "plan_contract", None)
        if contract is not None:  # what a composite promises its recorded steps (an agent's)
            body["contract"] = contract()

    def _sequential(self, module: Sequential, body: dict[str, Any]) -> None:
        steps = module.steps
        for i, s in enumerate(steps, start=1):
            body["nodes"].append(self.node(s, f"n{i}", str(i)))
        self._feed_inputs(body, module, (steps[0], "n1"))
        for i in range(1, len(steps)):
            self._wire(body, f"n{i}", steps[i - 1].output_type, steps[i], f"n{i + 1}")
        body["outputs"].append(_out(None, f"n{len(steps)}", module.output_type))

    def _parallel(self, module: Parallel, body: dict[str, Any]) -> None:
        self._branches(module, module.branches, body)
        keys = module.keys
        body["options"] = {"collect": "dict" if keys is not None else "tuple"}
        for i, b in enumerate(module.branches, start=1):
            body["outputs"].append(
                _out(keys[i - 1] if keys is not None else str(i - 1), f"n{i}", b.output_type)
            )

    def _race(self, module: Race, body: dict[str, Any]) -> None:
        self._branches(module, module.branches, body)
        body["options"] = {"collect": "first"}
        for i, b in enumerate(module.branches, start=1):
            body["outputs"].append(_out(None, f"n{i}", b.output_type))

    def _branches(
        self, module: Composite, branches: tuple[Module[..., Any], ...], body: dict[str, Any]
    ) -> None:
        for i, b in enumerate(branches, start=1):
            body["nodes"].append(self.node(b, f"n{i}", str(i)))
        self._feed_inputs(body, module, *((b, f"n{i}") for i, b in enumerate(branches, start=1)))

    def _map(self, module: Map, body: dict[str, Any]) -> None:
        body["nodes"].append(self.node(module.fn, "n1", "*"))
        params = _params(module.fn)
        pname = params[0][0] if params else "args[0]"
        self._edge(body, "input:items", "n1", pname, None, (Any, Any))
        body["edges"][-1]["each"] = True
        body["options"] = {"max_concurrency": module.max_items, "collect": "list"}
        body["outputs"].append(_out(None, "n1", module.output_type))

    def _conditional(self, module: Conditional, body: dict[str, Any]) -> None:
        pred = module.pred
        nodes: list[tuple[Module[..., Any], str]] = []
        if isinstance(pred, Module):
            nodes.append((pred, "1"))
        else:
            body["options"]["pred"] = path_of(pred)
        route_step = str(len(nodes) + 1)
        nodes.append((module.then, route_step))
        if module.otherwise is not None:
            nodes.append((module.otherwise, route_step))
        ids = []
        for i, (m, step) in enumerate(nodes, start=1):
            body["nodes"].append(self.node(m, f"n{i}", step))
            ids.append((m, f"n{i}"))
        self._feed_inputs(body, module, *ids)
        then_id = ids[-2][1] if module.otherwise is not None else ids[-1][1]
        body["outputs"].append({**_out(None, then_id, module.then.output_type), "when": True})
        if module.otherwise is not None:
            other = _out(None, ids[-1][1], module.otherwise.output_type)
        else:
            first = _params(module)
            other = _out(None, f"input:{first[0][0]}" if first else "input", Any)
        body["outputs"].append({**other, "when": False})

    def _loop(self, module: Loop, body: dict[str, Any]) -> None:
        body["nodes"].append(self.node(module.body, "n1", "*"))
        self._feed_inputs(body, module, (module.body, "n1"))
        until = module.until
        if isinstance(until, Module):
            body["nodes"].append(self.node(until, "n2", "*"))
            self._wire(body, "n1", module.body.output_type, until, "n2")
        elif until is not None:
            body["options"]["until"] = path_of(until)
        body["options"]["max_iterations"] = module.max_iterations
        body["outputs"].append(_out(None, "n1", module.output_type))

    def _blocking_delay(self, module: BlockingDelay, body: dict[str, Any]) -> None:
        body["options"] = {"seconds": module.seconds}
        body["outputs"].append(_out(None, "input:x", Any))

    def _non_blocking_delay(self, module: NonBlockingDelay, body: dict[str, Any]) -> None:
        body["options"] = {"seconds": module.seconds, "background": ["n1"]}
        body["nodes"].append(self.node(module.fn, "n1", "1"))
        self._feed_inputs(body, module, (module.fn, "n1"))
        body["outputs"].append(_out(None, "input:x", Any))

    def _graph(self, g: Graph) -> dict[str, Any]:
        from ._validate import producer  # noqa: PLC0415 - graph machinery, loaded with graphs

        body: dict[str, Any] = {
            "inputs": self._inputs(g, annotations=True),
            "nodes": [],
            "edges": [],
            "casts": [],
            "outputs": [],
            "options": {},
        }
        for n in g._nodes:
            d = self.node(n.module, n.id, str(n.index + 1))
            consts = []
            for a in n.args:
                if a.source.kind == CONST:
                    c: dict[str, Any] = {"parameter": a.key, "value": jsonable(a.source.value)}
                    if a.position is not None:
                        c["position"] = a.position
                    consts.append(c)
            if consts:
                d["consts"] = consts
            body["nodes"].append(d)
        for n in g._nodes:
            for a in n.args:
                if a.source.kind != CONST:
                    pid, _, ptype = producer(g, a.source)
                    self._edge(body, pid, n.id, a.key, a.rule, (ptype, a.annotation), a.position)
        for name, s in g._outputs:
            pid, _, ptype = producer(g, s)
            body["outputs"].append(_out(name, pid, ptype))
        if g._chains:
            body["fused"] = [[f"n{k + 1}" for k in chain] for chain in g._chains]
        return body


def _unchecked_rule(src: Any, dst: Any) -> Rule | None:
    """Composites cast at run time; a pair the rules cannot prove is marked ``unchecked``."""
    from ._reach import Rule, Unreachable, cast_rule  # noqa: PLC0415 - only composites cast

    try:
        return cast_rule(src, dst)
    except Unreachable:
        return Rule("unchecked")


def _out(name: str | None, source: str, annotation: Any) -> dict[str, Any]:
    return {"name": name, "source": source, "type": describe_type(annotation)}


def _params(module: Module[..., Any]) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of what a module takes."""
    if isinstance(module, GRAPHS):
        return [(i.name, i.annotation, i.default) for i in module._inputs]  # type: ignore[attr-defined]
    if isinstance(module, BlockingDelay | NonBlockingDelay):
        return [("x", Any, MISSING)]
    params = module.payload.parameters
    return [
        (name, ann, MISSING if default is inspect.Parameter.empty else default)
        for name, (ann, default) in params.items()
    ]
