"""The trace of a durable run, rebuilt from its recorded steps and plan.

Leaf steps are recorded with their timings, inputs and outputs; composites are not (they re-run
their orchestration on resume). The trace therefore takes each recorded step as a span and adds
one span per enclosing composite, named from the run's recorded plan, spanning its children.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from mai.core import tracing

from . import _serde

if TYPE_CHECKING:
    from mai.core.tracing import TraceHandle

    from ._store import RunRecord, StepRecord


def _parent(step_id: str) -> str | None:
    head, dot, _ = step_id.rpartition(".")
    return head if dot else None


def _order(step_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in step_id.split("."))


def _plan_node(nodes: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The plan's description of a step path (Map items match the plan's ``*`` child)."""
    node = nodes.get(step_id)
    if node is None:
        parts = step_id.split(".")
        for i in range(len(parts) - 1, 0, -1):
            node = nodes.get(".".join([*parts[:i], "*", *parts[i + 1 :]]))
            if node is not None:
                break
    return node or {"name": "(composite)"}


def _names(plan: dict[str, Any], step: str, out: dict[str, Any]) -> None:
    """Map absolute step paths to ``{"name", "kind", "collect", "keys"}`` from a plan's JSON."""
    out[step] = {
        "name": plan.get("name", "?"),
        "kind": plan.get("kind"),
        "collect": plan.get("options", {}).get("collect"),
        "keys": [o.get("name") for o in plan.get("outputs", [])],
    }
    for node in plan.get("nodes", []):
        path = f"{step}.{node.get('step', '?')}"
        out[path] = {"name": node.get("name", "?"), "kind": node.get("kind")}
        inner = node.get("plan")
        if isinstance(inner, dict):
            _names({**inner, "name": node.get("name", "?"), "kind": node.get("kind")}, path, out)


def _json_size(value: Any) -> int:
    return len(to_json(value))


def _args_size(text: str | None, fmt: str) -> tuple[int, list[int]]:
    """The summed JSON size of recorded arguments (as the in-process trace counts them)."""
    if text is None:
        return 0, []
    try:
        data = _serde.loads(text, fmt)
        values = [*data.get("args", []), *data.get("kwargs", {}).values()]
    except (ValueError, AttributeError, TypeError):
        return len(text.encode()), []
    sizes = [_json_size(v) for v in values]
    return sum(sizes), sizes


def _array(sizes: list[int]) -> int:
    """JSON size of an array whose items have ``sizes`` (compact: commas, no spaces)."""
    return 2 + sum(sizes) + max(len(sizes) - 1, 0)


def _composite_sizes(node: dict[str, Any], kids: list[dict[str, Any]]) -> tuple[int, int | None]:
    """Input and output sizes of a composite, from its children's (it is not recorded)."""
    kind = node.get("kind")
    outs = [k["output_bytes"] or 0 for k in kids]
    if kind == "map":  # a list of items in, a list of results out
        return _array([k["arg_sizes"][0] if k["arg_sizes"] else 0 for k in kids]), _array(outs)
    if kind == "parallel":
        keys = node.get("keys") or []
        if node.get("collect") == "dict" and len(keys) == len(kids):
            pairs = [_json_size(k) + 1 + o for k, o in zip(keys, outs, strict=True)]
            return kids[0]["input_bytes"], _array(pairs)
        return kids[0]["input_bytes"], _array(outs)
    return kids[0]["input_bytes"], kids[-1]["output_bytes"]


def _usage_attributes(output: str) -> dict[str, Any] | None:
    """Tokens of a recorded model response (an agent's model request step), else ``None``."""
    if '"kind":"response"' not in output:  # cheap test before decoding every step's output
        return None
    try:
        value = json.loads(output)
    except ValueError:
        return None
    usage = value.get("usage") if isinstance(value, dict) else None
    if value.get("kind") != "response" or not isinstance(usage, dict):
        return None
    return {
        "gen_ai.usage.input_tokens": int(usage.get("input_tokens", 0)),
        "gen_ai.usage.output_tokens": int(usage.get("output_tokens", 0)),
    }


def trace_of_run(run: RunRecord, steps: list[StepRecord]) -> TraceHandle:
    """Rebuild a :class:`~mai.TraceHandle` of a durable run from its records.

    Sizes are those the in-process trace reports: a step's input is the JSON size of its
    arguments (not of the stored envelope), and a composite's are worked out from its children
    and the plan (a Map's input is the list of its items, a Parallel's output the array or
    object of its branches' results); the run's own input and output are recorded exactly.
    """
    nodes: dict[str, Any] = {}
    try:
        _names(json.loads(run.plan), "1", nodes)
    except (ValueError, AttributeError, TypeError):
        nodes = {}
    rows: dict[str, dict[str, Any]] = {}
    for s in steps:
        in_bytes, arg_sizes = _args_size(s.input, s.format)
        rows[s.step_id] = {
            "name": s.name,
            "start": s.started_at,
            "end": max(s.finished_at, s.started_at),
            "input_bytes": in_bytes,
            "arg_sizes": arg_sizes,
            "output_bytes": len(s.output.encode()),
            "sizes_exact": s.input is not None,
            "retries": max(s.attempts - 1, 0),
            "attributes": _usage_attributes(s.output),
        }
    composites: set[str] = set()
    for sid in rows:
        parent = _parent(sid)
        while parent is not None and parent not in rows:
            composites.add(parent)
            parent = _parent(parent)
    for sid in sorted(composites, key=lambda c: (-len(_order(c)), _order(c))):  # inner first
        prefix = f"{sid}."
        kids = [
            rows[k]
            for k in sorted(rows, key=_order)
            if k.startswith(prefix) and "." not in k[len(prefix) :]
        ]
        node = _plan_node(nodes, sid)
        in_bytes, out_bytes = _composite_sizes(node, kids)
        rows[sid] = {
            "name": str(node.get("name", "(composite)")),
            "start": min(k["start"] for k in kids),
            "end": max(k["end"] for k in kids),
            "input_bytes": in_bytes,
            "arg_sizes": [in_bytes] if node.get("kind") != "map" else [],
            "output_bytes": out_bytes,
            "sizes_exact": all(k["sizes_exact"] for k in kids),
            "retries": 0,
        }
    top = rows.get("1")
    if top is not None and "1" in composites:  # the run's own input and output are recorded
        top["input_bytes"], _ = _args_size(run.input, run.format)
        if run.output is not None:
            top["output_bytes"] = len(run.output.encode())
    order = sorted(rows, key=_order)
    ids = {sid: i for i, sid in enumerate(order, 1)}
    spans = []
    for sid in order:
        row = rows[sid]
        parent = _parent(sid)
        spans.append(
            tracing.Span(  # the span classes load on first use, not with the runtime
                name=row["name"],
                step_id=sid,
                parent_step_id=parent,
                span_id=ids[sid],
                parent_id=ids.get(parent) if parent is not None else None,
                start=row["start"],
                end=row["end"],
                duration=row["end"] - row["start"],
                input_bytes=row["input_bytes"],
                output_bytes=row["output_bytes"],
                sizes_exact=row["sizes_exact"],
                retries=row["retries"],
                deadline=run.deadline,
                attributes=row.get("attributes"),
            )
        )
    return tracing.TraceHandle(spans, run_id=run.run_id)
