"""Rebuilding a runnable module from plan data, by resolving its module import paths.

A leaf node's path names a module object (``@mai.module`` at module level), a plain function
(wrapped with ``mai.module``) or a ``Module`` subclass (constructed without arguments); the
plan's configuration and bound values are then applied. Composites and graphs are rebuilt from
their kind, options and child nodes. The rebuilt graph is validated against today's code like
any graph, so a type that changed since the plan was made is reported then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai._composites import (
    BlockingDelay,
    Conditional,
    Loop,
    Map,
    NonBlockingDelay,
    Parallel,
    Race,
    Sequential,
)
from mai._config import Backoff
from mai._module import Module, module

from ._errors import PlanResolutionError
from ._graph import Graph
from ._nodes import MISSING
from ._paths import decode_type, is_opaque, resolve

if TYPE_CHECKING:
    from collections.abc import Callable


class _Where:
    """Names the node being rebuilt in errors."""

    def __init__(self, graph: str, node: str | None = None, node_name: str | None = None) -> None:
        self.graph = graph
        self.node = node
        self.node_name = node_name

    def resolve(self, path: str) -> Any:
        return resolve(path, graph=self.graph, node=self.node, node_name=self.node_name)

    def fail(self, what: str, path: str = "") -> PlanResolutionError:
        where = f"node {self.node} ({self.node_name!r})" if self.node else f"plan {self.graph!r}"
        return PlanResolutionError(
            f"{where}: {what}",
            graph=self.graph,
            node=self.node,
            node_name=self.node_name,
            path=path,
        )

    def value(self, data: Any, what: str) -> Any:
        if is_opaque(data):
            raise self.fail(
                f"{what} was a {next(iter(data.values()))} with no JSON form, so the plan "
                "cannot rebuild it; pass it as a graph input instead"
            )
        return data


def _config(cfg: dict[str, Any], where: _Where) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if k not in ("backoff", "retry_on")}
    if "backoff" in cfg:
        out["backoff"] = Backoff(**cfg["backoff"])
    retry = cfg.get("retry_on", "default")
    if isinstance(retry, list):
        out["retry_on"] = tuple(where.resolve(p) for p in retry)
    elif retry != "default":
        out["retry_on"] = where.resolve(retry)
    return out


def _leaf(node: dict[str, Any], where: _Where) -> Module[..., Any]:
    path = node["module"]
    obj = where.resolve(path)
    if isinstance(obj, Module):
        m: Module[..., Any] = obj
    elif isinstance(obj, type) and issubclass(obj, Module):
        try:
            m = obj()
        except TypeError as exc:
            raise where.fail(
                f"{path!r} is a Module class that cannot be built without arguments ({exc})",
                path,
            ) from exc
    elif callable(obj):
        m = module(obj)
    else:
        raise where.fail(f"{path!r} resolves to {obj!r}, not a module or a function", path)
    m = m.with_config(**_config(node["config"], where))
    bound = node.get("bound")
    if bound:
        m = m.with_(**{k: where.value(v, f"bound value {k!r}") for k, v in bound.items()})
    return m


def build_node(node: dict[str, Any], graph: str) -> Module[..., Any]:
    """Rebuild the module of one plan node."""
    where = _Where(graph, node["id"], node["name"])
    if "plan" not in node:
        return _leaf(node, where)
    return _composite(node["kind"], node["name"], node["module"], node["config"], node["plan"])


def _composite(
    kind: str, name: str, path: str, config: dict[str, Any], body: dict[str, Any]
) -> Module[..., Any]:
    where = _Where(name)
    cfg = _config(config, where)
    cfg.pop("name", None)
    if kind == "graph":
        return _graph(name, cfg, body)
    kids = [build_node(n, name) for n in body["nodes"]]
    opts = body.get("options", {})
    factories: dict[str, Callable[[], Module[..., Any]]] = {
        "sequential": lambda: Sequential(*kids, name=name),
        "parallel": lambda: _parallel(kids, body, name),
        "race": lambda: Race(*kids, name=name),
        "map": lambda: Map(kids[0], opts.get("max_concurrency"), name=name),
        "conditional": lambda: _conditional(kids, opts, where, name),
        "loop": lambda: Loop(
            kids[0],
            kids[1] if len(kids) > 1 else _maybe(opts.get("until"), where),
            opts["max_iterations"],
            name=name,
        ),
        "blocking_delay": lambda: BlockingDelay(opts["seconds"], name=name),
        "non_blocking_delay": lambda: NonBlockingDelay(opts["seconds"], kids[0], name=name),
    }
    factory = factories.get(kind)
    if factory is None:
        raise where.fail(
            f"the {kind} {path!r} cannot be rebuilt from a plan (only mai's own composites and "
            "graphs can)",
            path,
        )
    return factory().with_config(**cfg)


def _maybe(path: str | None, where: _Where) -> Any:
    return None if path is None else where.resolve(path)


def _parallel(kids: list[Module[..., Any]], body: dict[str, Any], name: str) -> Module[..., Any]:
    if body.get("options", {}).get("collect") == "dict":
        keys = [o["name"] for o in body["outputs"]]
        return Parallel(name=name, **dict(zip(keys, kids, strict=True)))
    return Parallel(*kids, name=name)


def _conditional(
    kids: list[Module[..., Any]],
    opts: dict[str, Any],
    where: _Where,
    name: str,
) -> Module[..., Any]:
    if "pred" in opts:
        pred: Any = where.resolve(opts["pred"])
    else:
        pred, kids = kids[0], kids[1:]
    otherwise = kids[1] if len(kids) > 1 else None
    return Conditional(pred, kids[0], otherwise, name=name)


def _graph(name: str, cfg: dict[str, Any], body: dict[str, Any]) -> Graph:
    where = _Where(name)
    g = Graph(name=name, **cfg)
    with g:
        refs: dict[str, Any] = {}
        for i in body["inputs"]:
            ann = decode_type(i.get("annotation", "Any"), graph=name)
            default = (
                where.value(i["default"], f"the default of input {i['name']!r}")
                if "default" in i
                else MISSING
            )
            refs[f"input:{i['name']}"] = g.input(i["name"], ann, default=default)
        later: dict[str, Any] = {}

        def ref(source: str) -> Any:
            hit = refs.get(source)
            if hit is None:
                hit = later.get(source)
                if hit is None:
                    hit = later[source] = g.deferred(source)
            return hit

        for node in body["nodes"]:
            nid = node["id"]
            m = build_node(node, name)
            args, kwargs = _call(node, body, ref, m)
            out = m(*args, **kwargs)
            refs[nid] = out
            if nid in later:
                later.pop(nid).set(out)
        for o in body["outputs"]:
            if o["name"] is None:
                g.output(ref(o["source"]))
            else:
                g.output(**{o["name"]: ref(o["source"])})
    return g


def _call(
    node: dict[str, Any], body: dict[str, Any], ref: Callable[[str], Any], m: Module[..., Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Rebuild a node's call (positional and keyword arguments) from its edges and constants."""
    where = _Where(body.get("name", ""), node["id"], node["name"])
    items: list[tuple[str, int | None, Any]] = [
        (e["parameter"], e.get("position"), ref(e["source"]))
        for e in body["edges"]
        if e["target"] == node["id"]
    ]
    items += [
        (c["parameter"], c.get("position"), where.value(c["value"], f"constant {c['parameter']!r}"))
        for c in node.get("consts", [])
    ]
    extra: list[tuple[int, Any]] = []
    kwargs: dict[str, Any] = {}
    if "plan" in node and node["kind"] != "graph":
        for key, position, value in items:
            if position is None:
                kwargs[key] = value
            else:
                extra.append((position, value))
        return [v for _, v in sorted(extra, key=lambda p: p[0])], kwargs
    for key, _, value in items:
        _, bracket, rest = key.partition("[")
        if bracket:
            extra.append((int(rest.rstrip("]")), value))
        elif "." in key:
            kwargs[key.split(".", 1)[1]] = value
        else:
            kwargs[key] = value
    # Named positional parameters go first, positionally, while each is given (positional-only
    # ones must); then the items of *args.
    args: list[Any] = []
    for p in m.__signature__.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name not in kwargs:
            break
        args.append(kwargs.pop(p.name))
    args += [v for _, v in sorted(extra, key=lambda p: p[0])]
    return args, kwargs


def build(data: dict[str, Any]) -> Module[..., Any]:
    """Rebuild the module a whole plan describes."""
    if data["kind"] == "module":
        return build_node(data["nodes"][0], data["name"])
    return _composite(data["kind"], data["name"], data["module"], data["config"], data)
