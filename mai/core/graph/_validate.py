"""Build-time validation of a graph, then compilation to a runnable program.

Checks, in order: every deferred reference is set; the graph has an output; the edges form no
cycle; every edge's producer type reaches its consumer's parameter type (placing a casting
layer where the types differ, see :mod:`._reach`); every constant fits its parameter. Then
chains of sync nodes are fused and the program is compiled. Each error names the node and edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai._casting import caster_for
from mai._composites import Composite
from mai._errors import CastError
from mai._module import _THREAD

from ._errors import Edge, GraphCycleError, GraphInputError, GraphOutputError, GraphTypeError
from ._nodes import CONST, DEFERRED, NODE, Source, describe_type
from ._reach import Unreachable, cast_rule
from ._run import compile_program

if TYPE_CHECKING:
    from ._graph import Graph
    from ._nodes import Arg, NodeSpec


def finish(g: Graph) -> None:
    """Validate ``g`` and compile it; raise the first problem found."""
    _resolve_deferred(g)
    _check_cycles(g)
    _check_types(g)
    if not g._outputs:
        raise GraphOutputError(
            f"graph {g.name!r} has no output; declare one with g.output(ref)", graph=g.name
        )
    g._chains = fusable_chains(g)
    g._program = compile_program(g)


def _follow(g: Graph, source: Source, user: str) -> Source:
    seen: list[str] = []
    while source.kind == DEFERRED:
        d = source.value
        if d.target is None:
            raise GraphInputError(
                f"graph {g.name!r}: deferred {d.name!r} is used by {user} but never set; "
                f"call .set(ref) on it before the with block ends",
                graph=g.name,
                parameter=d.name,
            )
        if d.name in seen:
            raise GraphCycleError(
                f"graph {g.name!r}: deferred references {' -> '.join(seen)} -> {d.name} "
                "are set to each other",
                graph=g.name,
                cycle=(*seen, d.name),
            )
        seen.append(d.name)
        source = d.target._source
    return source


def _resolve_deferred(g: Graph) -> None:
    for node in g._nodes:
        for arg in node.args:
            if arg.source.kind == DEFERRED:
                user = f"node {node.label()} parameter {arg.key!r}"
                arg.source = _follow(g, arg.source, user)
    g._outputs = [
        (name, _follow(g, s, f"output {name or '(unnamed)'}") if s.kind == DEFERRED else s)
        for name, s in g._outputs
    ]
    for d in g._deferred:
        if d.target is None:
            _follow(g, d._source, "nothing")


def _check_cycles(g: Graph) -> None:
    nodes = g._nodes
    deps = [[(a.source.value, a) for a in n.args if a.source.kind == NODE] for n in nodes]
    if not any(j >= n.index for n, d in zip(nodes, deps, strict=True) for j, _ in d):
        return  # every edge points backwards in creation order: no cycle is possible
    color = [0] * len(nodes)
    for start in range(len(nodes)):
        if color[start]:
            continue
        color[start] = 1
        stack = [(start, iter(deps[start]))]
        while stack:
            k, it = stack[-1]
            for j, arg in it:
                if color[j] == 1:
                    _raise_cycle(g, [s for s, _ in stack], j, k, arg)
                if color[j] == 0:
                    color[j] = 1
                    stack.append((j, iter(deps[j])))
                    break
            else:
                color[k] = 2
                stack.pop()


def _raise_cycle(g: Graph, stack: list[int], j: int, k: int, arg: Arg) -> None:
    # stack[i] depends on stack[i + 1]; k (last) depends on j: data flows j -> k -> ... -> j.
    loop = stack[stack.index(j) :]
    order = [j, *reversed(loop[1:]), j]
    nodes = g._nodes
    path = " -> ".join(nodes[i].label() for i in order)
    edge = Edge(nodes[j].id, nodes[k].id, arg.key)
    raise GraphCycleError(
        f"graph {g.name!r}: cycle {path}; edge {edge} closes it",
        graph=g.name,
        node=nodes[k].id,
        node_name=nodes[k].name,
        edge=edge,
        cycle=tuple(nodes[i].id for i in order),
    )


def producer(g: Graph, source: Source) -> tuple[str, str, Any]:
    """Return ``(id, label, type)`` of an edge's producer."""
    if source.kind == NODE:
        node = g._nodes[source.value]
        return node.id, node.label(), node.output_type
    spec = next(i for i in g._inputs if i.name == source.value)
    return spec.id, spec.id, spec.annotation


def _check_types(g: Graph) -> None:
    for node in g._nodes:
        for arg in node.args:
            source = arg.source
            if source.kind == CONST:
                _cast_constant(g, node, arg)
                continue
            pid, plabel, ptype = producer(g, source)
            try:
                arg.rule = cast_rule(ptype, arg.annotation)
            except Unreachable:
                edge = Edge(pid, node.id, arg.key)
                src, dst = describe_type(ptype), describe_type(arg.annotation)
                raise GraphTypeError(
                    f"graph {g.name!r}: edge {edge}: node {node.label()} parameter {arg.key!r} "
                    f"expects {dst}, but {plabel} produces {src}; no pydantic conversion or "
                    "registered casting adapter turns one into the other (insert a module that "
                    "converts it, or register a caster with mai.register_caster)",
                    graph=g.name,
                    node=node.id,
                    node_name=node.name,
                    edge=edge,
                    producer=pid,
                    consumer=node.id,
                    parameter=arg.key,
                    source_type=src,
                    target_type=dst,
                ) from None


def _cast_constant(g: Graph, node: NodeSpec, arg: Arg) -> None:
    caster = caster_for(arg.annotation)
    if caster is None:
        return
    value = arg.source.value
    try:
        arg.source = Source(CONST, caster.cast(value, node.name, arg.key))
    except CastError as exc:
        raise GraphTypeError(
            f"graph {g.name!r}: node {node.label()} parameter {arg.key!r}: the constant "
            f"{value!r:.80} does not fit {describe_type(arg.annotation)} ({exc})",
            graph=g.name,
            node=node.id,
            node_name=node.name,
            consumer=node.id,
            parameter=arg.key,
            source_type=describe_type(type(value)),
            target_type=describe_type(arg.annotation),
        ) from exc


def fusable(module: Any) -> bool:
    """Whether a module can join a fused chain: a plain sync body that runs in a thread."""
    return not isinstance(module, Composite) and module._mode == _THREAD and module._cfg.plain


def fusable_chains(g: Graph) -> list[list[int]]:
    """Find chains of sync nodes to run in one thread hop.

    A chain is ``a -> b -> ...`` where every node is a plain sync module (a worker-thread
    body with no timeout, retries or concurrency limit), each node's output goes only to the
    next node (and is not a graph output), and each next node takes no other node's output.
    """
    nodes = g._nodes
    consumers: list[set[int]] = [set() for _ in nodes]
    deps: list[set[int]] = [set() for _ in nodes]
    for n in nodes:
        for a in n.args:
            if a.source.kind == NODE:
                consumers[a.source.value].add(n.index)
                deps[n.index].add(a.source.value)
    outputs = {s.value for _, s in g._outputs if s.kind == NODE}
    eligible = [fusable(n.module) for n in nodes]
    taken: set[int] = set()
    chains: list[list[int]] = []
    for k in range(len(nodes)):
        if k in taken or not eligible[k]:
            continue
        chain = [k]
        cur = k
        while cur not in outputs and len(consumers[cur]) == 1:
            (nxt,) = consumers[cur]
            if nxt in taken or nxt in chain or not eligible[nxt] or deps[nxt] != {cur}:
                break
            chain.append(nxt)
            cur = nxt
        if len(chain) > 1:
            taken.update(chain)
            chains.append(chain)
    return chains
